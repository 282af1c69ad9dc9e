"""Configuration: the typed schema (every default once), its ConfigStore registration and
start-up validation."""

from .compose import compose
from .evaluation import EvalConfig, RMConfig
from .model import LoraSettings, ModelConfig
from .schema import DataConfig, ModeConfig, SSOConfig, TrackingConfig, flatten, validate
from .steering import FeatureConfig, FilterConfig, GenerationConfig, PrincipleConfig
from .store import register
from .training import (
    LossConfig,
    ObjectiveConfig,
    OptimizerConfig,
    ScheduleConfig,
    ScoringConfig,
    TrainerConfig,
)

# on import, in every process that reads our configs: a Submitit job unpickles its task and
# resolves its config without running the command-line module
register()

__all__ = [
    "DataConfig",
    "EvalConfig",
    "FeatureConfig",
    "FilterConfig",
    "GenerationConfig",
    "LoraSettings",
    "LossConfig",
    "ModeConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimizerConfig",
    "PrincipleConfig",
    "RMConfig",
    "SSOConfig",
    "ScheduleConfig",
    "ScoringConfig",
    "TrackingConfig",
    "TrainerConfig",
    "compose",
    "flatten",
    "register",
    "validate",
]
