"""FSDP (trainer=fsdp): training with parameters, gradients and optimizer state sharded
across the ranks, by Lightning's ModelParallelStrategy and torch's `fully_shard` (FSDP2;
Lightning's FSDPStrategy is FSDP1, which needs GPUs and rewraps the model it is given).

SSO samples between trainings, each rank its own queries for as many decode steps as they
take: a sharded model would gather every layer at every step, in lockstep across ranks. So
the model the pipeline samples with stays whole, training runs on a sharded copy made at the
start of each `fit` (each rank keeps 1/N of it), and after `fit` the trained shards are
gathered back into the whole model one parameter at a time. Making the copy holds a second
full copy for a moment, before it is sharded (whole models are what sampling needs anyway)."""

from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from ..data.pairs import SeqLogps
from ..distributed import world
from ..models.logprobs import causal_lm, sequence_logps
from .callbacks import decoder_layers
from .policy_module import SSOPolicyModule


class LogpsOf(torch.nn.Module):
    """The root unit around the model: FSDP gathers a unit's parameters in its forward, and
    the SSO step runs the decoder and the vocabulary projection apart (models/logprobs.py),
    so the summed log-probs are this root's forward, which gathers the embeddings, the final
    norm and the head for both (tied or not)."""

    def __init__(self, lm: torch.nn.Module, logps: Dict[str, Any]):
        super().__init__()
        self.lm, self.logps = lm, logps

    def get_base_model(self) -> torch.nn.Module:  # what models.logprobs.causal_lm unwraps
        return causal_lm(self.lm)

    def forward(self, batch: Dict[str, torch.Tensor]) -> SeqLogps:
        return sequence_logps(self.lm, batch, **self.logps)


def sharded_copy(model: torch.nn.Module, logps: Dict[str, Any], device: torch.device) -> LogpsOf:
    """A copy of `model` on `device` sharded across all ranks: each decoder layer a unit
    (its parameters gathered for its forward and backward only), the rest the root unit."""
    mesh = init_device_mesh(device.type, (world(),))
    root = LogpsOf(copy.deepcopy(model), logps).to(device)
    for layer in decoder_layers(root):
        fully_shard(layer, mesh=mesh)
    return fully_shard(root, mesh=mesh)


@torch.no_grad()
def gather_into(shards: torch.nn.Module, whole: torch.nn.Module) -> None:
    """Every rank's whole model gets the trained parameters (collective: all ranks call it)."""
    own = dict(whole.named_parameters())
    for name, param in shards.named_parameters():
        own[name].copy_(param.full_tensor())


class ShardedPolicyModule(SSOPolicyModule):
    """The SSO policy module training a sharded copy of the pipeline's model."""

    def __init__(self, model: torch.nn.Module, *args: Any, **kwargs: Any):
        super().__init__(model, *args, **kwargs)
        self.whole = (model,)  # in a tuple: not a submodule, so not trained or moved

    def configure_model(self) -> None:
        if self.model is self.whole[0]:  # Lightning may call this hook more than once
            device = self.trainer.strategy.root_device
            self.model = sharded_copy(self.model, self.logps, device)

    def sequence_logps(self, batch: Dict) -> SeqLogps:
        return self.model(batch)

    def on_fit_end(self) -> None:
        super().on_fit_end()
        gather_into(self.model.lm, self.whole[0])
