"""Typed schema of the Hydra config: the YAML files in `conf/` hold the values, these
dataclasses hold the types and the range checks, and `validate` joins the two at start-up so
a wrong key or value fails before any work is done."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf


class SSOError(Exception):
    """An error the user can fix; the CLI prints its message, not a traceback."""


class ConfigError(SSOError, ValueError):
    """A config value that cannot work; the message names the key."""


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': {msg}")


@dataclass
class LoraSettings:
    """LoRA through peft: the reference is the base with adapters off (no second copy), and
    the adapters are merged into the weights at the end of every training run."""
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: List[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    def __post_init__(self) -> None:
        _check(self.r >= 1, "model.lora.r", "must be >= 1")
        _check(0 <= self.dropout < 1, "model.lora.dropout", "must be in [0, 1)")


@dataclass
class ModelConfig:
    name: str = MISSING
    # gguf: a GGUF file inside an installed Python package; pretrained: hub id or local
    # folder (never downloaded); tiny: a random Llama built from `arch`.
    source: str = MISSING
    path: Optional[str] = None
    package: Optional[str] = None
    gguf_file: Optional[str] = None
    arch: Dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    # HF's attention kernel: sdpa | eager (fastest compiled on CPU for short sequences,
    # memory quadratic in length) | flash_attention_2 (GPU)
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False
    cache_dir: str = MISSING
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        _check(self.source in ("gguf", "pretrained", "tiny"), "model.source",
               f"'{self.source}' is not one of gguf, pretrained, tiny")
        _check(self.dtype in ("float32", "bfloat16", "float16"), "model.dtype",
               f"'{self.dtype}' is not one of float32, bfloat16, float16")


@dataclass
class FeatureConfig:
    name: str = MISSING
    good: str = MISSING
    bad: str = MISSING
    meaning: str = MISSING
    good_principle: str = MISSING
    bad_principle: str = MISSING


@dataclass
class IdentifyExample:
    query: str = MISSING
    features: List[str] = MISSING


@dataclass
class PrincipleExample:
    query: str = MISSING
    feature: str = MISSING
    good_principle: str = MISSING
    bad_principle: str = MISSING


@dataclass
class PrincipleConfig:
    name: str = MISSING
    num_features: int = 2
    concision_prob: float = 0.2
    concision_feature: str = "Concision"
    secrecy: str = MISSING
    features: List[FeatureConfig] = MISSING
    identify_examples: List[IdentifyExample] = MISSING
    identify_max_new_tokens: int = 24
    generate: bool = False  # the policy writes query-specific principles
    generate_examples: List[PrincipleExample] = field(default_factory=list)
    generate_max_new_tokens: int = 200

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        _check(len(set(names)) == len(names), "principle.features", "duplicate feature names")
        _check(self.concision_feature in names, "principle.concision_feature",
               f"'{self.concision_feature}' is not among the features {names}")
        _check(1 <= self.num_features < len(names), "principle.num_features",
               f"must be in [1, {len(names) - 1}]")
        _check(0.0 <= self.concision_prob <= 1.0, "principle.concision_prob", "must be in [0, 1]")
        for ex in self.identify_examples:
            bad = [n for n in ex.features if n not in names]
            _check(not bad, "principle.identify_examples", f"unknown features {bad}")
        _check(not self.generate or bool(self.generate_examples), "principle.generate_examples",
               "principle.generate needs few-shot examples")


@dataclass
class LossConfig:
    name: str = MISSING  # dpo | ipo | simpo | orpo
    beta: float = 0.1
    use_g: bool = True
    g_beta: float = 0.1
    use_w: bool = True
    w_alpha: float = 0.5
    w_detach: bool = False  # the authors let gradient flow through W
    ftx: float = 0.0
    simpo_gamma: float = 0.5

    def __post_init__(self) -> None:
        _check(self.name in ("dpo", "ipo", "simpo", "orpo"), "loss.name",
               f"'{self.name}' is not one of dpo, ipo, simpo, orpo")
        _check(self.beta > 0, "loss.beta", "must be > 0")
        _check(0.0 <= self.w_alpha <= 1.0, "loss.w_alpha", "must be in [0, 1]")
        _check(self.g_beta >= 0 and self.ftx >= 0, "loss.g_beta/loss.ftx", "must be >= 0")


@dataclass
class ObjectiveConfig:
    name: str = "v1"  # v1: SSO (arXiv); v2: generator with L+ + L-, policy with the base loss
    generator_loss: str = "dpo"
    generator_beta: float = 0.1
    gamma: float = 0.1
    generator_lr: float = 5e-7

    def __post_init__(self) -> None:
        _check(self.name in ("v1", "v2"), "objective.name", f"'{self.name}' is not one of v1, v2")
        _check(self.generator_loss in ("dpo", "ipo", "simpo", "orpo"), "objective.generator_loss",
               f"'{self.generator_loss}' is not one of dpo, ipo, simpo, orpo")


@dataclass
class ScheduleConfig:
    iterations: int = MISSING
    queries_per_iteration: int = MISSING
    temperature: float = 0.7
    top_p: float = 0.8
    max_new_tokens: int = 256
    generation_batch_size: int = 16
    lr: float = 5e-7
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.1
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    epochs: int = 1
    batch_size: int = 2
    grad_accum: int = 1
    max_length: int = 1024
    seed: int = 42

    def __post_init__(self) -> None:
        for key in ("iterations", "queries_per_iteration", "max_new_tokens", "epochs",
                    "batch_size", "grad_accum", "generation_batch_size", "max_length"):
            _check(getattr(self, key) >= 1, f"schedule.{key}", "must be >= 1")
        _check(self.temperature > 0, "schedule.temperature", "must be > 0 (sampling)")
        _check(0 < self.top_p <= 1, "schedule.top_p", "must be in (0, 1]")
        _check(len(self.betas) == 2, "schedule.betas", "must be two numbers")
        _check(0 <= self.warmup_ratio < 1, "schedule.warmup_ratio", "must be in [0, 1)")


MALLOPT_MAX_KB = (2 ** 31 - 1) // 1024
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true")


@dataclass
class TrainerConfig:
    """How training runs (Lightning's accelerator, devices, strategy, precision) and the
    memory levers of the SSO step."""
    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"  # auto | ddp_spawn | fsdp | deepspeed_stage_2 | a dict with _target_
    # bf16-mixed: autocast over fp32 weights; bf16-true: bf16 weights, fp32 master copies
    # in the optimizer. Either way log-softmax, log-probs and the loss stay fp32.
    precision: str = "32-true"
    gradient_checkpointing: bool = True
    compile: bool = False  # torch.compile the decoder layers while training
    logps_chunk: int = 512  # response positions per vocabulary projection (0: all at once)
    malloc_mmap_threshold_kb: Optional[int] = None  # glibc (see heap.py); None: its default
    malloc_trim_threshold_kb: Optional[int] = None

    def __post_init__(self) -> None:
        _check(self.precision in PRECISIONS, "trainer.precision",
               f"'{self.precision}' is not one of {', '.join(PRECISIONS)}")
        _check(self.logps_chunk >= 0, "trainer.logps_chunk", "must be >= 0")
        for key in ("malloc_mmap_threshold_kb", "malloc_trim_threshold_kb"):
            kb = getattr(self, key)
            _check(kb is None or 0 <= kb <= MALLOPT_MAX_KB, f"trainer.{key}",
                   f"must be between 0 and {MALLOPT_MAX_KB} (glibc's mallopt takes a C int)")
        _check(self.precision != "bf16-true" or (self.devices == 1 and self.num_nodes == 1),
               "trainer.precision", "bf16-true (fp32 master weights) runs in one process; "
               "use bf16-mixed with several devices")
        _check(self.num_nodes >= 1, "trainer.num_nodes", "must be >= 1")


@dataclass
class GenerationConfig:
    """The sampling engine: HF `generate` (anywhere) or vLLM (GPU machines, imported only
    when chosen; the policy's weights are pushed into it before every sampling stage)."""
    backend: str = "hf"  # hf | vllm
    nucleus_candidates: int = 256  # hf: top tokens searched for the nucleus first (exact)
    vllm_gpu_memory_utilization: float = 0.4
    vllm_dtype: str = "bfloat16"

    def __post_init__(self) -> None:
        _check(self.backend in ("hf", "vllm"), "generation.backend",
               f"'{self.backend}' is not one of hf, vllm")
        _check(self.nucleus_candidates >= 1, "generation.nucleus_candidates", "must be >= 1")


@dataclass
class FilterConfig:
    name: str = "string"  # string | logprob (the string filter, then the log-prob filter)
    min_chars: int = 8

    def __post_init__(self) -> None:
        _check(self.name in ("string", "logprob"), "filter.name",
               f"'{self.name}' is not one of string, logprob")


MODES = ("online", "offline", "rm", "rm_score", "eval")
TASKS = ("signal", "alpaca", "mt_bench", "gsm8k")


@dataclass
class ModeConfig:
    name: str = "online"
    on_empty: str = "stop"  # what an iteration whose pairs were all dropped does

    def __post_init__(self) -> None:
        _check(self.name in MODES, "mode.name", f"'{self.name}' is not one of {', '.join(MODES)}")
        _check(self.on_empty in ("stop", "continue"), "mode.on_empty",
               f"'{self.on_empty}' is not one of stop, continue")


@dataclass
class DataConfig:
    prompts: Optional[str] = None  # JSONL with `prompt` or `instruction`; None: demo queries
    pairs: Optional[str] = None  # offline: train on this SSO file (authors' format) as it is
    shuffle: bool = True


@dataclass
class RMConfig:
    sso: bool = True  # train on SSO pairs (data.pairs, or written by the generator/policy)
    mix: Optional[str] = None  # human pairs mixed in: HH transcripts or prompt/chosen/rejected
    mix_limit: Optional[int] = None
    eval: Optional[str] = None  # human-labelled pairs to evaluate on
    eval_limit: Optional[int] = None
    max_length: int = 512
    lr: float = 1e-5
    epochs: int = 1
    batch_size: int = 4
    checkpoint: Optional[str] = None  # a trained reward model (mode=rm_score, judges)
    score_input: Optional[str] = None  # mode=rm_score: JSONL of prompt/response rows

    def __post_init__(self) -> None:
        for key in ("max_length", "epochs", "batch_size"):
            _check(getattr(self, key) >= 1, f"rm.{key}", "must be >= 1")


@dataclass
class OpenAIJudgeConfig:
    base_url: Optional[str] = None  # an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1
    model: Optional[str] = None
    api_key_env: Optional[str] = "OPENAI_API_KEY"  # the key is read from here, never logged
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_tokens: int = 512


@dataclass
class EvalConfig:
    tasks: List[str] = field(default_factory=lambda: ["signal", "alpaca", "mt_bench", "gsm8k"])
    judge: str = "policy"  # policy | openai | rm (rm.checkpoint)
    openai: OpenAIJudgeConfig = field(default_factory=OpenAIJudgeConfig)
    every_iteration: bool = False  # online runs: evaluate after each iteration
    policy: Optional[str] = None  # mode=eval: a saved policy folder; None: the model config
    alpaca_path: Optional[str] = None
    alpaca_limit: Optional[int] = None
    mt_bench_path: Optional[str] = None
    mt_bench_reference: Optional[str] = None
    mt_bench_limit: Optional[int] = None
    gsm8k_path: Optional[str] = None
    gsm8k_limit: Optional[int] = None
    max_new_tokens: int = 256
    judge_max_new_tokens: int = 256
    batch_size: int = 8

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        _check(not bad, "eval.tasks", f"unknown tasks {bad}; known: {', '.join(TASKS)}")
        _check(self.judge in ("policy", "openai", "rm"), "eval.judge",
               f"'{self.judge}' is not one of policy, openai, rm")
        if self.judge == "openai":
            _check(bool(self.openai.base_url and self.openai.model), "eval.openai",
                   "eval.judge=openai needs eval.openai.base_url and eval.openai.model")


@dataclass
class TrackingConfig:
    uri: str = MISSING
    artifact_location: Optional[str] = None
    experiment_name: str = "sso-exp"
    run_name: Optional[str] = None


@dataclass
class SSOConfig:
    model: ModelConfig = MISSING
    principle: PrincipleConfig = MISSING
    loss: LossConfig = MISSING
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    schedule: ScheduleConfig = MISSING
    mode: ModeConfig = MISSING
    filter: FilterConfig = field(default_factory=FilterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = MISSING
    generator: Optional[ModelConfig] = None  # offline data writer; None: the policy
    rm: RMConfig = field(default_factory=RMConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    output_dir: str = MISSING
    resume: str = "auto"  # online runs: auto | never | <run folder> (sso_exp/resume.py)
    optimized_metric: Optional[str] = None  # a summary-row key the job returns (hparams search)


def flatten(cfg: SSOConfig, skip: Sequence[str] = ()) -> Dict[str, Any]:
    """The resolved config as dotted keys; a key in `skip` drops its whole subtree."""
    flat: Dict[str, Any] = {}

    def walk(node: Any, key: str) -> None:
        if key in skip:
            return
        if isinstance(node, dict):
            for sub, value in node.items():
                walk(value, f"{key}.{sub}" if key else sub)
        else:
            flat[key] = node

    walk(OmegaConf.to_container(OmegaConf.structured(cfg)), "")
    return flat


def validate(cfg: DictConfig) -> SSOConfig:
    """Merge the composed config into the schema (types, unknown keys) and build the
    dataclasses (missing values, ranges). Errors name the offending key."""
    schema = OmegaConf.structured(SSOConfig)
    if "hydra" in cfg:  # present when composed with return_hydra_config (tests)
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    cfg = OmegaConf.merge(schema, cfg)
    return OmegaConf.to_object(cfg)
