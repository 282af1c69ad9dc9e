"""How the models are trained: the loss (`loss`), the objective (`objective`), the
schedule with its optimizer and learning-rate schedule (`schedule`), reference scoring
(`scoring`) and Lightning's side (`trainer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import require, require_choice

BASE_LOSSES = ("dpo", "ipo", "simpo", "orpo")
MALLOPT_MAX_KB = (2**31 - 1) // 1024
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
ATTENTIONS = ("auto", "model", "sdpa", "eager")


@dataclass
class LossConfig:
    """docs/algorithm.md §4; `name` is the base loss chosen in the `loss` group."""

    name: str = "${hydra:runtime.choices.loss}"  # the `loss` option chosen
    beta: float = 0.1  # pref_beta
    use_g: bool = True  # the G term: the p and n pairs
    g_beta: float = 0.1  # weight of the G term (l_p + l_n) and of its NLL terms under ftx
    use_w: bool = True  # the W weight
    # use_w=false as the authors' released trainer reads it: G's l_p + l_n, which sit in W's
    # branch, drop out, G's NLL terms under ftx stay (with use_g=true); false: W = 1
    released_no_w: bool = False
    w_alpha: float = 0.5  # W's weight on avglogp(y+|x); avglogp(y-|x) gets 1 - w_alpha
    w_detach: bool = False  # the authors let gradient flow through W
    ftx: float = 0.0  # NLL weight
    simpo_gamma: float = 0.5  # simpo: the target reward margin

    def __post_init__(self) -> None:
        require_choice(self.name, BASE_LOSSES, "loss.name")
        require(self.beta > 0, "loss.beta", "must be > 0")
        require(0.0 <= self.w_alpha <= 1.0, "loss.w_alpha", "must be in [0, 1]")
        require(self.g_beta >= 0 and self.ftx >= 0, "loss.g_beta/loss.ftx", "must be >= 0")


@dataclass
class ObjectiveConfig:
    """v1: SSO (arXiv); v2: a generator trained with L+ + L- writes the pairs, the policy
    trains with the plain base loss (docs/algorithm.md §5). `name` is the option chosen."""

    name: str = "${hydra:runtime.choices.objective}"  # the `objective` option chosen
    generator_loss: str = "dpo"  # v2: the generator's base loss
    generator_beta: float = 0.1  # v2: the beta of the generator's base loss
    gamma: float = 0.1  # v2: weight of the NLL terms in L+ and L-
    generator_lr: float = 5e-7  # v2: the generator's learning rate (the policy keeps its own)

    def __post_init__(self) -> None:
        require_choice(self.name, ("v1", "v2"), "objective.name")
        require_choice(self.generator_loss, BASE_LOSSES, "objective.generator_loss")


@dataclass
class OptimizerConfig:
    """Built by Hydra as a partial; the module gives it the parameters (and the fused flag)."""

    _target_: str = "torch.optim.AdamW"  # the optimizer class
    _partial_: bool = True  # Hydra builds a partial, completed by the module
    lr: float = 5e-6  # peak learning rate (after warmup)
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])  # Adam's beta1 and beta2
    weight_decay: float = 0.1  # decoupled weight decay


@dataclass
class LRSchedulerConfig:
    """Built by Hydra as a partial; the module gives it the optimizer and the step count."""

    # the schedule: linear warmup, then cosine decay to zero over each training run
    _target_: str = "sso_exp.training.optim.warmup_cosine"
    _partial_: bool = True  # Hydra builds a partial, completed by the module
    warmup_ratio: float = 0.1  # share of a training run's optimizer steps spent warming up


@dataclass
class ScheduleConfig:
    """Sized for the embedded model on a 2-core CPU (`make run`); schedule=paper is the
    authors'."""

    iterations: int = 2  # online: rounds of sampling pairs with the policy, then training it
    queries_per_iteration: int = 8  # queries sampled per iteration (offline: in its one round)
    epochs: int = 1  # passes over each iteration's pairs
    batch_size: int = 2  # pairs per micro-batch, per device
    grad_accum: int = 2  # micro-batches per optimizer step
    max_length: int = 1024  # tokens per prompt + response
    max_grad_norm: float = 1.0  # gradients are clipped to this norm
    seed: int = 42  # seeds sampling, shuffling and model initialisation (iteration k: + k)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)  # built by Hydra
    lr_scheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)  # built by Hydra

    def __post_init__(self) -> None:
        for key in (
            "iterations",
            "queries_per_iteration",
            "epochs",
            "batch_size",
            "grad_accum",
            "max_length",
        ):
            require(getattr(self, key) >= 1, f"schedule.{key}", "must be >= 1")
        require(len(self.optimizer.betas) == 2, "schedule.optimizer.betas", "must be two numbers")
        require(
            0 <= self.lr_scheduler.warmup_ratio < 1,
            "schedule.lr_scheduler.warmup_ratio",
            "must be in [0, 1)",
        )


