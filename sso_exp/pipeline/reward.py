"""Reward models (docs/algorithm.md §6, mode=rm): a Bradley-Terry RM trained on SSO pairs
(y+ > y- under the plain query), optionally mixed with human pairs, evaluated on
human-labelled pairs; and mode=rm_score, batch-scoring prompt/response rows with one."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import pytorch_lightning as pl

from ..config import SSOConfig
from ..data.encoding import encode_answer, encode_pair
from ..data.pairs import conversation_loader
from ..data.preferences import PrefPair, from_records, read_pairs
from ..data.records import read_jsonl, read_records, write_jsonl
from ..errors import DataError
from ..evaluation.accuracy import accuracy_metrics
from ..evaluation.rewardbench import section_scores
from ..models.device import device
from ..models.loading import load_policy, load_reward_model, save_model
from ..models.rewards import score_conversations, score_pairs
from ..tracking.mlflow_run import RunLogger
from ..training.fit import make_trainer
from ..training.optim import build
from ..training.reward_module import RewardModule
from .context import RunContext
from .stages import generate_pairs
from .tracked_run import tracked_run

RM_COLUMNS = (
    ("pairs sso", "rm/pairs/sso", "{:d}"),
    ("pairs human", "rm/pairs/human", "{:d}"),
    ("skipped", "rm/skipped", "{:d}"),
    ("train acc", "rm/train_accuracy", "{:.3f}"),
    ("eval acc", "rm/eval/accuracy", "{:.3f}"),
    ("95% low", "rm/eval/accuracy_ci_low", "{:.3f}"),
    ("95% high", "rm/eval/accuracy_ci_high", "{:.3f}"),
    ("eval n", "rm/eval/n", "{:d}"),
    ("RB chat", "rm/eval/rewardbench/chat", "{:.3f}"),
    ("RB chat hard", "rm/eval/rewardbench/chat_hard", "{:.3f}"),
    ("RB safety", "rm/eval/rewardbench/safety", "{:.3f}"),
    ("RB reasoning", "rm/eval/rewardbench/reasoning", "{:.3f}"),
)


def sso_pairs(cfg: SSOConfig, logger: RunLogger, run_dir: Path) -> List[Dict]:
    """SSO records from data.pairs, or written now by the generator (default: the policy)."""
    if cfg.data.pairs:
        return read_records(cfg.data.pairs)
    model, tok = load_policy(cfg.model, cfg.schedule.seed)
    ctx = RunContext(cfg, tok, logger, run_dir)
    records, stats = generate_pairs(ctx, model.to(device(cfg.trainer)))
    logger.log_iteration(1, stats)
    return records


def training_pairs(cfg: SSOConfig, logger: RunLogger, run_dir: Path) -> Tuple[List[PrefPair], Dict]:
    pairs: List[PrefPair] = []
    stats = {"rm/pairs/sso": 0, "rm/pairs/human": 0, "rm/skipped": 0}
    if cfg.rm.sso:
        sso, skipped = from_records(sso_pairs(cfg, logger, run_dir))
        pairs += sso
        stats["rm/pairs/sso"], stats["rm/skipped"] = len(sso), skipped
    if cfg.rm.mix:
        human, skipped = read_pairs(cfg.rm.mix, cfg.rm.mix_limit)
        pairs += human
        stats["rm/pairs/human"] = len(human)
        stats["rm/skipped"] += skipped
    if not pairs:
        raise DataError("no reward-model training pairs: set rm.sso=true or rm.mix=<file>")
    return pairs, stats


def evaluate_rm(rm, tok, cfg: SSOConfig, run_dir: Path, logger: RunLogger) -> Dict[str, float]:
    """Accuracy (r+ > r-) on human-labelled pairs, overall and per subset, with 95% CIs."""
    pairs, skipped = read_pairs(cfg.rm.eval, cfg.rm.eval_limit)
    scores = score_pairs(
        rm,
        [encode_pair(tok, p, cfg.rm.max_length) for p in pairs],
        tok.pad_token_id,
        cfg.scoring.batch_size,
    )
    hits = (scores[:, 0] > scores[:, 1]).tolist()
    by_subset: Dict[str, List[bool]] = defaultdict(list)
    for pair, hit in zip(pairs, hits):
        by_subset[pair.subset].append(hit)
    metrics = {**accuracy_metrics("rm/eval", hits), "rm/eval/skipped": skipped}
    if len(by_subset) > 1:
        for subset, subset_hits in sorted(by_subset.items()):
            metrics.update(accuracy_metrics(f"rm/eval/{subset}", subset_hits))
        accuracy = {s: sum(h) / len(h) for s, h in by_subset.items()}
        metrics.update(section_scores(accuracy, "rm/eval/rewardbench"))
    rows = [
        {
            "prompt": p.prompt,
            "chosen": p.chosen,
            "rejected": p.rejected,
            "subset": p.subset,
            "reward_chosen": float(s[0]),
            "reward_rejected": float(s[1]),
        }
        for p, s in zip(pairs, scores)
    ]
    write_jsonl(rows, run_dir / "rm_eval.jsonl")
    logger.log_file(run_dir / "rm_eval.jsonl")
    return metrics


def run_rm(cfg: SSOConfig) -> List[Dict[str, float]]:
    with tracked_run(cfg, RM_COLUMNS) as (run_dir, logger, rows):
        pl.seed_everything(cfg.schedule.seed, workers=True, verbose=False)
        pairs, stats = training_pairs(cfg, logger, run_dir)
        rm, tok = load_reward_model(cfg.model, cfg.schedule.seed)
        encoded = [encode_pair(tok, p, cfg.rm.max_length) for p in pairs]
        trainer = make_trainer(cfg.trainer, cfg.schedule, logger, run_dir, cfg.rm.epochs)
        schedule = cfg.schedule
        trainer.fit(
            RewardModule(rm, build(schedule.optimizer), build(schedule.lr_scheduler), cfg.rm.lr),
            conversation_loader(
                encoded, cfg.rm.batch_size, tok.pad_token_id, shuffle=True, seed=schedule.seed
            ),
        )
        save_model(rm, tok, run_dir / "reward_model")
        rm.to(trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
        train_scores = score_pairs(rm, encoded, tok.pad_token_id, cfg.scoring.batch_size)
        stats["rm/train_accuracy"] = float((train_scores[:, 0] > train_scores[:, 1]).float().mean())
        if cfg.rm.eval:
            stats.update(evaluate_rm(rm, tok, cfg, run_dir, logger))
        logger.log_iteration(1, stats)
        rows.append(stats)
    return rows


def read_scoring_rows(path: str) -> List[Dict]:
    rows = []
    for lineno, row in read_jsonl(path):
        prompt, response = (
            row.get("prompt", row.get("instruction")),
            row.get("response", row.get("output")),
        )
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise DataError(
                f"{path}:{lineno}: needs text fields prompt (or instruction) and "
                f"response (or output)"
            )
        rows.append({**row, "prompt": prompt, "response": response})
    return rows


def run_rm_score(cfg: SSOConfig) -> List[Dict[str, float]]:
    """Rewards for every row of rm.score_input, written to scores.jsonl in the run folder."""
    rows = read_scoring_rows(cfg.rm.score_input)
    with tracked_run(
        cfg, (("scored", "rm_score/n", "{:d}"), ("mean reward", "rm_score/mean", "{:.4f}"))
    ) as (run_dir, logger, summary):
        rm, tok = load_reward_model(cfg.model, checkpoint=cfg.rm.checkpoint)
        seqs = [encode_answer(tok, r["prompt"], r["response"], cfg.rm.max_length) for r in rows]
        scores = score_conversations(rm, seqs, tok.pad_token_id, cfg.scoring.batch_size)
        write_jsonl(
            [{**r, "reward": float(s)} for r, s in zip(rows, scores)], run_dir / "scores.jsonl"
        )
        logger.log_file(run_dir / "scores.jsonl")
        stats = {"rm_score/n": len(rows), "rm_score/mean": float(scores.mean()) if rows else 0.0}
        logger.log_iteration(1, stats)
        summary.append(stats)
    return summary
