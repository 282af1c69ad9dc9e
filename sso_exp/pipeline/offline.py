"""Offline SSO (docs/algorithm.md §6): the pairs are built once by a generator model, or read
from a file (SSO records in the authors' format, or human-labelled pairs for the baseline),
and the policy is trained on them once (its epochs set by the schedule). Files go to
iter_1/ as in an online run's first iteration."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl

from ..config import SSOConfig
from ..data.preferences import read_training_pairs
from ..models.device import device
from ..models.loading import load_policy
from .context import RunContext
from .stages import EmptyIteration, generate_pairs, train_on_pairs
from .tracked_run import tracked_run


def run_offline(cfg: SSOConfig) -> List[Dict[str, float]]:
    records = read_training_pairs(cfg.data.pairs, cfg.data.equal_pairs) if cfg.data.pairs else None
    with tracked_run(cfg) as (run_dir, logger, rows):
        pl.seed_everything(cfg.schedule.seed, workers=True, verbose=False)
        model, tok = load_policy(cfg.model, cfg.schedule.seed)
        model.to(device(cfg.trainer))
        ctx = RunContext(cfg, tok, logger, run_dir)
        if records is None:
            records, row = generate_pairs(ctx, model)
        else:
            row = {"pairs/generated": len(records), "pairs/kept": len(records)}
            logger.log_file(Path(cfg.data.pairs), "iter_1")
        row = {"iteration": 1, **row}
        logger.log_iteration(1, row)
        if not records:
            raise EmptyIteration("the filter dropped every generated pair; nothing to train on")
        rows.append({**row, **train_on_pairs(ctx, model, records, 1)})
    return rows
