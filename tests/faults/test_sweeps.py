"""Two sweeps started in the same second each get a folder of their own (the default name
is the clock plus a token drawn once per invocation and handed to every job): both
complete, and neither touches the other's jobs, parent run or report."""

import subprocess
import sys

import mlflow
import pytest
from tracking.test_sweep import SMALL

from conftest import ROOT, store

pytestmark = pytest.mark.slow  # whole runs: `make test` starts these files first


def start_sweep(tmp_path, *overrides):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sso_exp",
            "-m",
            f"hydra.sweep.dir={tmp_path}/sweeps/" + "${now:%Y-%m-%d_%H-%M-%S}_${uid:}",
            f"tracking.uri={store(tmp_path)}",
            f"tracking.artifact_location={tmp_path}/art",
            *SMALL,
            *overrides,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_two_sweeps_started_together_complete_apart(tmp_path):
    (tmp_path / "sweeps").mkdir()
    store = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")  # artifacts under tmp_path
    store.create_experiment("sso-exp", artifact_location=(tmp_path / "art").as_uri())
    a = start_sweep(tmp_path, "loss.beta=0.5,0.6")
    b = start_sweep(tmp_path, "loss.beta=0.7")
    for proc in (a, b):
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    folders = sorted((tmp_path / "sweeps").iterdir())
    assert len(folders) == 2 and all((f / "sweep.json").is_file() for f in folders)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sso.role") == "sweep"]
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    jobs = {
        p.data.tags["sso.sweep_dir"]: sorted(
            r.data.params["loss.beta"]
            for r in runs
            if r.data.tags.get("mlflow.parentRunId") == p.info.run_id
            and r.info.status == "FINISHED"
        )
        for p in parents
    }
    assert sorted(jobs.values()) == [["0.5", "0.6"], ["0.7"]]
    rows = sorted((f / "compare" / "runs.md").read_text().count("| FINISHED |") for f in folders)
    assert rows == [1, 2]  # each report lists its own jobs only
