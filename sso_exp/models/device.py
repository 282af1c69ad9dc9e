"""Lightning's precision names for the work done outside the Trainer (sampling, scoring):
it runs under the same autocast as training, so reference and policy log-probs agree at the
first step, and bf16 speeds up sampling as it does training. Sampling swaps the float32
weights for bf16 copies meanwhile (`autocast_weights`); scoring does where training computes
with bf16 weights too (`trained_weights`), so reference and policy still agree, and no
activation is cast at every matmul."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator, Optional

import torch

from ..config import TrainerConfig
from ..distributed import local_rank

AUTOCAST = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16}


def device(trainer_cfg: TrainerConfig) -> torch.device:
    """Where this rank keeps the model between training runs: its own GPU, or the CPU."""
    if trainer_cfg.accelerator == "gpu" or (
        trainer_cfg.accelerator == "auto" and torch.cuda.is_available()
    ):
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def autocast(trainer_cfg: TrainerConfig) -> ContextManager:
    dtype = AUTOCAST.get(trainer_cfg.precision)
    return nullcontext() if dtype is None else torch.autocast(device(trainer_cfg).type, dtype=dtype)


def autocast_dtype(kind: str) -> Optional[torch.dtype]:
    """The dtype an autocast open on this device type computes in; None when none is on."""
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


@contextmanager
def autocast_weights(model: torch.nn.Module) -> Iterator[None]:
    """The model's float32 weights swapped for copies in the autocast dtype while the block
    runs, when a bf16 or fp16 autocast is on; put back untouched after. The copies take the
    place of autocast's cached casts of the same weights (dropped first), so memory stays.
    The model then computes as bf16-true training does, its residual stream in bf16 too."""
    params = [p for p in model.parameters() if p.dtype == torch.float32]
    kind = params[0].device.type if params else None
    dtype = autocast_dtype(kind) if kind else None
    if dtype not in (torch.bfloat16, torch.float16):
        yield
        return
    kept = [p.data for p in params]
    torch.clear_autocast_cache()
    try:
        for p in params:
            p.data = p.data.to(dtype)
        yield
    finally:
        for p, data in zip(params, kept):
            p.data = data


def trained_weights(model: torch.nn.Module, trainer_cfg: TrainerConfig) -> ContextManager:
    """The weights as a training step computes with them, for scoring the reference:
    bf16-true trains bf16 weights (its residual stream in bf16), the other precisions the
    weights as they are (under bf16-mixed, autocast over float32 weights)."""
    return autocast_weights(model) if trainer_cfg.precision == "bf16-true" else nullcontext()
