"""FSDP (trainer=fsdp): training with parameters, gradients and optimizer state sharded
across the ranks, by Lightning's ModelParallelStrategy and torch's `fully_shard` (FSDP2;
Lightning's FSDPStrategy is FSDP1, which needs GPUs and rewraps the model it is given).

SSO samples between trainings, each rank its own queries for as many decode steps as they
take: a sharded model would gather every layer at every step, in lockstep across ranks. So
the model the pipeline samples with stays whole, training runs on a sharded copy made at the
start of each `fit` (each rank keeps 1/N of it), and after `fit` the trained shards are
gathered back into the whole model one parameter at a time. The copy is built empty (on
the meta device), sharded, and only then filled, each rank its own shards from its whole
model: no second whole copy is ever made."""

from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import distribute_tensor

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
    root = LogpsOf(skeleton(model), logps)
    for layer in decoder_layers(root):
        fully_shard(layer, mesh=mesh)
    fully_shard(root, mesh=mesh)
    root.to_empty(device=device)
    fill_shards(root.lm, model)
    return root


def skeleton(model: torch.nn.Module) -> torch.nn.Module:
    """`model`'s modules with meta tensors for its parameters and buffers (ties kept)."""
    memo: Dict[int, Any] = {id(b): b.to("meta") for b in model.buffers()}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)
    return copy.deepcopy(model, memo)


@torch.no_grad()
def fill_shards(shards: torch.nn.Module, whole: torch.nn.Module) -> None:
    """Each rank's shards cut from its own whole model (every rank holds the same weights,
    so nothing is sent), and the buffers, which FSDP does not shard, copied whole."""
    params, buffers = dict(whole.named_parameters()), dict(whole.named_buffers())
    for name, param in shards.named_parameters():
        mine = distribute_tensor(
            params[name], param.device_mesh, param.placements, src_data_rank=None
        )
        param.to_local().copy_(mine.to_local())
    for name, buffer in shards.named_buffers():
        buffer.copy_(buffers[name])


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
