"""Lightning callbacks that make a training run faster without changing what it learns.

`MasterWeights` (trainer.precision=bf16-true): the model computes in bfloat16 while the
optimizer updates float32 master copies, so small steps are not rounded away; at the end
the model gets its float32 weights back, exactly. Lightning's own bf16-true would update
the bf16 weights themselves and cast the batch (the reference log-probs) to bf16.

`CompiledLayers` (trainer.compile=true): torch.compile each decoder layer for the run,
one graph shared by all layers, with dynamic sequence lengths; undone at the end, so
sampling runs the plain layers."""
from __future__ import annotations

from typing import Dict, List

import pytorch_lightning as pl
import torch


class MasterWeights(pl.Callback):
    def __init__(self, dtype: torch.dtype = torch.bfloat16):
        self.dtype = dtype
        self.masters: Dict[torch.nn.Parameter, torch.Tensor] = {}
        self.stepped = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before configure_optimizers: the optimizer is built over the bf16 parameters
        self.masters = {p: p.detach().clone() for p in pl_module.parameters()
                        if p.dtype == torch.float32}
        for p in self.masters:
            p.data = p.data.to(self.dtype)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for opt in trainer.optimizers:  # the optimizer steps the masters instead
            for group in opt.param_groups:
                group["params"] = [self.masters.get(p, p) for p in group["params"]]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # before Lightning clips: clipping and the step both see float32 gradients
        for p, master in self.masters.items():
            master.grad = None if p.grad is None else p.grad.float()
            p.grad = None
        self.stepped = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stepped:
            self._copy_to_model(self.dtype)
            self.stepped = False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._copy_to_model(torch.float32)
        self.masters = {}

    @torch.no_grad()
    def _copy_to_model(self, dtype: torch.dtype) -> None:
        for p, master in self.masters.items():
            if p.dtype != dtype:
                p.data = master.clone() if dtype == torch.float32 else master.to(dtype)
            else:
                p.copy_(master)


class CompiledLayers(pl.Callback):
    def __init__(self):
        self.layers: List[torch.nn.Module] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.layers = decoder_layers(pl_module)
        for layer in self.layers:
            layer.compile(dynamic=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for layer in self.layers:
            layer._compiled_call_impl = None  # what Module.compile set; no public undo
        self.layers = []


def decoder_layers(module: torch.nn.Module) -> List[torch.nn.Module]:
    """The repeated blocks of every HF model inside `module`: the classes it names in
    `_no_split_modules` (LlamaDecoderLayer, Qwen2DecoderLayer, ...)."""
    names = {n for m in module.modules() for n in (getattr(m, "_no_split_modules", None) or ())}
    return [m for m in module.modules() if type(m).__name__ in names]