@dataclass
class ScoringConfig:
    """Log-probs without gradient: reference, on-policyness, the log-prob filter."""

    batch_size: int = 24  # sequences per forward pass

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "scoring.batch_size", "must be >= 1")


@dataclass
class TrainerConfig:
    """How training runs (Lightning's accelerator, devices, strategy, precision, extra
    callbacks) and the memory levers of the SSO step."""

    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1  # Lightning's devices: a count, a list of device ids, or auto
    num_nodes: int = 1  # machines, each running `devices` processes
    # auto | ddp_spawn | deepspeed_stage_2 | a strategy built by Hydra from its _target_
    strategy: Any = "auto"
    # bf16-mixed: autocast over fp32 weights; bf16-true: bf16 weights, fp32 master copies
    # in the optimizer. Either way log-softmax, log-probs and the loss stay fp32. auto:
    # bf16-true where bf16 is fast and a compiler is present, else 32-true (config/machine.py)
    precision: str = "auto"
    # Lightning callbacks built by Hydra, by name (null drops one)
    callbacks: Dict[str, Any] = field(
        default_factory=lambda: {
            "progress_bar": {"_target_": "pytorch_lightning.callbacks.TQDMProgressBar"}
        }
    )
    gradient_checkpointing: bool = True  # keep layer inputs, recompute in backward
    compile: Any = "auto"  # true | false | auto: torch.compile the decoder layers in training
    # HF's attention kernel while training: model (the model's own) | sdpa | eager | auto:
    # eager when compiled on a CPU (inductor fuses its matmuls and softmax, faster a step
    # than sdpa's masked CPU kernel), else the model's. Sampling and scoring keep the
    # model's (decoding is slower under eager)
    attention: str = "auto"
    # response positions per vocabulary projection (0: all at once); 256 rows of a 49k
    # vocabulary stay in a CPU's cache best (scripts/bench_head.py)
    logps_chunk: int = 256
    # glibc's heap (runtime/memory.py): blocks from this size up are mapped afresh and given
    # back when freed; None: glibc's adaptive default
    malloc_mmap_threshold_kb: Optional[int] = None
    # free memory at the heap's top kept for reuse up to this size; None: glibc's default
    malloc_trim_threshold_kb: Optional[int] = None
    # oneDNN kernels kept for reuse (runtime/host.py; its own default 1024, which batches of
    # ever new lengths keep filling through a job); None: leave oneDNN's setting
    onednn_primitive_cache: Optional[int] = 128

    @property
    def strategy_name(self) -> str:
        """'ddp', 'fsdp', 'ddp_spawn', ... or the class named by a `_target_`, lower case."""
        if isinstance(self.strategy, dict):
            return str(self.strategy.get("_target_", "")).rsplit(".", 1)[-1].lower()
        return str(self.strategy).lower()

    @property
    def one_process(self) -> bool:
        """Training runs in this process alone, on whole weights (what bf16-true needs)."""
        return self.devices == 1 and self.num_nodes == 1 and not self.sharded

    @property
    def sharded(self) -> bool:
        """trainer=fsdp: FSDP2 through Lightning's ModelParallelStrategy (training/sharded.py)."""
        return self.strategy_name == "modelparallelstrategy"

    def __post_init__(self) -> None:
        require(
            self.precision in PRECISIONS,
            "trainer.precision",
            f"'{self.precision}' is not one of {', '.join(PRECISIONS)}",
        )
        require(
            self.compile in (True, False, "auto"),
            "trainer.compile",
            f"'{self.compile}' is not one of true, false, auto",
        )
        require(self.logps_chunk >= 0, "trainer.logps_chunk", "must be >= 0")
        require_choice(self.attention, ATTENTIONS, "trainer.attention")
        for key in ("malloc_mmap_threshold_kb", "malloc_trim_threshold_kb"):
            kb = getattr(self, key)
            require(
                kb is None or 0 <= kb <= MALLOPT_MAX_KB,
                f"trainer.{key}",
                f"must be between 0 and {MALLOPT_MAX_KB} (glibc's mallopt takes a C int)",
            )
        require(
            self.precision != "bf16-true" or self.one_process,
            "trainer.precision",
            "bf16-true (fp32 master weights) runs in one process, unsharded; "
            "use bf16-mixed with several devices or FSDP",
        )
        require(self.num_nodes >= 1, "trainer.num_nodes", "must be >= 1")
        require(
            self.onednn_primitive_cache is None or self.onednn_primitive_cache >= 0,
            "trainer.onednn_primitive_cache",
            "must be >= 0",
        )
