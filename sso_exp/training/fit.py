"""Training with Lightning: a Trainer from the trainer config (devices, strategy, precision,
callbacks built by Hydra), and `fit`, which trains a model on pairs already scored under it
(the reference for DPO/IPO), with LoRA adapters when the model config asks for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from transformers import PreTrainedModel

from ..config import LoraSettings, ScheduleConfig, TrainerConfig
from ..data.encoding import Encoded
from ..data.pairs import PairDataset, SeqLogps, loader
from ..errors import ConfigError
from ..models.loading import own_memory
from ..models.logprobs import shares_prefixes
from ..models.lora import add_lora, merge_lora
from ..runtime.memory import release_memory, set_malloc
from .callbacks import CompiledLayers, FreshCasts, MasterWeights, TrainingAttention, TrimmedHeap
from .objectives import Objective
from .optim import build
from .policy_module import SSOPolicyModule, mean_metrics, optimizer_steps
from .sharded import ShardedPolicyModule


def callbacks(t: TrainerConfig) -> List[pl.Callback]:
    """The configured callbacks, and those the run needs: fresh autocast casts after every
    fit, a trimmed heap unless its thresholds are set (trainer=fast keeps it, for speed),
    fp32 master weights for bf16-true (ours: Lightning runs it as 32-true), compiled layers
    for trainer.compile, the training attention kernel for trainer.attention."""
    built = [instantiate(c) for c in t.callbacks.values() if c is not None]
    built.append(FreshCasts())
    if t.malloc_trim_threshold_kb is None and t.malloc_mmap_threshold_kb is None:
        built.append(TrimmedHeap())
    if t.precision == "bf16-true":
        built.append(MasterWeights())
    if t.compile:
        built.append(CompiledLayers())
    if t.attention not in ("model", "auto"):
        built.append(TrainingAttention(t.attention))
    return built


def hardware(t: TrainerConfig) -> Dict[str, Any]:
    """The Trainer's accelerator, devices, nodes, strategy and precision (bf16-true is ours:
    Lightning runs it as 32-true)."""
    return {
        "accelerator": t.accelerator,
        "devices": t.devices,
        "num_nodes": t.num_nodes,
        "strategy": instantiate(t.strategy) if isinstance(t.strategy, dict) else t.strategy,
        "precision": "32-true" if t.precision == "bf16-true" else t.precision,
    }


def check_trainer(t: TrainerConfig) -> None:
    """Build a Trainer as configured without running it, so that what Lightning refuses
    (FSDP on a CPU, a GPU the machine lacks, DeepSpeed not installed) stops the run before
    any work, naming the key."""
    if t.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"config key 'trainer.accelerator': '{t.accelerator}', but this machine has no "
            "GPU that torch can use; on a CPU use trainer=default, or trainer=ddp for ranks"
        )
    if "fsdp" in t.strategy_name:
        raise ConfigError(
            f"config key 'trainer.strategy': '{t.strategy_name}' is Lightning's "
            "FSDP1, which needs GPUs and keeps the model wrapped; use trainer=fsdp (FSDP2, "
            "whole weights gathered for sampling after every training)"
        )
    try:
        pl.Trainer(**hardware(t), logger=False, enable_checkpointing=False)
    except (MisconfigurationException, ImportError, RuntimeError, ValueError) as err:
        text = str(err)
        key = next((k for k in ("strategy", "accelerator") if k in text.lower()), "devices")
        raise ConfigError(f"config key 'trainer.{key}': {text}") from None


def make_trainer(
    t: TrainerConfig, s: ScheduleConfig, logger: Logger, run_dir: Path, epochs: int
) -> pl.Trainer:
    """A Trainer for one training run; weights are saved as safetensors by the pipeline,
    so Lightning's own checkpoints are off."""
    set_malloc(t.malloc_mmap_threshold_kb, t.malloc_trim_threshold_kb)
    return pl.Trainer(
        **hardware(t),
        max_epochs=epochs,
        accumulate_grad_batches=s.grad_accum,
        gradient_clip_val=s.max_grad_norm,
        use_distributed_sampler=False,  # RankShards deals the ranks' batches
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
        callbacks=callbacks(t),
    )


def fit(
    model: PreTrainedModel,
    pad_id: int,
    encoded: Dict[str, List[Encoded]],
    scores: Dict[str, SeqLogps],
    objective: Objective,
    schedule: ScheduleConfig,
    trainer: TrainerConfig,
    lora: LoraSettings,
    logger: Logger,
    iteration: int,
    run_dir: Path,
) -> Tuple[Dict[str, float], int]:
    """Train on the pairs (in place; LoRA adapters are merged back); returns the training
    metrics' means over the run and the optimizer steps taken."""
    s = schedule
    reference = scores if objective.needs_reference else None
    data = loader(
        PairDataset(encoded, objective.pairs, reference),
        s.batch_size,
        pad_id,
        shuffle=True,
        seed=s.seed + iteration,
        share=shares_prefixes(model),
    )
    trained = add_lora(model, lora) if lora.enabled else model
    release_memory()  # the scoring's heap, before the optimizer state is allocated
    pl_trainer = make_trainer(trainer, s, logger, run_dir, s.epochs)
    kind = ShardedPolicyModule if trainer.sharded else SSOPolicyModule
    module = kind(trained, objective, build(s.optimizer), build(s.lr_scheduler), trainer)
    if pl_trainer.strategy.root_device.type == "cpu":
        own_memory(trained)
    try:
        pl_trainer.fit(module, data)
    finally:
        if trained is not model:
            merge_lora(trained)
        model.to(pl_trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
    result = mean_metrics(pl_trainer), optimizer_steps(pl_trainer)
    del pl_trainer, module
    release_memory()  # the Trainer's cycles hold the optimizer state: gone before scoring
    return result
