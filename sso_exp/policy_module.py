"""The LightningModule that trains a causal LM on preference pairs: one forward per pair
(chosen and rejected stacked), the loss from an `Objective` (SSO's, or v2's generator or
policy loss), AdamW with warmup + cosine."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict

import pytorch_lightning as pl
import torch
from transformers import PreTrainedModel

from .config import ScheduleConfig
from .logprobs import sequence_logps
from .losses import Pair, SeqLogps
from .objectives import Objective
from .optim import adamw_cosine


def split_pair(out: SeqLogps) -> Pair:
    """A stacked [chosen; rejected] forward back into its two halves."""
    b = out.sum.shape[0] // 2
    return Pair(SeqLogps(out.sum[:b], out.count[:b]), SeqLogps(out.sum[b:], out.count[b:]))


class SSOPolicyModule(pl.LightningModule):
    def __init__(self, model: PreTrainedModel, objective: Objective, schedule: ScheduleConfig):
        super().__init__()
        self.model, self.objective, self.schedule = model, objective, schedule
        self._sums: Dict[str, float] = defaultdict(float)
        self._steps = 0

    def on_fit_start(self) -> None:
        self.model.train()  # from_pretrained and sampling leave it in eval mode

    def training_step(self, batch: Dict, batch_idx: int) -> torch.Tensor:
        pairs = [k for k in batch if k != "ref"]
        policy = {p: split_pair(sequence_logps(self.model, batch[p])) for p in pairs}
        loss, metrics = self.objective.loss(policy, batch.get("ref"))
        metrics = {self.objective.prefix + k: v for k, v in metrics.items()}
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=len(next(iter(policy.values())).chosen.sum))
        self.log("train_loss", loss.detach(), prog_bar=True, logger=False)
        for key, value in metrics.items():
            self._sums[key] += float(value)
        self._steps += 1
        return loss

    def mean_metrics(self) -> Dict[str, float]:
        """Each training metric averaged over the batches seen: the iteration's summary."""
        return {k: v / max(self._steps, 1) for k, v in self._sums.items()}

    def configure_optimizers(self):
        return adamw_cosine(self.model.parameters(), self.schedule, self.objective.lr,
                            int(self.trainer.estimated_stepping_batches))
