"""System metrics in a run, sampled by MLflow's monitor while the run's work goes on: off
by a key, every interval, labelled by node when asked, and a resumed run's samples after
its earlier ones (no step twice)."""

import time

import mlflow
import pytest

from conftest import store
from sso_exp.config import TrackingConfig
from sso_exp.tracking.system_metrics import system_metrics

CPU = "system/cpu_utilization_percentage"


@pytest.fixture
def run(tmp_path):
    client = mlflow.MlflowClient(store(tmp_path))
    exp = client.create_experiment("sso-exp", artifact_location=(tmp_path / "art").as_uri())
    return client, client.create_run(exp).info.run_id


def sampled(client, run_id, tracking, resumed=False, seconds=1.0):
    with system_metrics(tracking, run_id, resumed):
        time.sleep(seconds)
    return client.get_run(run_id).data.metrics


def tracking(uri, **kw):
    return TrackingConfig(uri=uri, system_metrics_interval_s=0.2, **kw)


def test_a_run_gets_samples_every_interval_and_a_resumed_one_goes_on_after_them(run):
    client, run_id = run
    uri = client.tracking_uri
    metrics = sampled(client, run_id, tracking(uri))
    assert {CPU, "system/system_memory_usage_megabytes", "system/disk_usage_percentage"} <= set(
        metrics
    )
    assert "system/network_receive_megabytes" in metrics
    first = [m.step for m in client.get_metric_history(run_id, CPU)]
    assert len(first) >= 2  # 1 s at 0.2 s: several samples (a loaded machine may lag)
    sampled(client, run_id, tracking(uri), resumed=True)
    steps = [m.step for m in client.get_metric_history(run_id, CPU)]
    assert len(steps) > len(first) and len(steps) == len(set(steps))


def test_off_samples_nothing_and_nodes_label_each_nodes_samples(run):
    client, run_id = run
    uri = client.tracking_uri
    assert not sampled(client, run_id, tracking(uri, system_metrics="off"))
    metrics = sampled(client, run_id, tracking(uri, system_metrics="nodes"))
    assert f"system/node_0/{CPU.split('/')[1]}" in metrics and CPU not in metrics
