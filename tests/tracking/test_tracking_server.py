"""tracking=server against a real `mlflow server` on loopback (sqlite backend, local artifact
root): a tiny job's run, metrics and artifacts all arrive through the server."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from conftest import TINY_ARGS, run_module

MLFLOW = Path(sys.executable).with_name("mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            str(MLFLOW),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-art"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (
                "mlflow server did not start"
            )
            time.sleep(0.5)
    yield url, tmp_path
    proc.terminate()
    proc.wait(timeout=30)


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
