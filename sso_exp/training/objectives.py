"""What a training run optimises, chosen from the config: SSO's objective (v1, the arXiv
paper), or the later paper's pair (v2: a generator trained with L+ + L-, the policy with the
plain base loss on the main pair). Each is a loss over named preference pairs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

from torch import Tensor

from ..config import LossConfig, ObjectiveConfig
from ..data.encoding import ON_POLICY, pair_names, sequence_names
from ..data.pairs import Pair
from .losses import NEEDS_REFERENCE, generator_loss, sso_loss

LossFn = Callable[[Dict[str, Pair], Optional[Dict[str, Pair]]], Tuple[Tensor, Dict[str, Tensor]]]


@dataclass(frozen=True)
class Objective:
    loss: LossFn
    pairs: List[str]  # which of main / p / n the loss reads
    needs_reference: bool
    lr: Optional[float] = None  # None: the optimizer config's
    prefix: str = ""  # metric name prefix, so a generator's curves stay apart

    def sequences(self) -> List[str]:
        """What to encode: the pairs' sequences and the on-policyness ones."""
        return list(dict.fromkeys(sequence_names(self.pairs) + list(ON_POLICY)))

    def scored(self) -> List[str]:
        """What to score before training: everything when there is a reference."""
        return self.sequences() if self.needs_reference else list(ON_POLICY)


def policy_objective(loss: LossConfig, objective: ObjectiveConfig) -> Objective:
    if objective.name == "v2":
        loss = replace(loss, use_g=False, use_w=False)
    return Objective(partial(sso_loss, loss), pair_names(loss.use_g), loss.name in NEEDS_REFERENCE)


def generator_objective(objective_cfg: ObjectiveConfig) -> Objective:
    """v2's data generator: L+ on the p pair and L- on the n pair, each with NLL."""
    base = LossConfig(name=objective_cfg.generator_loss, beta=objective_cfg.generator_beta)
    return Objective(
        partial(generator_loss, base, objective_cfg.gamma),
        ["p", "n"],
        base.name in NEEDS_REFERENCE,
        objective_cfg.generator_lr,
        prefix="generator/",
    )
