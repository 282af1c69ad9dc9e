"""The optimizer and learning-rate schedule of every LightningModule here, from the
partials Hydra builds out of `schedule.optimizer` and `schedule.lr_scheduler` (by default
AdamW, then linear warmup and cosine decay per optimizer step, as the authors' script)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterable, Optional

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from transformers import get_cosine_schedule_with_warmup


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over `warmup_ratio` of the steps, then cosine decay to zero."""
    return get_cosine_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)


def build(cfg: Any) -> Callable:
    """The partial a `_partial_` config names (lists as lists, not ListConfig)."""
    return instantiate(cfg, _convert_="all")


def optimizers(
    params: Iterable[torch.nn.Parameter],
    optimizer: Callable,
    lr_scheduler: Callable,
    trainer: pl.Trainer,
    lr: Optional[float] = None,
) -> Dict:
    """What `configure_optimizers` returns. A fused optimizer (AdamW's is 4x faster than
    its per-tensor loop on CPU) where Lightning allows it: its mixed-precision plugins
    refuse to clip the gradients of an optimizer that could unscale them itself."""
    kwargs: Dict[str, Any] = {} if lr is None else {"lr": lr}
    target = getattr(optimizer, "func", optimizer)
    if "fused" in inspect.signature(target).parameters:
        kwargs["fused"] = not trainer.precision.endswith("-mixed")
    opt = optimizer(params, **kwargs)
    sched = lr_scheduler(opt, total_steps=int(trainer.estimated_stepping_batches))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
