"""The whole typed config: every default is written here once, in the dataclasses of this
package; an option file in `conf/` holds only what it changes. `validate` builds the
dataclasses at start-up, so a wrong key, type or range fails before any work, naming it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf

from ..errors import ConfigError, require, require_choice
from .evaluation import EvalConfig, RMConfig
from .machine import resolve
from .model import ModelConfig
from .steering import FilterConfig, GenerationConfig, PrincipleConfig
from .training import LossConfig, ObjectiveConfig, ScheduleConfig, ScoringConfig, TrainerConfig

MODES = ("online", "offline", "rm", "rm_score", "eval")


@dataclass
class ModeConfig:
    """`name` is the option chosen in the `mode` group."""

    name: str = "${hydra:runtime.choices.mode}"  # what the run does: the `mode` option chosen
    on_empty: str = "stop"  # what an iteration whose pairs were all dropped does

    def __post_init__(self) -> None:
        require_choice(self.name, MODES, "mode.name")
        require_choice(self.on_empty, ("stop", "continue"), "mode.on_empty")


@dataclass
class DataConfig:
    """Input files. A relative name is looked up in the working directory, then in the data
    folder `dir` (docs/data.md)."""

    dir: str = "${oc.env:SSO_EXP_DATA,${hydra:runtime.cwd}/data}"  # the data folder
    prompts: Optional[str] = None  # JSONL with `prompt` or `instruction`; None: demo queries
    pairs: Optional[str] = None  # train on this file of SSO records (or human pairs) as it is
    # a query longer than this many tokens (or than the model's context less the answer
    # budget) is dropped or cut to its first tokens, counted and logged
    max_prompt_tokens: int = 1024
    long_prompts: str = "drop"  # drop | cut
    equal_pairs: str = "drop"  # data.pairs rows with chosen == rejected: drop (warned) | refuse

    def __post_init__(self) -> None:
        require(self.max_prompt_tokens >= 1, "data.max_prompt_tokens", "must be >= 1")
        require_choice(self.long_prompts, ("drop", "cut"), "data.long_prompts")
        require_choice(self.equal_pairs, ("drop", "refuse"), "data.equal_pairs")


@dataclass
class TrackingConfig:
    """Where runs are tracked, and what a server that stops answering costs: each request is
    tried 1 + `retries` times, `timeout_s` each; then `on_error=stop` ends the run (all it
    finished stays on disk; the same command resumes) and `buffer` records the calls in the
    run folder and replays them when the server answers again (tracking/mlflow_run.py)."""

    uri: str = MISSING  # the MLflow store: a server's http(s) address or a sqlite:/// file
    artifact_location: Optional[str] = None  # a new experiment's artifact store; None: MLflow's
    experiment_name: str = "sso-exp"  # the MLflow experiment runs are logged under
    run_name: Optional[str] = None  # None: MLflow's random name (conf/config.yaml names runs)
    retries: int = 2  # tries of a tracking request after the first
    timeout_s: int = 10  # seconds each tracking request may take
    on_error: str = "stop"  # stop | buffer
    # CPU, memory, disk, network (and GPU where nvidia-ml-py sees one) as system/* metrics,
    # sampled by MLflow's monitor: off | main (rank 0) | nodes (each node's first rank, as
    # system/node_<k>/*)
    system_metrics: str = "main"
    system_metrics_interval_s: float = 10.0  # seconds between samples (each one logged)

    def __post_init__(self) -> None:
        require_choice(self.on_error, ("stop", "buffer"), "tracking.on_error")
        require_choice(self.system_metrics, ("off", "main", "nodes"), "tracking.system_metrics")
        require(
            self.system_metrics_interval_s > 0, "tracking.system_metrics_interval_s", "must be > 0"
        )
        require(self.retries >= 0, "tracking.retries", "must be >= 0")
        require(self.timeout_s >= 1, "tracking.timeout_s", "must be >= 1")


@dataclass
class SSOConfig:
    model: ModelConfig = MISSING  # the policy: the model trained, and by default the writer
    principle: PrincipleConfig = MISSING  # the features whose principles steer the writer
    generation: GenerationConfig = field(default_factory=GenerationConfig)  # sampling
    filter: FilterConfig = field(default_factory=FilterConfig)  # which triples become pairs
    loss: LossConfig = field(default_factory=LossConfig)  # the base loss, SSO's G and W terms
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)  # v1 or v2 (generator)
    # iterations, batches, the optimizer and the learning-rate schedule
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)  # log-probs without gradient
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # how training runs
    mode: ModeConfig = field(default_factory=ModeConfig)  # what the run does
    data: DataConfig = field(default_factory=DataConfig)  # input files
    generator: Optional[ModelConfig] = None  # offline data writer; None: the policy
    rm: RMConfig = field(default_factory=RMConfig)  # Bradley-Terry reward models
    eval: EvalConfig = field(default_factory=EvalConfig)  # evaluation tasks and their judge
    tracking: TrackingConfig = MISSING  # where runs are tracked (MLflow)
    output_dir: Optional[str] = "${hydra:runtime.output_dir}"  # None only under --cfg
    resume: str = "auto"  # online runs: auto | never | <run folder> (pipeline/resume.py)
    optimized_metric: Optional[str] = None  # a summary-row key the job returns (hparams search)


def flatten(cfg: Any, skip: Sequence[str] = ()) -> Dict[str, Any]:
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


def require_finite(config: SSOConfig) -> None:
    """NaN or infinity in a number key would not fail: it would train wrong (a NaN
    learning rate or margin gives NaN weights, saved as a finished iteration). Refused
    before any work, naming the key."""
    for key, value in flatten(config).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key}': {value} is not a finite number")


def validate(cfg: DictConfig) -> SSOConfig:
    """Merge the composed config into the schema (types, unknown keys) and build the
    dataclasses (missing values, ranges). Errors name the offending key."""
    if "hydra" in cfg:  # present when composed with return_hydra_config (tests)
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SSOConfig), cfg))
    require_finite(config)
    schedule = config.schedule  # auto precision and compile, for this machine and schedule
    planned = (
        schedule.iterations
        * schedule.epochs
        * -(-schedule.queries_per_iteration // schedule.batch_size)
    )
    config.trainer = resolve(config.trainer, planned)
    return config
