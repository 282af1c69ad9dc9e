"""The LightningModule that trains a causal LM on preference pairs: a forward per group of
pairs (data/pairs.py: `forwards`; each pair's chosen and rejected stacked), the loss from an
`Objective` (SSO's, or v2's generator or policy loss), the configured optimizer and
schedule. Metrics are averaged across ranks."""

from __future__ import annotations

from typing import Callable, Dict, Sequence

import pytorch_lightning as pl
import torch
from transformers import PreTrainedModel

from ..config import TrainerConfig
from ..data.pairs import Pair, SeqLogps
from ..models.logprobs import causal_lm, sequence_logps
from .objectives import Objective
from .optim import optimizers

MEAN = "mean/"  # epoch means, kept out of MLflow: the iteration's summary reads them
STEPS = "optimizer_steps"  # how far the run went, for the next run's step offset


def split_pairs(out: SeqLogps, names: Sequence[str]) -> Dict[str, Pair]:
    """A forward's sequences, each pair's [chosen; rejected] after the other, back into
    its named pairs."""
    halves = [
        SeqLogps(*parts)
        for parts in zip(out.sum.chunk(2 * len(names)), out.count.chunk(2 * len(names)))
    ]
    return {name: Pair(*halves[2 * k : 2 * k + 2]) for k, name in enumerate(names)}


class SSOPolicyModule(pl.LightningModule):
    def __init__(
        self,
        model: PreTrainedModel,
        objective: Objective,
        optimizer: Callable,
        lr_scheduler: Callable,
        trainer_cfg: TrainerConfig,
    ):
        super().__init__()
        self.model, self.objective = model, objective
        self.make_optimizer, self.make_scheduler = optimizer, lr_scheduler
        self.checkpointing = trainer_cfg.gradient_checkpointing
        self.logps = dict(chunk=trainer_cfg.logps_chunk, compiled=trainer_cfg.compile)

    def on_fit_start(self) -> None:
        self.model.train()  # from_pretrained and sampling leave it in eval mode
        if self.checkpointing:  # keep layer inputs only; recompute the rest in backward
            causal_lm(self.model).activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False}
            )

    def on_fit_end(self) -> None:
        if self.checkpointing:
            causal_lm(self.model).activation_checkpointing_disable()

    def on_train_end(self) -> None:
        # callback metrics are what a spawned rank 0 hands back to the main process
        self.trainer.callback_metrics[STEPS] = torch.tensor(float(self.trainer.global_step))

    def training_step(self, batch: Dict, batch_idx: int) -> torch.Tensor:
        policy = {}
        for names, packed in batch["forwards"]:
            policy.update(split_pairs(self.sequence_logps(packed), names))
        loss, metrics = self.objective.loss(policy, batch.get("ref"))
        metrics = {self.objective.prefix + k: v for k, v in metrics.items()}
        size = len(next(iter(policy.values())).chosen.sum)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=size, sync_dist=True)
        self.log_dict(
            {MEAN + k: v for k, v in metrics.items()},
            on_step=False,
            on_epoch=True,
            batch_size=size,
            sync_dist=True,
            logger=False,
        )
        self.log("train_loss", loss.detach(), prog_bar=True, logger=False)
        return loss

    def sequence_logps(self, batch: Dict) -> SeqLogps:
        return sequence_logps(self.model, batch, **self.logps)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]  # LoRA: adapters only
        return optimizers(
            params, self.make_optimizer, self.make_scheduler, self.trainer, self.objective.lr
        )


def optimizer_steps(trainer: pl.Trainer) -> int:
    return int(trainer.callback_metrics[STEPS])


def mean_metrics(trainer: pl.Trainer) -> Dict[str, float]:
    """Each training metric averaged over the run (across ranks too): the iteration's
    summary. The trainer's callback metrics come back to the main process from spawned ranks."""
    return {
        k[len(MEAN) :]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(MEAN)
    }
