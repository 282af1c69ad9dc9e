"""Lightning callbacks that make a training run faster without changing what it learns,
one that keeps autocast's cached casts from outliving the weights they were cast from, and
one that frees the last step's gradients when training ends.

`MasterWeights` (trainer.precision=bf16-true): the model computes in bfloat16 while the
optimizer updates float32 master copies, so small steps are not rounded away; at the end the
model gets the masters back in the dtype it had (float32: exactly). The micro-batches'
gradients accumulate in bfloat16 on the model (as in Lightning's own bf16-true) and become
the masters' float32 gradients just before clipping and the step: float32 gradients never
sit beside the activations of a backward pass (a lower peak). Lightning's own bf16-true
would update the bf16 weights themselves and cast the batch (the reference log-probs) to
bf16.

`TrimmedHeap` (glibc's default heap): a micro-batch frees hundreds of megabytes of
activations and the step's float32 gradients, and glibc keeps much of it as free heap that
the next phase, of other block sizes, cannot reuse: trimmed before each backward and after
each step, the default main job peaks lower at no measurable cost.

`CompiledLayers` (trainer.compile=true): torch.compile each decoder layer for the run, one
graph shared by all layers, with dynamic sequence lengths; undone at the end, so sampling
runs the plain layers. Python floats (the attention scale, the norm's epsilon) are compiled
in as constants while it runs: as dynamic inputs they fail inductor's tensorifying pass and
the whole layer is traced a second time. Inductor's generic probes of the CPU's vector ISAs
(a C++ build and a dlopen per ISA, against toolchains older than torch's own) are skipped
unless TORCHINDUCTOR_VEC_ISA_OK says otherwise (a quarter of a cold compile on 2 cores). Its
AMX and AVX-512 bf16 probes, which build with every flag the kernels use, still run."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Dict, List, Optional

import pytorch_lightning as pl
import torch

from ..errors import NonFiniteTraining
from ..models.logprobs import causal_lm
from ..runtime.memory import trim_heap


class MasterWeights(pl.Callback):
    def __init__(self, dtype: torch.dtype = torch.bfloat16):
        self.dtype = dtype
        self.masters: Dict[torch.nn.Parameter, torch.Tensor] = {}
        self.loaded: Dict[torch.nn.Parameter, torch.dtype] = {}  # each one's dtype before
        self.stepped = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before configure_optimizers: the optimizer is built over the bf16 parameters
        params = [p for p in pl_module.parameters() if p.is_floating_point()]
        self.loaded = {p: p.dtype for p in params}
        # a float32 model's own storage becomes the master, so no second float32 copy sits
        # beside it while the bf16 weights are made; the model gets it back at teardown
        self.masters = {p: p.detach().float() for p in params}
        for p in params:
            p.data = p.data.to(self.dtype)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for opt in trainer.optimizers:  # the optimizer steps the masters instead
            for group in opt.param_groups:
                group["params"] = [self.masters.get(p, p) for p in group["params"]]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # the window's bf16 gradients, freed one by one as they become the masters' (which
        # Lightning's zero_grad cleared), so clipping and the step see float32 gradients
        for p, master in self.masters.items():
            master.grad = None if p.grad is None else p.grad.float()
            p.grad = None
        self.stepped = True

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stepped:  # the stepped masters, rounded into the model; their float32
            for p, master in self.masters.items():  # gradients freed now, not at the next
                p.copy_(master)  # window's zero_grad, after its first forward
                master.grad = None
            self.stepped = False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for p, master in self.masters.items():  # on the device Lightning left the model on
            p.data = master.to(device=p.device, dtype=self.loaded[p])
        self.masters, self.loaded = {}, {}

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "fit")  # Lightning skips teardown hooks then


class FiniteTraining(pl.Callback):
    """A NaN or infinite gradient (checked before every optimizer step) or weight (at the
    end) stops training before anything is saved: otherwise the broken policy would be
    saved and recorded as a finished iteration. The verdict is summed over the ranks, so
    all of them stop at the same step."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        self.require(trainer, grads, "gradient")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.require(trainer, list(pl_module.parameters()), "weights")

    @staticmethod
    @torch.no_grad()
    def require(trainer: pl.Trainer, tensors: List[torch.Tensor], what: str) -> None:
        if not tensors:
            return
        # one flag per tensor on its device, summed there: a single host sync per check
        # (a bool per tensor would wait on the device hundreds of times a step)
        bad = torch.stack([~torch.isfinite(getattr(t, "_local_tensor", t)).all() for t in tensors])
        flag = bad.sum().float().to(trainer.strategy.root_device)
        if trainer.strategy.reduce(flag, reduce_op="sum").item():
            raise NonFiniteTraining(
                f"training stopped at optimizer step {trainer.global_step + 1}: the {what} "
                "holds NaN or infinite values; nothing of this iteration was saved (the "
                "iterations before it stay in the run folder). Settings that diverge: lower "
                "schedule.optimizer.lr (or the loss's scale) in a new run; a fault outside "
                "the config, once fixed: the same command resumes before this training"
            )


