"""The figures issue "The rest of the paper" asks for, each measured by running sso-exp
itself on the embedded SmolLM2-135M (CPU), then read back from MLflow and printed.

    .venv/bin/python scripts/paper_figures.py rm       # RMs: human pairs vs SSO pairs
    .venv/bin/python scripts/paper_figures.py gsm8k    # GSM8K exact match, 100 items
    .venv/bin/python scripts/paper_figures.py signal   # sso vs pbaa: signal accuracy, on-policyness
    .venv/bin/python scripts/paper_figures.py all

Sizes are flags (see --help); the defaults fit a 2-core CPU in well under an hour. Runs go
to outputs/figures/<name> and the MLflow experiment "figures"."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SSO_EXP_DATA", ROOT / "data"))  # the data folder (docs/data.md)
OUT = ROOT / "outputs" / "figures"
URI = f"sqlite:///{ROOT / 'outputs' / 'mlflow.db'}"


def run(name: str, *overrides: str) -> dict:
    """One sso-exp job; returns its MLflow metrics (latest value of each)."""
    cmd = [
        sys.executable,
        "-m",
        "sso_exp",
        f"hydra.run.dir={OUT / name}",
        "tracking.experiment_name=figures",
        f"tracking.run_name={name}",
        *overrides,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL)
    if proc.returncode:
        sys.exit(f"{name} failed (exit {proc.returncode}): {' '.join(cmd)}")
    client = mlflow.MlflowClient(URI)
    exp = client.get_experiment_by_name("figures")
    latest = client.search_runs(
        [exp.experiment_id],
        f"attributes.run_name = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)
    return {"run_id": latest.info.run_id, **latest.data.metrics}


def history(run_id: str, key: str) -> list:
    return [m.value for m in mlflow.MlflowClient(URI).get_metric_history(run_id, key)]


def rm_figures(a: argparse.Namespace) -> None:
    common = [
        f"rm.eval={DATA / 'hh_helpful_test.jsonl'}",
        f"rm.eval_limit={a.rm_eval}",
        f"rm.max_length={a.rm_max_length}",
        f"rm.lr={a.rm_lr}",
        f"rm.epochs={a.rm_epochs}",
    ]
    human = run(
        "rm_human",
        "mode=rm",
        "rm.sso=false",
        *common,
        f"rm.mix_limit={a.rm_train}",
        f"rm.mix={DATA / 'hh_helpful_online_rs_test.jsonl'}",
    )
    sso = run(
        "rm_sso",
        "mode=rm",
        "rm.sso=true",
        *common,
        f"schedule.queries_per_iteration={a.sso_queries}",
    )
    print("\n| RM trained on | train pairs | eval pairs | accuracy | 95% CI |")
    print("|---|---:|---:|---:|---|")
    for label, m in (
        ("HH helpful online + rejection-sampled", human),
        ("SSO pairs (SmolLM2)", sso),
    ):
        pairs = m["rm/pairs/human"] + m["rm/pairs/sso"]
        print(
            f"| {label} | {pairs:.0f} | {m['rm/eval/n']:.0f} | {m['rm/eval/accuracy']:.3f} | "
            f"[{m['rm/eval/accuracy_ci_low']:.3f}, {m['rm/eval/accuracy_ci_high']:.3f}] |"
        )


def gsm8k_figure(a: argparse.Namespace) -> None:
    m = run(
        "gsm8k",
        "mode=eval",
        "eval.tasks=[gsm8k]",
        f"eval.gsm8k.limit={a.gsm8k_items}",
        f"eval.gsm8k.max_new_tokens={a.gsm8k_tokens}",
    )
    print(
        f"\nGSM8K exact match (SmolLM2-135M-Instruct, greedy, {m['gsm8k/n']:.0f} items): "
        f"{m['gsm8k/exact_match']:.1f}% ± {m['gsm8k/exact_match_se']:.1f} (SE); "
        f"no number in {m['gsm8k/no_answer']:.0f}"
    )


def signal_figures(a: argparse.Namespace) -> None:
    checkpoint = OUT / "rm_human" / "reward_model"
    if not (checkpoint / "config.json").is_file():
        sys.exit(f"{checkpoint} is missing: run the 'rm' figures first (the RM judge)")
    rows = {}
    for preset in ("sso", "pbaa"):
        rows[preset] = run(
            f"signal_{preset}",
            f"experiment={preset}",
            "schedule.iterations=2",
            f"schedule.queries_per_iteration={a.signal_queries}",
            "eval.every_iteration=true",
            "eval.tasks=[signal]",
            "eval/judge=rm",
            f"rm.checkpoint={checkpoint}",
        )
    print(
        "\n| preset | iter | signal acc % (RM judge) | onpol y+ | onpol y- | onpol y0 |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for preset, m in rows.items():
        acc = history(m["run_id"], "signal/accuracy")
        onpol = [history(m["run_id"], f"onpolicy/{k}") for k in ("chosen", "rejected", "raw")]
        for it, values in enumerate(zip(acc, *onpol), 1):
            print(
                f"| {preset} | {it} | {values[0]:.1f} | "
                + " | ".join(f"{v:.3f}" for v in values[1:])
                + " |"
            )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("figure", choices=["rm", "gsm8k", "signal", "all"])
    p.add_argument("--rm-train", type=int, default=400, help="human training pairs")
    p.add_argument("--rm-eval", type=int, default=300, help="human evaluation pairs")
    p.add_argument("--rm-max-length", type=int, default=256)
    p.add_argument("--rm-lr", type=float, default=2e-5)
    p.add_argument("--rm-epochs", type=int, default=1)
    p.add_argument(
        "--sso-queries", type=int, default=48, help="queries the policy writes SSO pairs for"
    )
    p.add_argument("--gsm8k-items", type=int, default=100)
    p.add_argument("--gsm8k-tokens", type=int, default=256)
    p.add_argument("--signal-queries", type=int, default=8)
    a = p.parse_args()
    for name, fn in (("rm", rm_figures), ("gsm8k", gsm8k_figure), ("signal", signal_figures)):
        if a.figure in (name, "all"):
            fn(a)


if __name__ == "__main__":
    main()
