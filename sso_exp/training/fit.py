"""Training with Lightning: a Trainer from the trainer config (devices, strategy, precision,
callbacks built by Hydra), and `fit`, which trains a model on pairs already scored under it
(the reference for DPO/IPO), with LoRA adapters when the model config asks for them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Tuple

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from transformers import PreTrainedModel

from ..config import LoraSettings, ScheduleConfig, TrainerConfig
from ..data.encoding import Encoded
from ..data.pairs import PairDataset, SeqLogps, loader
from ..errors import ConfigError, NonFiniteTraining
from ..models.loading import own_memory
from ..models.logprobs import shares_prefixes
from ..models.lora import add_lora, merge_lora
from ..runtime.memory import release_memory, set_malloc
from .callbacks import (
    CompiledLayers,
    FiniteTraining,
    FreedGradients,
    FreshCasts,
    MasterWeights,
    TrainingAttention,
    TrimmedHeap,
)
from .objectives import Objective
from .optim import build
from .policy_module import SSOPolicyModule, mean_metrics, optimizer_steps
from .sharded import ShardedPolicyModule


def callbacks(trainer_cfg: TrainerConfig) -> List[pl.Callback]:
    """The configured callbacks, and those the run needs: fresh autocast casts after every
    fit, no gradients left after it, a trimmed heap unless its thresholds are set
    (trainer=fast keeps it, for speed), fp32 master weights for bf16-true (ours: Lightning
    runs it as 32-true), the stop on a non-finite gradient or weight, compiled layers for
    trainer.compile, the training attention kernel for trainer.attention."""
    built = [instantiate(c) for c in trainer_cfg.callbacks.values() if c is not None]
    built += [FreshCasts(), FreedGradients()]
    if (
        trainer_cfg.malloc_trim_threshold_kb is None
        and trainer_cfg.malloc_mmap_threshold_kb is None
    ):
        built.append(TrimmedHeap())
    if trainer_cfg.precision == "bf16-true":
        built.append(MasterWeights())
    built.append(FiniteTraining())  # after MasterWeights: it checks the masters' gradients
    if trainer_cfg.compile:
        built.append(CompiledLayers())
    if trainer_cfg.attention not in ("model", "auto"):
        built.append(TrainingAttention(trainer_cfg.attention))
    return built


def hardware(trainer_cfg: TrainerConfig) -> Dict[str, Any]:
    """The Trainer's accelerator, devices, nodes, strategy and precision (bf16-true is ours:
    Lightning runs it as 32-true)."""
    return {
        "accelerator": trainer_cfg.accelerator,
        "devices": trainer_cfg.devices,
        "num_nodes": trainer_cfg.num_nodes,
        "strategy": instantiate(trainer_cfg.strategy)
        if isinstance(trainer_cfg.strategy, dict)
        else trainer_cfg.strategy,
        "precision": "32-true" if trainer_cfg.precision == "bf16-true" else trainer_cfg.precision,
    }


def check_trainer(trainer_cfg: TrainerConfig) -> None:
    """Build a Trainer as configured without running it, so that what Lightning refuses
    (FSDP on a CPU, a GPU the machine lacks, DeepSpeed not installed) stops the run before
    any work, naming the key."""
    if trainer_cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"config key 'trainer.accelerator': '{trainer_cfg.accelerator}', but this machine "
            "has no GPU that torch can use; on a CPU use trainer=default, or trainer=ddp for ranks"
        )
    if "fsdp" in trainer_cfg.strategy_name:
        raise ConfigError(
            f"config key 'trainer.strategy': '{trainer_cfg.strategy_name}' is Lightning's "
            "FSDP1, which needs GPUs and keeps the model wrapped; use trainer=fsdp (FSDP2, "
            "whole weights gathered for sampling after every training)"
        )
    try:
        pl.Trainer(**hardware(trainer_cfg), logger=False, enable_checkpointing=False)
    except (MisconfigurationException, ImportError, RuntimeError, ValueError) as err:
        text = str(err)
        key = next((k for k in ("strategy", "accelerator") if k in text.lower()), "devices")
        raise ConfigError(f"config key 'trainer.{key}': {text}") from None


def make_trainer(
    trainer_cfg: TrainerConfig, schedule: ScheduleConfig, logger: Logger, run_dir: Path, epochs: int
) -> pl.Trainer:
    """A Trainer for one training run; weights are saved as safetensors by the pipeline,
    so Lightning's own checkpoints are off."""
    set_malloc(trainer_cfg.malloc_mmap_threshold_kb, trainer_cfg.malloc_trim_threshold_kb)
    return pl.Trainer(
        **hardware(trainer_cfg),
        max_epochs=epochs,
        accumulate_grad_batches=schedule.grad_accum,
        gradient_clip_val=schedule.max_grad_norm,
        use_distributed_sampler=False,  # RankShards deals the ranks' batches
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
        callbacks=callbacks(trainer_cfg),
    )


class ScoredPairs(NamedTuple):
    """A round's encoded sequences, their log-probs under the model before training (the
    reference, scoring's on-policyness) and the pad token their batches are padded with."""

    encoded: Dict[str, List[Encoded]]
    scores: Dict[str, SeqLogps]
    pad_id: int


@dataclass
class FitSetup:
    """How and where a training run goes: the config parts it uses, the logger its
    metrics go to and the run folder (Lightning's root)."""

    schedule: ScheduleConfig
    trainer_cfg: TrainerConfig
    lora: LoraSettings
    logger: Logger
    run_dir: Path


def fit(
    model: PreTrainedModel,
    pairs: ScoredPairs,
    objective: Objective,
    setup: FitSetup,
    iteration: int,
) -> Tuple[Dict[str, float], int]:
    """Train on the pairs (in place; LoRA adapters are merged back); returns the training
    metrics' means over the run and the optimizer steps taken."""
    schedule, trainer_cfg = setup.schedule, setup.trainer_cfg
    reference = pairs.scores if objective.needs_reference else None
    data = loader(
        PairDataset(pairs.encoded, objective.pairs, reference),
        schedule.batch_size,
        pairs.pad_id,
        shuffle=True,
        seed=schedule.seed + iteration,
        share=shares_prefixes(model),
    )
    trained = add_lora(model, setup.lora) if setup.lora.enabled else model
    release_memory()  # the scoring's heap, before the optimizer state is allocated
    trainer = make_trainer(trainer_cfg, schedule, setup.logger, setup.run_dir, schedule.epochs)
    kind = ShardedPolicyModule if trainer_cfg.sharded else SSOPolicyModule
    optimizer, lr_scheduler = build(schedule.optimizer), build(schedule.lr_scheduler)
    module = kind(trained, objective, optimizer, lr_scheduler, trainer_cfg)
    if trainer.strategy.root_device.type == "cpu":
        own_memory(trained)
    try:
        trainer.fit(module, data)
    except NonFiniteTraining as err:
        raise NonFiniteTraining(f"iteration {iteration}: {err}") from None
    finally:
        if trained is not model:
            merge_lora(trained)
        model.to(trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
    result = mean_metrics(trainer), optimizer_steps(trainer)
    del trainer, module
    release_memory()  # the Trainer's cycles hold the optimizer state: gone before scoring
    return result
