"""Online SSO (DESIGN.md section 4): each iteration the current policy writes its own
principle-steered pairs, is trained on them, and becomes the next iteration's policy and
reference. Everything an iteration writes stays on disk and in MLflow whatever follows."""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl

from ..config import SSOConfig, SSOError
from ..data import load_prompts, write_jsonl
from ..models import check_available, load_policy
from ..pair_builder import PairRound, build_pairs
from ..tracking import RunLogger
from .common import round_stats, tracked_run, train_on_pairs

log = logging.getLogger(__name__)


class EmptyIteration(SSOError):
    """The filter dropped every pair of an iteration and `mode.on_empty=stop`."""


def iteration_queries(prompts: List[str], n: int, iteration: int, seed: int) -> List[str]:
    """Iteration k's n queries: the next slice of one seeded shuffle, wrapping around."""
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    start = (iteration - 1) * n
    return [prompts[order[(start + i) % len(order)]] for i in range(n)]


def write_round(rnd: PairRound, it_dir: Path, logger: RunLogger, iteration: int) -> None:
    write_jsonl(rnd.kept, it_dir / "pairs.jsonl")
    write_jsonl(rnd.generated, it_dir / "generated.jsonl")
    logger.log_file(it_dir / "pairs.jsonl", it_dir.name)


def run_iteration(model, tok, cfg: SSOConfig, logger: RunLogger, iteration: int,
                  queries: List[str], run_dir: Path) -> Dict[str, float]:
    """Sample, filter, write, train, save: one iteration's row of the summary."""
    it_dir = run_dir / f"iter_{iteration}"
    pl.seed_everything(cfg.schedule.seed + iteration, workers=True, verbose=False)
    rnd = build_pairs(model, tok, queries, cfg, random.Random(cfg.schedule.seed + iteration))
    write_round(rnd, it_dir, logger, iteration)
    row = {"iteration": iteration, **round_stats(rnd)}
    logger.log_iteration(iteration, row)
    if not rnd.kept:
        msg = (f"iteration {iteration}: the filter dropped all {len(rnd.generated)} pairs "
               f"({dict(rnd.drops)}); the samples are in {it_dir / 'generated.jsonl'}")
        if cfg.mode.on_empty == "stop":
            raise EmptyIteration(msg + "; stopping (mode.on_empty=continue goes on)")
        log.warning("%s; going on with the policy unchanged", msg)
        return row
    return {**row, **train_on_pairs(model, tok, rnd.kept, cfg, logger, iteration, run_dir)}


def run_online(cfg: SSOConfig) -> List[Dict[str, float]]:
    """The whole online job; returns one summary row per iteration."""
    prompts = load_prompts(cfg.data.prompts)  # bad input fails here, before any work
    check_available(cfg.model)
    with tracked_run(cfg) as (run_dir, logger, rows):
        model, tok = load_policy(cfg.model, cfg.schedule.seed)
        model.to("cuda" if cfg.accelerator == "gpu" else "cpu")
        for it in range(1, cfg.schedule.iterations + 1):
            queries = iteration_queries(prompts, cfg.schedule.queries_per_iteration, it,
                                        cfg.schedule.seed)
            rows.append(run_iteration(model, tok, cfg, logger, it, queries, run_dir))
    return rows
