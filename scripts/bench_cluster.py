"""What running a sweep's jobs through Submitit, and sampling system metrics, cost in wall
time (docs/measurements.md).

    .venv/bin/python scripts/bench_cluster.py sweep [--repeats 3]
    .venv/bin/python scripts/bench_cluster.py system-metrics [--repeats 2]

`sweep`: the same 2-job sweep (model=tiny, one iteration of 8 queries) with Hydra's basic
launcher (the jobs one after another in the sweep's process) and with
`hydra/launcher=submitit_local` (each job its own processes, both at once, as on a
cluster). `system-metrics`: the main job (`python -m sso_exp`, as `make run` runs it)
sampled every `tracking.system_metrics_interval_s` (10 s) against
`tracking.system_metrics=off`. The two arms alternate, each run in a folder and store of
its own; printed: every wall time, each arm's mean, the difference with its 95% Welch
t-interval, and the machine."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
TINY = (
    "model=tiny",
    "schedule.iterations=1",
    "schedule.queries_per_iteration=8",
    "generation.max_new_tokens=16",
    "loss.beta=0.1,0.2",
)
ARMS = {
    "sweep": {
        "basic": ("-m", *TINY),
        "submitit_local": ("-m", "hydra/launcher=submitit_local", *TINY),
    },
    "system-metrics": {
        "system metrics every 10 s": (),
        "tracking.system_metrics=off": ("tracking.system_metrics=off",),
    },
}


def timed(args: Sequence[str]) -> float:
    """Seconds the command takes, in a folder and store of its own."""
    with tempfile.TemporaryDirectory(prefix="sso-exp-bench-") as tmp:
        folder = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
        own = [f"{folder}={tmp}/out", f"tracking.uri=sqlite:///{tmp}/mlflow.db"]
        flags = [a for a in args if a.startswith("-")]
        cmd = [sys.executable, "-m", "sso_exp", *flags, *own, *(a for a in args if a not in flags)]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        took = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return took


def report(times: Dict[str, List[float]]) -> None:
    (a, first), (b, second) = times.items()
    for name, values in times.items():
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name}: {each} s; mean {statistics.mean(values):.1f} s")
    diff = statistics.mean(second) - statistics.mean(first)
    se2 = [statistics.variance(v) / len(v) for v in (first, second)]
    se = sum(se2) ** 0.5
    dof = se**4 / sum(s**2 / (len(v) - 1) for s, v in zip(se2, (first, second))) if se else 1
    half = stats.t.ppf(0.975, dof) * se
    share = 100 * diff / statistics.mean(first)
    low, high = diff - half, diff + half
    print(f"{b} - {a}: {diff:+.1f} s ({share:+.1f}%), 95% CI [{low:+.1f}, {high:+.1f}] s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=sorted(ARMS))
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()
    times: Dict[str, List[float]] = {name: [] for name in ARMS[opts.what]}
    for i in range(opts.repeats):
        for name, args in ARMS[opts.what].items():
            times[name].append(timed(args))
            print(f"[{i + 1}/{opts.repeats}] {name}: {times[name][-1]:.1f} s", flush=True)
    report(times)
    sys.path.insert(0, str(ROOT))
    from sso_exp.runtime.host import describe_machine

    print(f"machine: {describe_machine()}")


if __name__ == "__main__":
    main()
