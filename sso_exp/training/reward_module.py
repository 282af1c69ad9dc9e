"""The LightningModule that trains a Bradley-Terry reward model: -log sigmoid(r+ - r-) on
batches of chosen then rejected conversations (data/pairs.py)."""

from __future__ import annotations

from typing import Callable, Dict

import pytorch_lightning as pl
from torch import Tensor
from transformers import PreTrainedModel

from ..models.rewards import rewards
from .losses import bradley_terry_loss
from .optim import optimizers


class RewardModule(pl.LightningModule):
    def __init__(self, rm: PreTrainedModel, optimizer: Callable, lr_scheduler: Callable, lr: float):
        super().__init__()
        self.rm, self.lr = rm, lr
        self.make_optimizer, self.make_scheduler = optimizer, lr_scheduler

    def on_fit_start(self) -> None:
        self.rm.train()  # from_pretrained and scoring leave it in eval mode

    def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
        chosen, rejected = rewards(self.rm, batch).chunk(2)
        loss, metrics = bradley_terry_loss(chosen, rejected)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=len(chosen), sync_dist=True)
        self.log("rm_loss", loss, prog_bar=True, logger=False)
        return loss

    def configure_optimizers(self):
        return optimizers(
            self.rm.parameters(), self.make_optimizer, self.make_scheduler, self.trainer, self.lr
        )
