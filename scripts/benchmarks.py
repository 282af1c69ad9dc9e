"""The embedded SmolLM2-135M-Instruct on the benchmarks lm-evaluation-harness computes
(GSM8K, MATH-500, MMLU-Pro, GPQA Diamond, IFEval): one `mode=eval` run per benchmark, its
wall time, and each metric with its 95% interval, as docs/evaluation.md reports them.

    SSO_EXP_DATA=<data folder> .venv/bin/python scripts/benchmarks.py
    .venv/bin/python scripts/benchmarks.py gsm8k gpqa --limit gsm8k=1319

Sizes are per-benchmark item limits (`--limit task=N`, 0: the whole set); the defaults fit
a 2-core CPU in about 45 minutes (one batch of 32 answers per generative benchmark: a batch
of 5-shot GSM8K takes about 7 minutes there). Runs go to outputs/benchmarks/<task> and the
MLflow experiment "benchmarks"."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "benchmarks"
URI = f"sqlite:///{ROOT / 'outputs' / 'mlflow.db'}"
# a 2-core CPU's sizes: items (per subject for MMLU-Pro; 0: all) and answer budgets
LIMITS = {"gsm8k": 32, "math500": 32, "mmlu_pro": 1, "gpqa": 0, "ifeval": 32}
BUDGETS = {"math500": 512, "mmlu_pro": 512, "ifeval": 512}
SHOWN = {  # the headline metric of each, as the field reports it
    "gsm8k": ["exact_match_strict_match", "exact_match_flexible_extract"],
    "math500": ["exact_match"],
    "mmlu_pro": ["exact_match_custom_extract"],
    "gpqa": ["acc", "acc_norm"],
    "ifeval": ["prompt_level_strict_acc", "inst_level_strict_acc",
               "prompt_level_loose_acc", "inst_level_loose_acc"],
}  # fmt: skip


def evaluate(task: str, limit: int) -> tuple:
    """One mode=eval run of `task`; its metrics and wall seconds."""
    overrides = [f"eval.{task}.limit={limit or 'null'}"]
    if task in BUDGETS:
        overrides.append(f"eval.{task}.gen_kwargs.max_gen_toks={BUDGETS[task]}")
    cmd = [sys.executable, "-m", "sso_exp", "mode=eval", f"eval.tasks=[{task}]",
           f"hydra.run.dir={OUT / task}", "resume=never", f"tracking.uri={URI}",
           "tracking.experiment_name=benchmarks", f"tracking.run_name={task}",
           *overrides]  # fmt: skip
    start = time.perf_counter()
    if subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL).returncode:
        sys.exit(f"{task} failed: {' '.join(cmd)}")
    seconds = time.perf_counter() - start
    client = mlflow.MlflowClient(URI)
    exp = client.get_experiment_by_name("benchmarks")
    (run,) = client.search_runs([exp.experiment_id], f"attributes.run_name = '{task}'",
                                order_by=["attributes.start_time DESC"], max_results=1)  # fmt: skip
    return run.data.metrics, seconds, " ".join(overrides)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("tasks", nargs="*", choices=list(LIMITS), help="default: all")
    p.add_argument("--limit", action="append", default=[], help="task=N (0: all items)")
    a = p.parse_args()
    limits = {**LIMITS, **{k: int(v) for k, v in (x.split("=") for x in a.limit)}}
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    names = [ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if "Model name" in ln]
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {names[0] if names else platform.processor()}, {cores} cores")
    print("| benchmark | metric | score (%) | 95% interval | items | seconds | overrides |")
    print("|---|---|---:|---|---:|---:|---|")
    for task in a.tasks or list(LIMITS):
        m, seconds, overrides = evaluate(task, limits[task])
        for metric in SHOWN[task]:
            k = f"{task}/{metric}"
            print(f"| {task} | {metric} | {m[k]:.1f} | [{m[k + '_ci_low']:.1f}, "
                  f"{m[k + '_ci_high']:.1f}] | {m[task + '/n']:.0f} | {seconds:.0f} | "
                  f"`{overrides}` |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
