"""tracking=server against a real `mlflow server` on loopback (sqlite backend, local artifact
root): a tiny job's run, metrics and artifacts all arrive through the server."""

import mlflow
import pytest

from conftest import TINY_ARGS, mlflow_server, run_module

pytestmark = pytest.mark.slow  # whole runs: `make test` starts these files first


@pytest.fixture
def server(tmp_path):
    with mlflow_server(tmp_path) as url:
        yield url, tmp_path


def test_a_job_tracks_to_a_running_server(server):
    url, tmp = server
    proc = run_module(
        "sso_exp",
        f"hydra.run.dir={tmp}/run",
        "tracking=server",
        f"tracking.uri={url}",
        *TINY_ARGS,
        "schedule.iterations=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # stored by the server
    assert {"loss", "pairs/kept", "onpolicy/chosen"} <= set(run.data.metrics)
    assert {"config.yaml", "iter_1", "provenance.json"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    assert list((tmp / "server-art").rglob("pairs.jsonl"))
    assert not (tmp / "mlflow.db").exists()  # nothing went to a local store
