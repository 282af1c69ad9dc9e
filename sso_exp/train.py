"""Training on a set of pairs already scored under the model as it is now (the reference for
DPO/IPO): fit the model to an objective with Lightning, with the trainer config's devices,
strategy and precision, and LoRA adapters when the model config asks for them."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl
from hydra.utils import instantiate
from pytorch_lightning.callbacks import TQDMProgressBar
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .callbacks import CompiledLayers, FreshCasts, MasterWeights
from .config import SSOConfig
from .dataset import PairDataset, loader
from .heap import set_malloc
from .logprobs import Encoded
from .losses import SeqLogps
from .models import add_lora, merge_lora
from .objectives import Objective
from .policy_module import SSOPolicyModule, mean_metrics, optimizer_steps
from .tracking import RunLogger


def make_trainer(cfg: SSOConfig, logger: RunLogger, run_dir: Path, epochs: int) -> pl.Trainer:
    """A Trainer for one training run; weights are saved as safetensors by the pipeline,
    so Lightning's own checkpoints are off. The tqdm bar prints in logs too. bf16-true is
    ours (`MasterWeights`): Lightning itself runs it as 32-true."""
    s, t = cfg.schedule, cfg.trainer
    set_malloc(t.malloc_mmap_threshold_kb, t.malloc_trim_threshold_kb)
    strategy = instantiate(t.strategy) if isinstance(t.strategy, dict) else t.strategy
    callbacks: list = [TQDMProgressBar(), FreshCasts()]
    if t.precision == "bf16-true":
        callbacks.append(MasterWeights())
    if t.compile:
        callbacks.append(CompiledLayers())
    return pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=strategy,
        precision="32-true" if t.precision == "bf16-true" else t.precision, max_epochs=epochs,
        accumulate_grad_batches=s.grad_accum, gradient_clip_val=s.max_grad_norm,
        use_distributed_sampler=False,  # RankShards deals the ranks' batches
        logger=logger, log_every_n_steps=1, enable_checkpointing=False,
        enable_model_summary=False, default_root_dir=str(run_dir),
        callbacks=callbacks)


def fit(model: PreTrainedModel, tok: PreTrainedTokenizerBase, encoded: Dict[str, List[Encoded]],
        scores: Dict[str, SeqLogps], objective: Objective, cfg: SSOConfig, logger: RunLogger,
        iteration: int, run_dir: Path) -> Dict[str, float]:
    """Train on the pairs (in place; LoRA adapters are merged back); returns the training
    metrics' means over the run."""
    s, t = cfg.schedule, cfg.trainer
    reference = scores if objective.needs_reference else None
    data = loader(PairDataset(encoded, objective.pairs, reference), s.batch_size,
                  tok.pad_token_id, shuffle=True, seed=s.seed + iteration)
    trained = add_lora(model, cfg.model.lora) if cfg.model.lora.enabled else model
    trainer = make_trainer(cfg, logger, run_dir, s.epochs)
    try:
        trainer.fit(SSOPolicyModule(trained, objective, s, t), data)
    finally:
        if trained is not model:
            merge_lora(trained)
    logger.step_offset += optimizer_steps(trainer)
    return mean_metrics(trainer)
