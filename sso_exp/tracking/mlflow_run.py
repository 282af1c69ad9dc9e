"""MLflow tracking through Lightning's MLFlowLogger: one run per invocation holding the
config, per-step training metrics continued across iterations, per-iteration metrics, each
iteration's pairs (a file and a table the UI shows), the data files read (as dataset
inputs) and, as its description, the summary table: a run reads like a lab notebook. The
experiment is filed as model training (MLflow 3 files an experiment without a kind under
GenAI evaluation)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from mlflow import MlflowClient
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Run
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.loggers.logger import DummyLogger

from ..config import SSOConfig, TrackingConfig, flatten

EXPERIMENT_KIND = "mlflow.experimentKind"  # MLflow 3's UI: GenAI or model development
# Long texts live in the config artifact, not in the params table.
_NOT_PARAMS = (
    "principle.features",
    "principle.identify_examples",
    "principle.secrecy",
    "principle.generate_examples",
)


class RunLogger(MLFlowLogger):
    """MLFlowLogger whose steps continue across the Trainers of successive iterations,
    and whose run stays open until the pipeline closes it (Lightning would end it after
    every `fit`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.step_offset = 0
        self.logged: Dict[str, int] = {}  # a resumed run's last logged step per metric

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        self._log_new(metrics, None if step is None else step + self.step_offset)

    def _log_new(self, metrics: Mapping[str, float], step: Optional[int]) -> None:
        """Log what a resumed run has not logged before: a stage redone after a kill
        recomputes the same values, which must not appear twice."""
        if step is not None:
            metrics = {k: v for k, v in metrics.items() if step > self.logged.get(k, -1)}
        if metrics:
            super().log_metrics(metrics, step)

    def continue_run(self, tags: Mapping[str, str]) -> None:
        """Reopen a resumed run (tagged anew: a sweep job may resume in another sweep) and
        note how far each metric got."""
        client, run_id = self.experiment, self.run_id
        client.update_run(run_id, status="RUNNING")
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        for key in client.get_run(run_id).data.metrics:
            self.logged[key] = max(m.step for m in client.get_metric_history(run_id, key))

    def finalize(self, status: str = "success") -> None:
        """Lightning calls this after each fit; the run ends in `close` instead."""

    def close(self, status: str) -> None:
        super().finalize(status)

    def log_iteration(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Per-iteration metrics, with the iteration as their step."""
        self._log_new(dict(metrics), iteration)

    def log_file(self, path: Path, folder: Optional[str] = None) -> None:
        self.experiment.log_artifact(self.run_id, str(path), folder)

    def log_table(self, rows: List[Dict[str, Any]], name: str) -> None:
        """Rows as an MLflow table (`name` ends in .json), viewable and comparable in the UI."""
        if rows:
            columns = {k: [row.get(k) for row in rows] for k in rows[0]}
            self.experiment.log_table(self.run_id, data=columns, artifact_file=name)

    def log_data_files(self, files: Mapping[str, Path], digests: Mapping[str, str]) -> None:
        """The data files read, as dataset inputs named by file, their config key as context."""
        inputs = [
            DatasetInput(
                MetaDataset(
                    _file_source(path), name=path.name, digest=digests[key][:16]
                )._to_mlflow_entity(),
                tags=[InputTag("mlflow.data.context", key)],
            )
            for key, path in files.items()
        ]
        if inputs:
            self.experiment.log_inputs(self.run_id, datasets=inputs)

    def describe(self, text: str) -> None:
        """The run's description in the UI (markdown)."""
        self.experiment.set_tag(self.run_id, "mlflow.note.content", text)


def _file_source(path: Path):
    """A local file as an MLflow dataset source (MLflow registers its local-file source
    twice and warns that the URI is ambiguous; both readings are the same)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return resolve_dataset_source(path.resolve().as_uri())


class IdleLogger(DummyLogger):
    """What ranks other than 0 track with: nothing (rank 0 holds the MLflow run); any of
    RunLogger's methods is a no-op here."""

    def __init__(self) -> None:
        super().__init__()
        self.step_offset = 0
        self.run_id: Optional[str] = None


def flat_params(cfg: SSOConfig) -> Dict[str, Any]:
    """The resolved config as dotted keys, without the long principle texts."""
    return flatten(cfg, skip=_NOT_PARAMS)


def start_run(
    cfg: SSOConfig,
    tracking: TrackingConfig,
    config_file: Path,
    run_id: Optional[str] = None,
    tags: Optional[Dict[str, str]] = None,
) -> RunLogger:
    """Open the run (tagged, with params and the config YAML), or continue `run_id`."""
    logger = RunLogger(
        experiment_name=tracking.experiment_name,
        run_name=tracking.run_name,
        tracking_uri=tracking.uri,
        artifact_location=tracking.artifact_location,
        run_id=run_id,
        tags=tags,
    )
    if run_id is not None:
        logger.continue_run(tags or {})
        return logger
    client, experiment_id = logger.experiment, logger.experiment_id
    if EXPERIMENT_KIND not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, "custom_model_development")
    logger.log_hyperparams(flat_params(cfg))
    logger.log_file(config_file)
    return logger


def search_all_runs(client: MlflowClient, experiment_id: str, filter_string: str = "") -> List[Run]:
    """Every run of the experiment matching the filter (MLflow pages its answers)."""
    runs: List[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs
