"""Training on a set of pairs: score them under the model as it is now (the reference for
DPO/IPO, and the on-policyness figures), then fit it to an objective with Lightning."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .config import SSOConfig
from .dataset import PairDataset, loader
from .logprobs import Encoded, score
from .losses import SeqLogps
from .objectives import Objective
from .policy_module import SSOPolicyModule
from .tracking import RunLogger


def score_sequences(model: PreTrainedModel, encoded: Dict[str, List[Encoded]], pad_id: int,
                    batch_size: int) -> Dict[str, SeqLogps]:
    return {name: score(model, seqs, pad_id, batch_size, desc=f"scoring {name}")
            for name, seqs in encoded.items()}


def make_trainer(cfg: SSOConfig, logger: RunLogger, run_dir: Path, epochs: int) -> pl.Trainer:
    """A Trainer for one training run; weights are saved as safetensors by the pipeline,
    so Lightning's own checkpoints are off. The tqdm bar prints in logs too."""
    s = cfg.schedule
    return pl.Trainer(
        accelerator=cfg.accelerator, devices=1, precision=s.precision, max_epochs=epochs,
        accumulate_grad_batches=s.grad_accum, gradient_clip_val=s.max_grad_norm,
        logger=logger, log_every_n_steps=1, enable_checkpointing=False,
        enable_model_summary=False, default_root_dir=str(run_dir),
        callbacks=[TQDMProgressBar()])


def fit(model: PreTrainedModel, tok: PreTrainedTokenizerBase, encoded: Dict[str, List[Encoded]],
        scores: Dict[str, SeqLogps], objective: Objective, cfg: SSOConfig, logger: RunLogger,
        iteration: int, run_dir: Path) -> Dict[str, float]:
    """Train on the pairs; returns the training metrics' means over the run."""
    s = cfg.schedule
    reference = scores if objective.needs_reference else None
    data = loader(PairDataset(encoded, objective.pairs, reference), s.batch_size,
                  tok.pad_token_id, shuffle=True, seed=s.seed + iteration)
    module = SSOPolicyModule(model, objective, s)
    trainer = make_trainer(cfg, logger, run_dir, s.epochs)
    trainer.fit(module, data)
    logger.step_offset += trainer.global_step
    return module.mean_metrics()
