"""MLflow tracking through Lightning's MLFlowLogger: one run per invocation holding the
config, per-step training metrics continued across iterations, per-iteration metrics and
each iteration's pairs file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from omegaconf import OmegaConf
from pytorch_lightning.loggers import MLFlowLogger

from .config import SSOConfig, TrackingConfig

# Long texts live in the config artifact, not in the params table.
_NOT_PARAMS = ("principle.features", "principle.identify_examples", "principle.secrecy",
               "principle.generate_examples")


class RunLogger(MLFlowLogger):
    """MLFlowLogger whose steps continue across the Trainers of successive iterations,
    and whose run stays open until the pipeline closes it (Lightning would end it after
    every `fit`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.step_offset = 0

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        super().log_metrics(metrics, None if step is None else step + self.step_offset)

    def finalize(self, status: str = "success") -> None:
        """Lightning calls this after each fit; the run ends in `close` instead."""

    def close(self, status: str) -> None:
        super().finalize(status)

    def log_iteration(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Per-iteration metrics, with the iteration as their step."""
        super().log_metrics(dict(metrics), iteration)

    def log_file(self, path: Path, folder: Optional[str] = None) -> None:
        self.experiment.log_artifact(self.run_id, str(path), folder)


def flat_params(cfg: SSOConfig) -> Dict[str, Any]:
    """The resolved config as dotted keys, without the long principle texts."""
    flat: Dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if prefix.rstrip(".") in _NOT_PARAMS:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix.rstrip(".")] = node

    walk(OmegaConf.to_container(OmegaConf.structured(cfg)), "")
    return flat


def start_run(cfg: SSOConfig, tracking: TrackingConfig, config_file: Path) -> RunLogger:
    """Open the run, record params and the config YAML."""
    logger = RunLogger(experiment_name=tracking.experiment_name, run_name=tracking.run_name,
                       tracking_uri=tracking.uri, artifact_location=tracking.artifact_location)
    logger.log_hyperparams(flat_params(cfg))
    logger.log_file(config_file)
    return logger
