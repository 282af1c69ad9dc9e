"""MLflow tracking through Lightning's MLFlowLogger: one run per invocation holding the
config, per-step training metrics continued across iterations, per-iteration metrics, each
iteration's pairs (a file and a table the UI shows), the data files read (as dataset
inputs) and, as its description, the summary table: a run reads like a lab notebook. The
experiment is filed as model training (MLflow 3 files an experiment without a kind under
GenAI evaluation)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from mlflow import MlflowClient
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Run
from mlflow.exceptions import MlflowException
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.loggers.logger import DummyLogger
from sqlalchemy.exc import IntegrityError

from ..config import SSOConfig, TrackingConfig, flatten
from ..errors import ConfigError, SSOError
from .buffer import append_calls, read_calls
from .store import experiment_id, open_client

log = logging.getLogger(__name__)

BUFFER_FILE = "tracking_buffer.jsonl"
# the client's calls that only record: buffered while the server is away (reads cannot be)
RECORDS = {
    "log_batch",
    "log_artifact",
    "log_table",
    "log_inputs",
    "set_tag",
    "set_terminated",
    "update_run",
}
DOWN = (MlflowException, OSError)  # requests' errors are OSErrors
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

    def __init__(self, tracking: TrackingConfig, buffer: Optional[Path], **kwargs: Any):
        super().__init__(
            experiment_name=tracking.experiment_name,
            run_name=tracking.run_name,
            tracking_uri=tracking.uri,
            artifact_location=tracking.artifact_location,
            **kwargs,
        )
        self.tracking, self.buffer = tracking, buffer
        self.step_offset = 0
        self.logged: Dict[str, int] = {}  # a resumed run's last logged step per metric
        self.down = False  # the server stopped answering

    @property
    def experiment(self) -> Guarded:
        """The MLflow client (the run made on first use), every call of it through `call`,
        where outages are handled."""
        if not self.down:
            self.client()
        return Guarded(self)

    def client(self) -> MlflowClient:
        try:
            return MLFlowLogger.experiment.fget(self)  # creates the run on first use
        except DOWN as err:
            raise self.unreachable("starting the run", err) from None

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        """One client call. When the server does not answer (its retry budget spent):
        on_error=stop ends the run naming the server, with nothing on disk lost; buffer
        appends a recording call to the run folder's buffer and the run goes on."""
        buffering = self.tracking.on_error == "buffer" and name in RECORDS
        if self.down and buffering:
            return self.record(name, args, kwargs)
        if self.down and self.tracking.on_error == "stop":  # closing must not wait again
            return None
        try:
            return getattr(self.client(), name)(*args, **kwargs)
        except DOWN as err:
            if not remote(self.tracking.uri):  # a local store's error is the machine's
                raise
            self.down = True
            if not buffering:
                raise self.unreachable(name, err) from None
            log.warning(
                "%s; recording in %s until it answers", self.unreachable(name, err), self.buffer
            )
            return self.record(name, args, kwargs)

    def unreachable(self, doing: str, err: BaseException) -> SSOError:
        t = self.tracking
        cause = str(err).splitlines()[0][:300]
        return SSOError(
            f"config key 'tracking.uri': {t.uri} did not answer ({doing}; {1 + t.retries} "
            f"tries of up to {t.timeout_s} s): {cause}. Everything the run finished is on "
            "disk; start the same command when the server answers to go on "
            "(tracking.on_error=buffer records the calls and goes on)"
        )

    def record(self, name: str, args: tuple, kwargs: dict) -> None:
        if self.buffer is None:
            return None
        append_calls(self.buffer, [(name, args, kwargs)])
        return None

    def replay(self) -> None:
        """Send the buffered calls, in order, once the server answers again; the buffer is
        kept (and the run goes on buffering) while it does not."""
        if self.buffer is None or not self.buffer.is_file():
            return
        calls = read_calls(self.buffer)
        client = open_client(self.tracking.uri)  # every buffered call names its run
        self.down = False
        for i, (name, args, kwargs) in enumerate(calls):
            try:
                getattr(client, name)(*args, **kwargs)
            except DOWN as err:
                self.down = True
                rest = self.buffer.with_suffix(".tmp")
                append_calls(rest, calls[i:], mode="w")
                os.replace(rest, self.buffer)
                log.warning("tracking still away (%s); %d calls kept", err, len(calls) - i)
                return
        self.buffer.unlink()
        log.info("replayed %d tracking calls into %s", len(calls), self.tracking.uri)

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
        """End the run with `status`; while the server is away the end is buffered too,
        and `python -m sso_exp.tracking.replay <run folder>` sends it all later."""
        if self.down:
            self.replay()
        if not self.down:
            super().finalize(status)
        elif self.tracking.on_error == "buffer":
            self.record("set_terminated", (self._run_id, status), {})
            log.warning(
                "%s still does not answer: the run's tracking calls wait in %s; send them "
                "with `python -m sso_exp.tracking.replay %s`",
                self.tracking.uri,
                self.buffer,
                self.buffer.parent if self.buffer else "<run folder>",
            )

    def log_iteration(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Per-iteration metrics, with the iteration as their step (and, while the server
        is away, one try to replay what was buffered)."""
        if self.down:
            self.replay()
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
        if not inputs:
            return
        try:
            self.experiment.log_inputs(self.run_id, datasets=inputs)
        except MlflowException as err:
            if not isinstance(err.__cause__, IntegrityError):
                raise
            # a job started beside this one (a parallel sweep) registered the same file in
            # the same instant; now that the dataset exists, logging links it
            self.experiment.log_inputs(self.run_id, datasets=inputs)

    def describe(self, text: str) -> None:
        """The run's description in the UI (markdown)."""
        self.experiment.set_tag(self.run_id, "mlflow.note.content", text)


def remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


class Guarded:
    """The MLflow client as RunLogger and Lightning's MLFlowLogger use it, each call passed
    through RunLogger.call."""

    def __init__(self, logger: RunLogger):
        self._logger = logger

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: self._logger.call(name, args, kwargs)


def http_budget(tracking: TrackingConfig) -> None:
    """MLflow's HTTP retries for this process, from the config (MLflow's defaults wait
    minutes for a server that is gone)."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(tracking.retries)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(tracking.timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"


def check_tracking(tracking: TrackingConfig) -> None:
    """Before any work: the store answers and takes writes (the experiment is made or
    tagged, as the run would), and a local artifact folder can be written."""
    http_budget(tracking)
    try:
        client = open_client(tracking.uri)
        exp_id = experiment_id(client, tracking)
        # always written: a store that reads but refuses writes fails here, not mid-run
        client.set_experiment_tag(exp_id, EXPERIMENT_KIND, "custom_model_development")
    except DOWN as err:
        cause = str(err).splitlines()[0][:300]
        raise ConfigError(
            f"config key 'tracking.uri': {tracking.uri} cannot be used: {cause}"
        ) from None
    local = tracking.artifact_location
    if local and "://" not in local:
        _writable(Path(local), "tracking.artifact_location")


def _writable(folder: Path, key: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"config key '{key}': {folder} cannot be written ({err.strerror})"
        ) from None


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
    """Open the run (tagged, with params and the config YAML), or continue `run_id` (first
    replaying what an earlier session buffered while the server was away)."""
    http_budget(tracking)
    buffer = config_file.parent / BUFFER_FILE
    logger = RunLogger(tracking, buffer, run_id=run_id, tags=tags)
    if run_id is not None:
        logger.replay()
        logger.continue_run(tags or {})
        return logger
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
