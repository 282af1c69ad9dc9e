"""The figures issue "The rest of the paper" asks for, each measured by running sso-exp
itself on the embedded SmolLM2-135M (CPU), then read back from MLflow and printed.

    .venv/bin/python scripts/paper_figures.py rm       # RMs: human pairs vs SSO pairs
    .venv/bin/python scripts/paper_figures.py signal   # sso vs pbaa: signal accuracy, on-policyness
    .venv/bin/python scripts/paper_figures.py study    # sso vs pbaa, 4 x 48 queries, fixed judge
    .venv/bin/python scripts/paper_figures.py alpaca   # AlpacaEval 2.0: weighted vs pairwise judge
    .venv/bin/python scripts/paper_figures.py verifiable  # sso/pbaa/no_w/no_g, checker-judged
    .venv/bin/python scripts/paper_figures.py all

Sizes are flags (see --help); the defaults fit a 2-core CPU in well under an hour. Runs go
to outputs/figures/<name> and the MLflow experiment "figures"."""

from __future__ import annotations

import argparse
import json
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


def _rate(m: dict, key: str) -> str:
    """A rate ± its 95% half-width, or - when the run did not log it."""
    return "-" if key not in m else f"{m[key]:.1f} ± {1.96 * m[f'{key}_se']:.1f}"


