"""Opening a run's MLflow run: two sweep jobs registering the same data file at once both
get it linked; a failure after the run exists closes it FAILED, never leaves it RUNNING; a
stop signal whose exception a finalizer dropped still stops the run."""

import signal

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import IntegrityError
from test_online import only_run

from conftest import compose_cfg
from sso_exp.errors import Stopped
from sso_exp.pipeline.tracked_run import open_run
from sso_exp.runtime.signals import raise_if_stopped, stop_on_signals


def race_once(monkeypatch, error):
    """log_data_files' first log_inputs fails as a concurrent insert of the same dataset
    makes it fail (or with `error`), the next goes through."""
    real, calls = mlflow.MlflowClient.log_inputs, []

    def log_inputs(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise MlflowException("insert failed") from error
        return real(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "log_inputs", log_inputs)
    return calls


def test_a_dataset_registered_by_a_job_beside_it_is_linked(tmp_path, monkeypatch):
    calls = race_once(monkeypatch, IntegrityError("INSERT", {}, Exception("UNIQUE")))
    cfg = compose_cfg(tmp_path, "model=tiny")
    (tmp_path / "run").mkdir()
    logger = open_run(cfg, tmp_path / "run", None)
    logger.close("FINISHED")
    assert len(calls) == 2
    client, run = only_run(tmp_path)
    run = client.get_run(run.info.run_id)  # with its inputs
    assert run.info.status == "FINISHED"
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["demo_queries.jsonl"]


def test_a_failure_after_the_run_exists_closes_it_failed(tmp_path, monkeypatch):
    race_once(monkeypatch, OSError("disk"))  # not a race: raised, not retried
    cfg = compose_cfg(tmp_path, "model=tiny")
    (tmp_path / "run").mkdir()
    with pytest.raises(MlflowException):
        open_run(cfg, tmp_path / "run", None)
    assert only_run(tmp_path)[1].info.status == "FAILED"


class SignalsWhenCollected:
    """Sends SIGTERM from its finalizer, as a signal may arrive while the collector runs."""

    def __del__(self):
        signal.raise_signal(signal.SIGTERM)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_signal_dropped_in_a_finalizer_stops_at_the_next_boundary():
    went_on = False
    try:
        with pytest.raises(Stopped), stop_on_signals():
            SignalsWhenCollected()  # the handler's Stopped is raised in __del__ and dropped
            went_on = True
            raise_if_stopped()
        assert went_on
        raise_if_stopped()  # outside the run nothing is pending
        # the process is ending: a supervisor's repeated SIGTERM must not cut its closing
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
