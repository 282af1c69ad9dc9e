"""A tracking server that goes away costs a bounded wait (tracking.retries, timeout_s):
unreachable at start-up, the run stops before any work naming tracking.uri; gone mid-run,
on_error=stop ends the run in one message with every finished stage on disk (the same
command resumes once the server is back), and on_error=buffer records the calls in the run
folder and replays them (`python -m sso_exp.tracking.replay`)."""

import json
import time

import forkserver
import mlflow
import pytest

from conftest import ROOT, TINY_ARGS, free_port, mlflow_server, run_module
from sso_exp.tracking.mlflow_run import BUFFER_FILE

pytestmark = pytest.mark.slow  # long: `make test` starts these files first

FAST = ("tracking=server", "tracking.retries=1", "tracking.timeout_s=5")


def command(tmp, url, *extra):
    return (
        f"hydra.run.dir={tmp}/run",
        f"tracking.uri={url}",
        *FAST,
        *TINY_ARGS,
        *extra,
    )


def stages(tmp):
    try:
        return json.loads((tmp / "run/state.json").read_text())["stages"]
    except (OSError, ValueError):
        return {}


def run_until_server_stops(tmp, port, *extra):
    """Start the run against a server, stop the server once iteration 1 has sampled; the
    run's exit code, output, and seconds from the stop to its end."""
    with mlflow_server(tmp, port) as url:
        proc = forkserver.Job("sso_exp", command(tmp, url, *extra), ROOT, log=tmp / "out.log")
        while "iter_1/sample" not in stages(tmp):
            assert proc.poll() is None, (tmp / "out.log").read_text()[-3000:]
            time.sleep(0.1)
    stopped = time.monotonic()
    done = proc.wait(timeout=300)
    return done.returncode, done.stdout, time.monotonic() - stopped


def the_run(url):
    client = mlflow.MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_no_server_at_start_up_stops_before_any_work(tmp_path):
    start = time.monotonic()
    proc = run_module(
        "sso_exp",
        f"hydra.run.dir={tmp_path}/run",
        f"tracking.uri=http://127.0.0.1:{free_port()}",
        *FAST,
        *TINY_ARGS,
    )
    took = time.monotonic() - start
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert "config key 'tracking.uri'" in proc.stdout + proc.stderr
    assert not (tmp_path / "run/state.json").exists() and took < 60


def test_server_gone_mid_run_stops_it_in_one_message_and_it_resumes(tmp_path):
    port = free_port()
    rc, out, waited = run_until_server_stops(tmp_path, port)
    assert rc == 2 and "Traceback" not in out, out[-3000:]
    assert "config key 'tracking.uri'" in out and "did not answer" in out
    assert waited < 60 and "iter_1/sample" in stages(tmp_path)
    with mlflow_server(tmp_path, port) as url:
        proc = run_module("sso_exp", *command(tmp_path, url))
        assert proc.returncode == 0, proc.stderr[-3000:]
        client, run = the_run(url)
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "pairs/kept")) == 2


def test_buffer_goes_on_and_replays_when_the_server_is_back(tmp_path):
    port = free_port()
    rc, out, _ = run_until_server_stops(tmp_path, port, "tracking.on_error=buffer")
    assert rc == 0, out[-3000:]
    assert (tmp_path / "run" / BUFFER_FILE).is_file()
    assert (tmp_path / "run/iter_2/pairs.jsonl").is_file()
    with mlflow_server(tmp_path, port) as url:
        proc = run_module("sso_exp.tracking.replay", str(tmp_path / "run"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        client, run = the_run(url)
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "pairs/kept")) == 2
        assert not (tmp_path / "run" / BUFFER_FILE).exists()
