"""Offline SSO (DESIGN.md section 4): the pairs are built once by a generator model, or read
from a file (SSO records in the authors' format, or human-labelled pairs for the baseline),
and the policy is trained on them once (its epochs set by the schedule). Files go to
iter_1/ as in an online run's first iteration."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl

from ..config import ConfigError, SSOConfig
from ..data import load_prompts
from ..preferences import read_training_pairs
from ..precision import device
from ..models import check_available, load_policy
from ..objectives import policy_objective
from ..pair_builder import build_pairs
from ..tracking import RunLogger
from .common import round_stats, tracked_run, train_on_pairs
from .online import EmptyIteration, iteration_queries, write_round


def generate_pairs(cfg: SSOConfig, policy, tok, logger: RunLogger, run_dir: Path):
    """Pairs written by the generator (the policy itself unless `generator` is set)."""
    writer, wtok = (policy, tok) if cfg.generator is None else load_policy(cfg.generator,
                                                                           cfg.schedule.seed)
    writer.to(policy.device)
    queries = iteration_queries(load_prompts(cfg.data.prompts),
                                cfg.schedule.queries_per_iteration, 1, cfg.schedule.seed)
    rnd = build_pairs(writer, wtok, queries, cfg, random.Random(cfg.schedule.seed))
    write_round(rnd, run_dir / "iter_1", logger)
    return rnd.kept, round_stats(rnd)


def run_offline(cfg: SSOConfig) -> List[Dict[str, float]]:
    records = read_training_pairs(cfg.data.pairs) if cfg.data.pairs else None  # fail fast
    if records is None:
        load_prompts(cfg.data.prompts)
        if cfg.generator is not None:
            check_available(cfg.generator)
    if records and policy_objective(cfg).pairs != ["main"] and not all(r["p_system"] for r in records):
        raise ConfigError(f"config key 'loss.use_g': {cfg.data.pairs} has pairs without "
                          f"principles (human pairs?); train them with loss.use_g=false")
    check_available(cfg.model)
    with tracked_run(cfg) as (run_dir, logger, rows):
        pl.seed_everything(cfg.schedule.seed, workers=True, verbose=False)
        model, tok = load_policy(cfg.model, cfg.schedule.seed)
        model.to(device(cfg.trainer))
        if records is None:
            records, row = generate_pairs(cfg, model, tok, logger, run_dir)
        else:
            row = {"pairs/generated": len(records), "pairs/kept": len(records)}
            logger.log_file(Path(cfg.data.pairs), "iter_1")
        row = {"iteration": 1, **row}
        logger.log_iteration(1, row)
        if not records:
            raise EmptyIteration("the filter dropped every generated pair; nothing to train on")
        rows.append({**row, **train_on_pairs(model, tok, records, cfg, logger, 1, run_dir)})
    return rows
