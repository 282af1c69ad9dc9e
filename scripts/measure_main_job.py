"""Wall time and peak memory of the main job (`python -m sso_exp`, as `make run` runs it).

    .venv/bin/python scripts/measure_main_job.py [hydra overrides ...]

Samples the resident memory of the job's whole process tree every 0.2 s and, at the end,
takes the kernel's high-water mark of its largest process (a spike between two samples
counts), then prints each iteration's time split by stage (the run's `time/*_s` metrics,
read from a store of its own in a temporary folder) with the peak memory sampled within
each stage. torch.compile's kernel cache starts empty, as on a fresh machine (set
TORCHINDUCTOR_CACHE_DIR to measure with a warm one). The last line reads
`wall_s=<s> peak_rss_gb=<GB>`. Targets on a 2-core machine: the default job <= 120 s and
<= 4 GB; an iteration of 64 queries <= 300 s."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import psutil

ROOT = Path(__file__).resolve().parents[1]


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def stage_times(store: str, samples: List[Tuple[float, int]]) -> str:
    """One line per iteration: seconds per stage, from the run's `time/*_s` metrics (each
    logged as its stage ends), and the peak RSS sampled within each stage."""
    import mlflow

    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    split: dict = {}
    for key in (k for k in run.data.metrics if k.startswith("time/")):
        for m in client.get_metric_history(run.info.run_id, key):
            end = m.timestamp / 1000
            inside = [rss for t, rss in samples if end - m.value <= t <= end]
            peak = f" ({max(inside) / 2**30:.2f} GiB)" if inside else ""
            split.setdefault(m.step, {})[key[5:].removesuffix("_s")] = f"{m.value:.1f}s{peak}"
    return "\n".join(
        f"iteration {it}: " + ", ".join(f"{k} {v}" for k, v in sorted(times.items()))
        for it, times in sorted(split.items())
    )


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sso-exp-measure-"))
    store = f"sqlite:///{folder}/mlflow.db"
    own = [f"hydra.run.dir={folder}/run", f"tracking.uri={store}"]
    cmd = [sys.executable, "-m", "sso_exp", *own, *sys.argv[1:]]
    print("running:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    env = {"TORCHINDUCTOR_CACHE_DIR": str(folder / "inductor"), **os.environ}
    job = subprocess.Popen(cmd, cwd=ROOT, env=env)
    watched, samples = psutil.Process(job.pid), [(time.time(), 0)]
    while job.poll() is None:
        try:
            samples.append((time.time(), tree_rss(watched)))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - start
    high_water = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    peak = max(high_water, *(rss for _, rss in samples))
    if job.returncode:
        sys.exit(f"the job failed with exit code {job.returncode}")
    from sso_exp.runtime.host import describe_machine

    memory = psutil.virtual_memory().total / 2**30
    print(stage_times(store, samples))
    shutil.rmtree(folder)
    print(f"machine: {describe_machine()}, {memory:.0f} GiB")
    print(f"kernel's high-water mark of the job: {high_water / 2**30:.2f} GiB")
    print(f"wall_s={wall:.1f} peak_rss_gb={peak / 2**30:.2f}")


if __name__ == "__main__":
    main()