def alpaca_figure(a: argparse.Namespace) -> None:
    """AlpacaEval against GPT-4 Turbo's answers on the first items, the policy judging: as
    AlpacaEval 2.0's weighted annotator asks (the package's prompt, one random order, the
    verdict tokens' probabilities) and as the previous code asked (the MT-Bench prompt in
    both orders, hard verdicts). The LC win rate is the package's own given its
    df_gamed.csv (--difficulty-file), else the labelled approximation."""
    common = [
        "mode=eval",
        "eval.tasks=[alpaca]",
        f"eval.alpaca.limit={a.alpaca_items}",
        f"eval.alpaca.max_new_tokens={a.alpaca_tokens}",
        f"data.dir={DATA}",
    ]
    if a.difficulty_file:
        common.append(f"eval.alpaca.difficulty_file={a.difficulty_file}")
    print(
        "\n| annotator | n | unparsed | win rate % | LC win rate % | LC, approx. % | cut | length |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for annotator in ("weighted", "pairwise"):
        m = run(f"alpaca_{annotator}", *common, f"eval.alpaca.annotator={annotator}")
        print(
            f"| {annotator} | {m['alpaca/n']:.0f} | {m['alpaca/unparsed']:.0f} | "
            f"{_rate(m, 'alpaca/win_rate')} | {_rate(m, 'alpaca/lc_win_rate')} | "
            f"{_rate(m, 'alpaca/lc_win_rate_approx')} | {m['alpaca/budget_hits']:.0f} | "
            f"{m['alpaca/mean_length']:.0f} |"
        )


STUDY_COLUMNS = (
    ("run", "run", "{}"),
    ("iter", "iteration", "{:d}"),
    ("onpol y+ - y0", "onpolicy/chosen_minus_raw", "{:.3f}"),
    ("onpol y- - y0", "onpolicy/rejected_minus_raw", "{:.3f}"),
    ("len y+", "length/chosen", "{:.0f}"),
    ("len y-", "length/rejected", "{:.0f}"),
    ("len y0", "length/raw", "{:.0f}"),
    ("acc main", "train/rewards/accuracies", "{:.2f}"),
    ("acc p", "train/p_rewards/accuracies", "{:.2f}"),
    ("acc n", "train/n_rewards/accuracies", "{:.2f}"),
    ("signal acc %", "signal/accuracy", "{:.1f}"),
)
STUDY_PLOT = [
    "onpolicy/chosen_minus_raw",
    "onpolicy/rejected_minus_raw",
    "length/chosen",
    "length/rejected",
    "signal/accuracy",
    "train/rewards/accuracies",
]


def study(a: argparse.Namespace) -> None:
    """SSO against PBAA, every iteration's pairs judged by one fixed local judge (the
    starting SmolLM2, AlpacaEval's weighted annotator), and that judge's own accuracy on
    held-out human pairs beside it: how far its signal accuracy can be trusted."""
    from sso_exp.tracking.compare import iteration_series, plot_group
    from sso_exp.tracking.tables import summary_table

    judge = ["eval/judge_model=smollm2", f"data.dir={DATA}"]
    check = run(
        "study_judge",
        "mode=eval",
        "eval.tasks=[human_pairs]",
        f"eval.human_pairs.limit={a.judge_pairs}",
        *judge,
    )
    runs = {
        preset: run(
            f"study_{preset}",
            f"experiment={preset}",
            f"schedule.iterations={a.study_iterations}",
            f"schedule.queries_per_iteration={a.study_queries}",
            "data.prompts=alpaca_prompts_2k.jsonl",
            "eval.every_iteration=true",
            "eval.tasks=[signal]",
            *judge,
        )
        for preset in ("sso", "pbaa")
    }
    client = mlflow.MlflowClient(URI)
    keys = [k for _, k, _ in STUDY_COLUMNS[2:]]
    series = [
        iteration_series(client, client.get_run(m["run_id"]), keys + [f"{k}_se" for k in keys])
        for m in runs.values()
    ]
    rows = [
        {"run": preset, "iteration": it, **{k: v[it] for k, v in s.items() if it in v}}
        for preset, s in zip(runs, series)
        for it in range(1, a.study_iterations + 1)
    ]
    print(
        f"\nJudge: SmolLM2-135M-Instruct as it starts, AlpacaEval's weighted annotator. Its "
        f"accuracy on {check['human_pairs/n']:.0f} held-out HH helpful pairs: "
        f"{check['human_pairs/accuracy']:.1f}% ± {1.96 * check['human_pairs/accuracy_se']:.1f} "
        "(95%)\n"
    )
    print(summary_table(rows, STUDY_COLUMNS))
    path = plot_group(OUT / "study_sso_pbaa.png", "SSO vs PBAA", STUDY_PLOT, list(runs), series)
    print(f"\nplot: {path}")


VERIFIABLE_COLUMNS = (
    ("run", "run", "{}"),
    ("iter", "iteration", "{:d}"),
    ("kept", "pairs/kept", "{:d}"),
    ("verified signal %", "signal/verified_accuracy", "{:.1f}"),
    ("y+ follows %", "signal/chosen_follows", "{:.1f}"),
    ("y- violates %", "signal/rejected_violates", "{:.1f}"),
    ("y0 follows %", "signal/raw_follows", "{:.1f}"),
    ("n pair %", "signal/n_accuracy", "{:.1f}"),
    ("onpol y+ - y0", "onpolicy/chosen_minus_raw", "{:.3f}"),
    ("onpol y- - y0", "onpolicy/rejected_minus_raw", "{:.3f}"),
    ("IFEval prompt strict %", "ifeval/prompt_level_strict_acc", "{:.1f}"),
    ("IFEval inst strict %", "ifeval/inst_level_strict_acc", "{:.1f}"),
)
VERIFIABLE_PLOT = [
    "signal/verified_accuracy",
    "signal/chosen_follows",
    "onpolicy/chosen_minus_raw",
    "onpolicy/rejected_minus_raw",
    "ifeval/prompt_level_strict_acc",
    "ifeval/inst_level_strict_acc",
]
PRESETS = ("sso", "pbaa", "no_w", "no_g")


def verifiable(a: argparse.Namespace) -> None:
    """SSO, PBAA and the two ablations with verifiable principles, as one sweep from one
    seed: every iteration's pairs judged by IFEval's checker, the policy's IFEval (by
    lm-evaluation-harness) before training and after the last iteration. One table per run
    and iteration, the per-family signal of the untrained policy, one figure."""
    sweep_dir = OUT / "verifiable"
    cmd = [
        sys.executable, "-m", "sso_exp", "-m", f"experiment={','.join(PRESETS)}",
        "principle=verifiable", "eval/judge=verifier", "eval.tasks=[signal,ifeval]",
        "eval.every_iteration=true", "eval.ifeval.schedule=ends",
        f"eval.ifeval.limit={a.ifeval_items}",
        f"eval.ifeval.gen_kwargs.max_gen_toks={a.ifeval_tokens}",
        f"schedule.iterations={a.study_iterations}",
        f"schedule.queries_per_iteration={a.verifiable_queries}",
        f"generation.max_new_tokens={a.verifiable_tokens}",
        f"data.dir={DATA}", "data.prompts=alpaca_prompts_2k.jsonl",
        f"tracking.uri={URI}", "tracking.experiment_name=figures",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    start = time.perf_counter()
    if subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL).returncode:
        sys.exit(f"the sweep failed: {' '.join(cmd)}")
    print(f"[verifiable] sweep {time.perf_counter() - start:.0f} s", flush=True)
    verifiable_report(a, sweep_dir)


def verifiable_report(a: argparse.Namespace, sweep_dir: Path) -> None:
    """The study's table, the untrained policy's signal per family, and its figure, read
    back from the sweep's runs."""
    from sso_exp.tracking.compare import find_study, iteration_series, labels, plot_group
    from sso_exp.tracking.tables import summary_table

    client = mlflow.MlflowClient(URI)
    sweep_id = json.loads((sweep_dir / "sweep.json").read_text())["sweep_id"]
    study = find_study(client, "figures", sweep_id)
    keys = [k for _, k, _ in VERIFIABLE_COLUMNS[2:]]
    series = [iteration_series(client, r, keys + [f"{k}_se" for k in keys]) for r in study.runs]
    names = labels(study.runs)
    rows = [
        {"run": name, "iteration": it, **{k: v[it] for k, v in s.items() if it in v}}
        for name, s in zip(names, series)
        for it in range(0, a.study_iterations + 1)
    ]
    print(summary_table(rows, VERIFIABLE_COLUMNS))
    logged = client.get_run(study.runs[0].info.run_id).data.metrics
    family = [k for k in logged if k.startswith("signal/family/")]
    first = iteration_series(client, study.runs[0], family)  # iteration 1: the same in all
    print("\nIteration 1 (the untrained policy), per family, %:")
    for key in sorted(k for k in family if not k.endswith(("_se", "_ci_low", "_ci_high"))):
        value, low, high = (
            first.get(k, {}).get(1) for k in (key, f"{key}_ci_low", f"{key}_ci_high")
        )
        if value is not None:
            print(
                f"  {key}: {value:.1f}" + (f" [{low:.1f}, {high:.1f}]" if low is not None else "")
            )
    path = plot_group(
        ROOT / "docs/img/study_verifiable.png",
        "SSO, PBAA and ablations with verifiable principles (95% intervals)",
        VERIFIABLE_PLOT,
        names,
        series,
    )
    print(f"\nplot: {path}\ncomparison report: {sweep_dir / 'compare'}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("figure", choices=["rm", "signal", "alpaca", "study", "verifiable", "all"])
    p.add_argument("--rm-train", type=int, default=400, help="human training pairs")
    p.add_argument("--rm-eval", type=int, default=300, help="human evaluation pairs")
    p.add_argument("--rm-max-length", type=int, default=256)
    p.add_argument("--rm-lr", type=float, default=2e-5)
    p.add_argument("--rm-epochs", type=int, default=1)
    p.add_argument(
        "--sso-queries", type=int, default=48, help="queries the policy writes SSO pairs for"
    )
    p.add_argument("--signal-queries", type=int, default=8)
    p.add_argument("--alpaca-items", type=int, default=50)
    p.add_argument("--alpaca-tokens", type=int, default=512, help="answer budget (CPU)")
    p.add_argument("--difficulty-file", help="AlpacaEval's df_gamed.csv, for its own LC rate")
    p.add_argument("--study-iterations", type=int, default=4)
    p.add_argument("--study-queries", type=int, default=48, help="queries per iteration")
    p.add_argument("--judge-pairs", type=int, default=200, help="human pairs the judge labels")
    p.add_argument("--verifiable-queries", type=int, default=64, help="queries per iteration")
    p.add_argument("--verifiable-tokens", type=int, default=64, help="y+, y-, y0 budget")
    p.add_argument("--ifeval-items", type=int, default=100, help="IFEval's first prompts")
    p.add_argument("--ifeval-tokens", type=int, default=128, help="IFEval answer budget")
    a = p.parse_args()
    figures = (("rm", rm_figures), ("signal", signal_figures))
    more = (("alpaca", alpaca_figure), ("study", study), ("verifiable", verifiable))
    for name, fn in (*figures, *more):
        if a.figure in (name, "all"):
            fn(a)


if __name__ == "__main__":
    main()
