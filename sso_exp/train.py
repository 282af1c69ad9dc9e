"""Training one iteration: score the pairs under the policy as it is now (the reference
for DPO/IPO, and the on-policyness figures), then fit it with the SSO loss."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import pytorch_lightning as pl
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .config import SSOConfig
from .dataset import (ON_POLICY, PairDataset, encode_records, loader, pair_names,
                      sequence_names)
from .logprobs import Encoded, score
from .losses import NEEDS_REFERENCE, SeqLogps
from .policy_module import SSOPolicyModule
from .tracking import RunLogger


def score_sequences(model: PreTrainedModel, encoded: Dict[str, List[Encoded]], pad_id: int,
                    batch_size: int) -> Dict[str, SeqLogps]:
    return {name: score(model, seqs, pad_id, batch_size, desc=f"scoring {name}")
            for name, seqs in encoded.items()}


def needed_sequences(cfg: SSOConfig) -> List[str]:
    """What the iteration encodes: the loss's pairs and the on-policyness sequences."""
    return list(dict.fromkeys(sequence_names(pair_names(cfg.loss.use_g)) + list(ON_POLICY)))


def scored_names(cfg: SSOConfig) -> Sequence[str]:
    """What is scored before training: everything for DPO/IPO, else on-policyness only."""
    return needed_sequences(cfg) if cfg.loss.name in NEEDS_REFERENCE else ON_POLICY


def fit_policy(model: PreTrainedModel, tok: PreTrainedTokenizerBase,
               encoded: Dict[str, List[Encoded]], scores: Dict[str, SeqLogps], cfg: SSOConfig,
               logger: RunLogger, iteration: int, run_dir: Path) -> Dict[str, float]:
    """Train on the iteration's pairs; returns the training metrics' iteration means."""
    s = cfg.schedule
    pairs = pair_names(cfg.loss.use_g)
    reference = scores if cfg.loss.name in NEEDS_REFERENCE else None
    data = loader(PairDataset(encoded, pairs, reference), s.batch_size, tok.pad_token_id,
                  shuffle=True, seed=s.seed + iteration)
    module = SSOPolicyModule(model, cfg.loss, s)
    trainer = pl.Trainer(
        accelerator=cfg.accelerator, devices=1, precision=s.precision, max_epochs=s.epochs,
        accumulate_grad_batches=s.grad_accum, gradient_clip_val=s.max_grad_norm,
        logger=logger, log_every_n_steps=1, enable_checkpointing=False,
        enable_model_summary=False, default_root_dir=str(run_dir))
    trainer.fit(module, data)
    logger.step_offset += trainer.global_step
    return module.mean_metrics()
