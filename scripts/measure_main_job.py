"""Wall time and peak memory of the main job (`python -m sso_exp`, as `make run` runs it).

    .venv/bin/python scripts/measure_main_job.py [hydra overrides ...]

Samples the resident memory of the job's whole process tree every 0.2 s; the last line
reads `wall_s=<s> peak_rss_gb=<GB>`. The issue's target: <= 600 s after set-up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

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


def main() -> None:
    cmd = [sys.executable, "-m", "sso_exp", *sys.argv[1:]]
    print("running:", " ".join(cmd), flush=True)
    start = time.perf_counter()
    job = subprocess.Popen(cmd, cwd=ROOT)
    watched, peak = psutil.Process(job.pid), 0
    while job.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if job.returncode:
        sys.exit(f"the job failed with exit code {job.returncode}")
    from sso_exp.config.machine import describe_machine

    memory = psutil.virtual_memory().total / 2**30
    print(f"machine: {describe_machine()}, {memory:.0f} GiB")
    print(f"wall_s={wall:.1f} peak_rss_gb={peak / 2**30:.2f}")


if __name__ == "__main__":
    main()