class FreshCasts(pl.Callback):
    """The pipeline keeps one autocast open for a whole run, and autocast caches its bf16
    casts of the weights until the outermost one exits: after training, sampling and
    scoring would reuse casts of the weights as they were before it. Cleared before
    training too, where the casts of the float32 weights would sit unused beside the
    training state (bf16-true trains bf16 weights: half the model's size wasted)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.clear_autocast_cache()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.clear_autocast_cache()


class FreedGradients(pl.Callback):
    """The last step's gradients, a copy of the weights' size, freed when training ends:
    Lightning clears them only before a backward, so they would live on through whatever
    the run does next (an iteration's sampling and scoring, a reward model's evaluation)."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.zero_grad(set_to_none=True)


class TrimmedHeap(pl.Callback):
    def on_before_backward(self, trainer, pl_module, loss) -> None:
        trim_heap()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        trim_heap()


class CompiledLayers(pl.Callback):
    def __init__(self):
        self.layers: List[torch.nn.Module] = []
        self.patches: Optional[ExitStack] = None  # dynamo's and inductor's config, the fit's

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import torch._inductor.config as inductor

        self.patches = ExitStack()
        self.patches.enter_context(torch._dynamo.config.patch(specialize_float=True))
        if inductor.cpp.vec_isa_ok is None:
            self.patches.enter_context(inductor.patch({"cpp.vec_isa_ok": True}))
        self.layers = decoder_layers(pl_module)
        for layer in self.layers:
            layer.compile(dynamic=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for layer in self.layers:
            layer._compiled_call_impl = None  # what Module.compile set; no public undo
        self.layers = []
        if self.patches is not None:
            self.patches.close()
            self.patches = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)


class TrainingAttention(pl.Callback):
    """Training with another of HF's attention kernels than sampling and scoring use (the
    model's own, put back after the fit or a failure): compiled CPU training runs eager
    attention faster, decoding runs sdpa faster (config/machine.py)."""

    def __init__(self, kernel: str):
        self.kernel, self.own = kernel, None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        lm = causal_lm(pl_module.model)
        self.own = lm.config._attn_implementation
        lm.set_attn_implementation(self.kernel)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.own is not None:
            causal_lm(pl_module.model).set_attn_implementation(self.own)
            self.own = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)


def decoder_layers(module: torch.nn.Module) -> List[torch.nn.Module]:
    """The repeated blocks of every HF model inside `module`: the classes it names in
    `_no_split_modules` (LlamaDecoderLayer, Qwen2DecoderLayer, ...)."""
    names = {n for m in module.modules() for n in (getattr(m, "_no_split_modules", None) or ())}
    return [m for m in module.modules() if type(m).__name__ in names]
