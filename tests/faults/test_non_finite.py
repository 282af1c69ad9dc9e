"""A non-finite number never becomes a finished iteration: a NaN config value is refused at
start-up naming its key; a loss made NaN in iteration 2 (by a test hook: a fault the config
cannot show) stops training at that step in one message, nothing of iteration 2 saved or
recorded finished, the MLflow run FAILED, and the same command, once the fault is gone,
resumes before that stage and finishes like a run that never failed."""

import json
from pathlib import Path

import mlflow

from conftest import ROOT, TINY_ARGS, run_cli, run_module, store

HOOK = Path(__file__).with_name("nan_loss.py")


def test_a_nan_config_value_is_refused_before_any_work(tmp_path):
    proc = run_cli(tmp_path, *TINY_ARGS, "loss=simpo", "loss.simpo_gamma=nan")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert "config key 'loss.simpo_gamma'" in out and "not a finite number" in out
    assert not (tmp_path / "run/state.json").exists()


def test_a_nan_loss_stops_its_iteration_unsaved_and_the_run_resumes_before_it(tmp_path):
    args = [
        f"hydra.run.dir={tmp_path}/run",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
        *TINY_ARGS,
    ]
    proc = run_module(str(HOOK), "2", *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert "iteration 2: training stopped at optimizer step 1" in out
    run = tmp_path / "run"
    assert not (run / "iter_2/policy").exists()
    assert not list((run / "iter_2").glob(".policy-*"))
    assert "iter_2/train" not in json.loads((run / "state.json").read_text())["stages"]
    client = mlflow.MlflowClient(store(tmp_path))
    (failed,) = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])
    assert failed.info.status == "FAILED"
    first = (run / "iter_1/pairs.jsonl").stat().st_mtime_ns

    again = run_cli(tmp_path, *TINY_ARGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout + again.stderr
    assert (run / "iter_1/pairs.jsonl").stat().st_mtime_ns == first  # not redone
    golden = json.loads((ROOT / "tests/golden/tiny_online.json").read_text())
    assert (run / "iter_2/pairs.jsonl").read_text() == golden["pairs"]["iter_2"]
    assert client.get_run(failed.info.run_id).info.status == "FINISHED"
