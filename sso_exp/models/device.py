"""Lightning's precision names for the work done outside the Trainer (sampling, scoring):
it runs under the same autocast as training, so reference and policy log-probs agree at the
first step, and bf16 speeds up sampling as it does training."""

from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager

import torch

from ..config import TrainerConfig
from ..distributed import local_rank

AUTOCAST = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16}


def device(cfg: TrainerConfig) -> torch.device:
    """Where this rank keeps the model between training runs: its own GPU, or the CPU."""
    if cfg.accelerator == "gpu" or (cfg.accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def autocast(cfg: TrainerConfig) -> ContextManager:
    dtype = AUTOCAST.get(cfg.precision)
    return nullcontext() if dtype is None else torch.autocast(device(cfg).type, dtype=dtype)
