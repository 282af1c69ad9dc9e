"""Evaluation (docs/algorithm.md §7): signal accuracy of SSO pairs, AlpacaEval-style win
rates and MT-Bench grades, judged by the policy itself, an OpenAI-compatible endpoint or a
trained reward model, and the objective benchmarks lm-evaluation-harness computes. mode=eval
evaluates one policy; `eval.every_iteration` evaluates each online iteration. Each task's
metrics and per-item table are logged as soon as it finishes, so a judge that fails keeps
what came before."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.utils import instantiate

from ..config import EvalConfig, ModelConfig, SSOConfig
from ..data.preferences import read_training_pairs
from ..data.records import write_jsonl
from ..errors import SSOError
from ..evaluation import tasks
from ..evaluation.harness import benchmark
from ..evaluation.ifeval import ifeval
from ..evaluation.judges import JudgeError
from ..models.device import device
from ..models.loading import load_checkpoint, load_policy
from ..tracking.mlflow_run import RunLogger
from .context import RunContext
from .tracked_run import tracked_run

log = logging.getLogger(__name__)
EVAL_COLUMNS = (
    ("signal acc", "signal/accuracy", "{:.1f}"),
    ("judge acc (human pairs)", "human_pairs/accuracy", "{:.1f}"),
    ("AE win", "alpaca/win_rate", "{:.1f}"),
    ("AE LC", "alpaca/lc_win_rate", "{:.1f}"),
    ("AE LC (approx.)", "alpaca/lc_win_rate_approx", "{:.1f}"),
    ("MT-Bench", "mt_bench/score", "{:.2f}"),
    ("GSM8K strict", "gsm8k/exact_match_strict_match", "{:.1f}"),
    ("GSM8K flexible", "gsm8k/exact_match_flexible_extract", "{:.1f}"),
    ("MATH-500", "math500/exact_match", "{:.1f}"),
    ("MMLU-Pro", "mmlu_pro/exact_match_custom_extract", "{:.1f}"),
    ("GPQA", "gpqa/acc_norm", "{:.1f}"),
    ("verified signal", "signal/verified_accuracy", "{:.1f}"),
    ("IFEval strict", "ifeval/prompt_level_strict_acc", "{:.1f}"),
)


class JudgeFailed(SSOError):
    """The judge kept failing; the tasks finished before it are saved."""


def make_judge(eval_cfg: EvalConfig, model_cfg: ModelConfig, policy, tok, seed: int = 0):
    """The judge an `eval/judge` option names, built by Hydra around the policy, or around
    the fixed model `eval.judge_model` names (loaded once, on the policy's device)."""
    if eval_cfg.judge_model is not None:
        judge_model, judge_tok = load_policy(eval_cfg.judge_model, seed)
        return instantiate(eval_cfg.judge)(
            judge_model.to(policy.device).eval(), judge_tok, eval_cfg.judge_model
        )
    return instantiate(eval_cfg.judge)(policy, tok, model_cfg)


def _answering(task: Any, eval_cfg: EvalConfig) -> Dict[str, int]:
    """The policy's answers: the task's own token budget, the shared batch size."""
    return {"max_new_tokens": task.max_new_tokens, "batch_size": eval_cfg.batch_size}


def _signal(model, tok, judge, eval_cfg: EvalConfig, records):
    return tasks.signal_accuracy(records, judge, eval_cfg.signal.annotator) if records else None


def _human_pairs(model, tok, judge, eval_cfg: EvalConfig, records):
    t = eval_cfg.human_pairs
    return tasks.human_pairs(judge, t.path, limit=t.limit, annotator=t.annotator)


def _alpaca(model, tok, judge, eval_cfg: EvalConfig, records):
    t = eval_cfg.alpaca
    return tasks.alpaca_eval(
        model,
        tok,
        judge,
        t.path,
        limit=t.limit,
        difficulty_file=t.difficulty_file,
        annotator=t.annotator,
        **_answering(t, eval_cfg),
    )


def _mt_bench(model, tok, judge, eval_cfg: EvalConfig, records):
    t = eval_cfg.mt_bench
    return tasks.mt_bench(
        model,
        tok,
        judge,
        t.path,
        limit=t.limit,
        reference_path=t.reference,
        judge_prompts=t.judge_prompts,
        judge_max_new_tokens=t.judge_max_new_tokens,
        temperatures=t.temperatures,
        **_answering(t, eval_cfg),
    )


def _harness(bench: str):
    """The runner of a benchmark computed by lm-evaluation-harness."""

    def run(model, tok, judge, eval_cfg: EvalConfig, records):
        return benchmark(model, tok, bench, getattr(eval_cfg, bench))

    return run


def _ifeval(model, tok, judge, eval_cfg: EvalConfig, records):
    return ifeval(model, tok, eval_cfg.ifeval)


# one runner per task of config.evaluation.TASKS (test_evaluate checks they match)
RUNNERS = {
    "signal": _signal,
    "human_pairs": _human_pairs,
    "alpaca": _alpaca,
    "mt_bench": _mt_bench,
    **{bench: _harness(bench) for bench in ("gsm8k", "math500", "mmlu_pro", "gpqa")},
    "ifeval": _ifeval,
}


def run_task(
    task: str, model, tok, judge, eval_cfg: EvalConfig, records: Optional[List[Dict]]
) -> Optional[tasks.TaskResult]:
    return RUNNERS[task](model, tok, judge, eval_cfg, records)


def due(cfg: SSOConfig, task: str, step: int) -> bool:
    """Whether an online run evaluates `task` at iteration `step` (0: before training): a
    task on the `ends` schedule only before training and after the last iteration."""
    schedule = getattr(getattr(cfg.eval, task), "schedule", "every")
    return cfg.mode.name != "online" or schedule == "every" or step in (0, cfg.schedule.iterations)


def evaluate(
    ctx: RunContext,
    model,
    judge,
    records: Optional[List[Dict]],
    step: int,
    out_dir: Path,
) -> Dict[str, float]:
    """Every configured task in turn; metrics logged at `step`, tables under out_dir."""
    metrics: Dict[str, float] = {}
    for task in ctx.cfg.eval.tasks:
        if not due(ctx.cfg, task, step):
            continue
        try:
            result = run_task(task, model, ctx.tok, judge, ctx.cfg.eval, records)
        except JudgeError as err:
            raise JudgeFailed(
                f"eval task '{task}': {err}; the tasks before it are saved in {out_dir} and MLflow"
            ) from None
        if result is None:
            log.info("eval task 'signal' skipped: no SSO pairs to judge here")
            continue
        log_task(ctx.logger, task, result, step, out_dir)
        metrics.update(result.metrics)
    return metrics


def log_task(logger: RunLogger, task: str, result, step: int, out_dir: Path) -> None:
    """A task's per-item table to out_dir and MLflow, its metrics at `step`."""
    table = out_dir / f"eval_{task}.jsonl"
    write_jsonl(result.rows, table)
    folder = out_dir.name if out_dir.name.startswith("iter_") else None
    logger.log_file(table, folder)
    logger.log_table(result.rows, f"{folder + '/' if folder else ''}eval_{task}.json")
    logger.log_iteration(step, result.metrics)


def run_eval(cfg: SSOConfig) -> List[Dict[str, float]]:
    """mode=eval: one policy (eval.policy, or the model config) on the configured tasks."""
    records = read_training_pairs(cfg.data.pairs, cfg.data.equal_pairs) if cfg.data.pairs else None
    with tracked_run(cfg, EVAL_COLUMNS) as (run_dir, logger, rows):
        if cfg.eval.policy:
            model, tok = load_checkpoint(cfg.eval.policy, cfg.model)
        else:
            model, tok = load_policy(cfg.model, cfg.schedule.seed)
        model.to(device(cfg.trainer))
        judge = make_judge(cfg.eval, cfg.model, model, tok, cfg.schedule.seed)
        ctx = RunContext(cfg, tok, logger, run_dir)
        rows.append(evaluate(ctx, model, judge, records, 1, run_dir))
    return rows
