"""One online iteration on 1 and on 2 CPU ranks (trainer=ddp, and trainer=fsdp) on the same
queries: the wall time of each stage (features, sampling, scoring, training) and the
sequences each rank sampled. Two ranks must each sample half of the sequences, never all of
them, and write the one-rank pairs.

    .venv/bin/python scripts/bench_scaling.py [hydra overrides ...]

The overrides apply to all runs (default: the embedded SmolLM2-135M, one iteration of 8
queries, 64 new tokens, float32: one rank would otherwise train bf16-true and two
bf16-mixed, and bf16 samples differ with the batch a sequence lands in). schedule.batch_size
is per rank, so the 2-rank runs are given half of the 1-rank run's batch: all train on the
same global batches."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sso_exp.runtime.host import describe_machine

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = (
    "schedule.iterations=1",
    "schedule.queries_per_iteration=8",
    "generation.max_new_tokens=64",
    "schedule.grad_accum=1",
    "trainer.precision=32-true",
)
RUNS = {
    "1 rank": ("schedule.batch_size=4",),
    "2 ranks": ("trainer=ddp", "trainer.devices=2", "schedule.batch_size=2"),
    "2 ranks, FSDP": ("trainer=fsdp", "trainer.devices=2", "schedule.batch_size=2"),
}
STAGES = {
    "whole job, start-up included": "wall",
    "features": "time/features_s",
    "sampling y+/y-/y0": "time/sampling_s",
    "scoring (reference)": "time/scoring_s",
    "training": "time/training_s",
}


def run(tmp: Path, name: str, extra: tuple) -> dict:
    args = [
        f"hydra.run.dir={tmp}/run",
        f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        f"tracking.artifact_location={tmp}/art",
        *DEFAULTS,
        *extra,
        *sys.argv[1:],
    ]
    print(f"{name}: python -m sso_exp {' '.join(args)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sso_exp", *args], cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{name} failed:\n{proc.stderr.decode()[-3000:]}")
    stages = json.loads((tmp / "run/state.json").read_text())["stages"]
    merged = {k: v for stage in stages.values() for k, v in stage.items()}
    merged["wall"] = wall
    merged["pairs"] = (tmp / "run/iter_1/pairs.jsonl").read_bytes()
    return merged


def main() -> None:
    results = {}
    for name, extra in RUNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run(Path(tmp), name, extra)
    print(f"\nmachine: {describe_machine()}")
    print("| stage | " + " | ".join(f"{n} (s)" for n in results) + " |")
    print("|---|" + "---:|" * len(results))
    for stage, key in STAGES.items():
        print(f"| {stage} | " + " | ".join(f"{r[key]:.1f}" for r in results.values()) + " |")
    for name, r in results.items():
        counts = {k.split("/")[1]: int(v) for k, v in r.items() if k.startswith("sampled/")}
        print(f"{name}: sequences sampled per rank {counts}")
    for name in list(RUNS)[1:]:
        same = results["1 rank"]["pairs"] == results[name]["pairs"]
        print(f"{name}: pairs file equals the 1-rank one byte for byte: {same}")
    one, two = (results[n]["time/sampling_s"] for n in list(RUNS)[:2])
    print(f"sampling_speedup={one / two:.2f}")


if __name__ == "__main__":
    main()
