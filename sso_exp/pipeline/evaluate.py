"""Evaluation (DESIGN.md section 5): signal accuracy of SSO pairs, AlpacaEval-style win
rates, MT-Bench-style grades and GSM8K exact match, judged by the policy itself, an
OpenAI-compatible endpoint or a trained reward model. mode=eval evaluates one policy;
`eval.every_iteration` evaluates each online iteration. Each task's metrics and per-item
table are logged as soon as it finishes, so a judge that fails keeps what came before."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional

from ..config import ConfigError, SSOConfig, SSOError
from ..data import write_jsonl
from ..evaluation import tasks
from ..judges import JudgeError, LLMJudge, OpenAIBackend, PolicyBackend
from ..judges.reward import RewardJudge
from ..precision import device
from ..models import check_available, load_checkpoint, load_policy, load_reward_model
from ..preferences import read_training_pairs
from ..tracking import RunLogger
from .common import tracked_run

log = logging.getLogger(__name__)
EVAL_COLUMNS = (("signal acc", "signal/accuracy", "{:.1f}"), ("AE win", "alpaca/win_rate", "{:.1f}"),
                ("AE LC", "alpaca/lc_win_rate", "{:.1f}"), ("MT-Bench", "mt_bench/score", "{:.2f}"),
                ("GSM8K", "gsm8k/exact_match", "{:.1f}"))


class JudgeFailed(SSOError):
    """The judge kept failing; the tasks finished before it are saved."""


def check_eval_config(cfg: SSOConfig) -> None:
    """Start-up checks of what evaluation needs."""
    e = cfg.eval
    if e.judge == "rm":
        if not cfg.rm.checkpoint or not (Path(cfg.rm.checkpoint) / "config.json").is_file():
            raise ConfigError("config key 'rm.checkpoint': eval.judge=rm needs a trained reward "
                              f"model folder (got {cfg.rm.checkpoint})")
        if "mt_bench" in e.tasks:
            raise ConfigError("config key 'eval.tasks': a reward model cannot grade MT-Bench "
                              "answers 1-10; drop mt_bench or use eval.judge=policy|openai")
    for task, path in (("alpaca", e.alpaca_path), ("mt_bench", e.mt_bench_path),
                       ("gsm8k", e.gsm8k_path)):
        if task in e.tasks and not (path and Path(path).is_file()):
            raise ConfigError(f"config key 'eval.{task}_path': {path} is not a file")


def make_judge(cfg: SSOConfig, policy, tok):
    e = cfg.eval
    if e.judge == "rm":
        rm, rtok = load_reward_model(cfg.model, checkpoint=cfg.rm.checkpoint)
        return RewardJudge(rm.to(policy.device), rtok, cfg.rm.max_length, e.batch_size)
    if e.judge == "openai":
        o = e.openai
        return LLMJudge(OpenAIBackend(o.base_url, o.model, o.api_key_env, o.timeout_s,
                                      o.max_retries, o.backoff_s, max_tokens=o.max_tokens))
    return LLMJudge(PolicyBackend(policy, tok, e.judge_max_new_tokens, e.batch_size))


def run_task(task: str, model, tok, judge, cfg: SSOConfig,
             records: Optional[List[Dict]]) -> Optional[tasks.TaskResult]:
    e = cfg.eval
    gen = {"max_new_tokens": e.max_new_tokens, "batch_size": e.batch_size}
    if task == "signal":
        return tasks.signal_accuracy(records, judge) if records else None
    if task == "alpaca":
        return tasks.alpaca_eval(model, tok, judge, e.alpaca_path, limit=e.alpaca_limit, **gen)
    if task == "mt_bench":
        return tasks.mt_bench(model, tok, judge, e.mt_bench_path, limit=e.mt_bench_limit,
                              reference_path=e.mt_bench_reference, **gen)
    return tasks.gsm8k(model, tok, e.gsm8k_path, limit=e.gsm8k_limit, **gen)


def evaluate(model, tok, judge, cfg: SSOConfig, records: Optional[List[Dict]],
             logger: RunLogger, step: int, out_dir: Path) -> Dict[str, float]:
    """Every configured task in turn; metrics logged at `step`, tables under out_dir."""
    metrics: Dict[str, float] = {}
    for task in cfg.eval.tasks:
        try:
            result = run_task(task, model, tok, judge, cfg, records)
        except JudgeError as err:
            raise JudgeFailed(f"eval task '{task}': {err}; the tasks before it are saved in "
                              f"{out_dir} and MLflow") from None
        if result is None:
            log.info("eval task 'signal' skipped: no SSO pairs to judge (set data.pairs)")
            continue
        table = out_dir / f"eval_{task}.jsonl"
        write_jsonl(result.rows, table)
        logger.log_file(table, out_dir.name if out_dir.name.startswith("iter_") else None)
        logger.log_iteration(step, result.metrics)
        metrics.update(result.metrics)
    return metrics


def run_eval(cfg: SSOConfig) -> List[Dict[str, float]]:
    """mode=eval: one policy (eval.policy, or the model config) on the configured tasks."""
    check_eval_config(cfg)
    records = read_training_pairs(cfg.data.pairs) if cfg.data.pairs else None
    if cfg.eval.policy is None:
        check_available(cfg.model)
    with tracked_run(cfg, EVAL_COLUMNS) as (run_dir, logger, rows):
        if cfg.eval.policy:
            model, tok = load_checkpoint(cfg.eval.policy, cfg.model)
        else:
            model, tok = load_policy(cfg.model, cfg.schedule.seed)
        model.to(device(cfg.trainer))
        judge = make_judge(cfg, model, tok)
        rows.append(evaluate(model, tok, judge, cfg, records, logger, 1, run_dir))
    return rows
