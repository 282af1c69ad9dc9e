"""The comparison report, on a real MLflow sqlite store holding a sweep (parent + 3 jobs, one
FAILED) and a plain experiment of 2 untagged runs."""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric, Param
from omegaconf import OmegaConf

from conftest import run_module
from sso_exp.config import TrackingConfig
from sso_exp.errors import ConfigError
from sso_exp.tracking.compare import (
    CompareError,
    ReportSettings,
    bare_target,
    default_settings,
    find_study,
    report,
    report_sweep,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SETTINGS = ReportSettings(
    final_metrics=["pairs/kept", "train/loss", "gsm8k/exact_match"],
    plots={
        "pairs": ["pairs/kept", "pairs/drop_rate"],
        "onpolicy": ["onpolicy/chosen"],
        "eval": ["gsm8k/exact_match"],
    },
    log_to_parent=True,
)
JOBS = {  # experiment -> (status, per-iteration pairs/kept, train/loss)
    "sso": ("FINISHED", [6.0, 7.0], [0.5, 0.25]),
    "pbaa": ("FAILED", [5.0, 4.0], [0.75, 0.625]),
    "no_w": ("FINISHED", [8.0, 8.0], [0.4, 0.3]),
}


def _log(client, run_id, metrics, params=()):
    """Per-iteration metrics (key -> values for iterations 1, 2, ...) in one batch, plus a
    per-step training metric the report must ignore."""
    now = int(time.time() * 1000)
    batch = [Metric(k, v, now + i, i + 1) for k, vs in metrics.items() for i, v in enumerate(vs)]
    batch += [Metric("loss", 1.0 / s, now, s) for s in range(1, 6)]
    client.log_batch(run_id, metrics=batch, params=[Param(k, v) for k, v in params])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The store's uri, the sweep's parent run id and the plain experiment's run ids."""
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("sso-exp", artifact_location=str(tmp / "art"))
    parent = client.create_run(
        exp,
        run_name="sweep-s1",
        tags={
            "sso.role": "sweep",
            "sso.sweep_id": "s1",
            "sso.sweep_overrides": "experiment=sso,pbaa,no_w schedule.iterations=2",
        },
    ).info.run_id
    for job, (name, (status, kept, loss)) in enumerate(JOBS.items()):
        run = client.create_run(
            exp,
            run_name=f"job-{job}",
            tags={
                "mlflow.parentRunId": parent,
                "sso.sweep_id": "s1",
                "sso.job": str(job),
                "sso.overrides": f"experiment={name} schedule.iterations=2",
            },
        ).info.run_id
        se = {"train/loss_se": [0.05, 0.02], "onpolicy/chosen_se": [0.1, 0.2]} if job == 0 else {}
        _log(
            client,
            run,
            {
                "pairs/kept": kept,
                "train/loss": loss,
                "onpolicy/chosen": [-1.0 - job, -0.5 - job],
                **se,  # the sso job logged standard errors: intervals in table and plot
            },
            [("loss.name", "ipo"), ("output_dir", f"/runs/{job}")],
        )
        client.set_terminated(run, status)
    client.create_run(exp, run_name="sweep-s2", tags={"sso.role": "sweep", "sso.sweep_id": "s2"})
    other = client.create_experiment("other", artifact_location=str(tmp / "art2"))
    plain = []
    for loss_name in ("ipo", "dpo"):
        run = client.create_run(other, run_name=f"plain-{loss_name}").info.run_id
        _log(
            client,
            run,
            {"pairs/kept": [3.0]},
            [
                ("loss.name", loss_name),
                ("schedule.iterations", "1"),
                ("output_dir", f"/runs/{loss_name}"),
            ],
        )
        client.set_terminated(run, "FINISHED")
        plain.append(run)
    return client, uri, parent, plain


def _rows(path: Path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_sweep_report(store, tmp_path):
    client, _, parent, _ = store
    paths = report(client, "sso-exp", "s1", tmp_path, SETTINGS)
    assert sorted(p.name for p in paths) == [
        "iterations.csv",
        "onpolicy.png",
        "pairs.png",
        "runs.csv",
        "runs.md",
    ]  # eval: no data, skipped
    runs = _rows(tmp_path / "runs.csv")
    assert [r["label"] for r in runs] == ["experiment=sso", "experiment=pbaa", "experiment=no_w"]
    assert [r["status"] for r in runs] == ["FINISHED", "FAILED", "FINISHED"]
    assert [(float(r["pairs/kept"]), float(r["train/loss"])) for r in runs] == [
        (7.0, 0.25),
        (4.0, 0.625),
        (8.0, 0.3),
    ]
    assert all("gsm8k/exact_match" not in r and len(r["run"]) == 8 for r in runs)  # no run has it
    assert float(runs[0]["train/loss ±95%"]) == pytest.approx(1.96 * 0.02, rel=1e-3)
    assert [r["train/loss ±95%"] for r in runs[1:]] == ["", ""]
    assert "pairs/kept ±95%" not in runs[0]  # no run logged its standard error
    md = (tmp_path / "runs.md").read_text()
    assert "| experiment=pbaa | FAILED |" in md and "| 4 | 0.625 | - |" in md
    iters = _rows(tmp_path / "iterations.csv")
    assert len(iters) == 3 * 2 * 2  # runs x plotted metrics with data x iterations
    assert {
        "label": "experiment=no_w",
        "metric": "onpolicy/chosen",
        "iteration": "2",
        "value": "-2.5",
    }.items() <= iters[-1].items()
    assert all(r["metric"] != "loss" for r in iters)
    for name in ("pairs.png", "onpolicy.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    logged = {Path(a.path).name for a in client.list_artifacts(parent, "compare")}
    assert {p.name for p in paths} <= logged


def test_report_sweep_uses_the_yaml_knobs(store, tmp_path):
    client, uri, _, _ = store
    paths = report_sweep(client, TrackingConfig(uri=uri), "s1", tmp_path)
    assert {"pairs.png", "onpolicy.png", "training.png"} <= {p.name for p in paths}
    header = (tmp_path / "runs.md").read_text().splitlines()[0]
    assert "| train/loss |" in header and "signal/accuracy" not in header  # none logged it


def test_parent_run_id_target_without_logging(store, tmp_path):
    client, _, parent, _ = store
    settings = ReportSettings(SETTINGS.final_metrics, SETTINGS.plots, log_to_parent=False)
    study = find_study(client, "sso-exp", parent)
    assert study.parent.info.run_id == parent
    assert [r.data.tags["sso.job"] for r in study.runs] == ["0", "1", "2"]
    report(client, "no-such-experiment", parent, tmp_path, settings)
    assert [r["label"] for r in _rows(tmp_path / "runs.csv")][0] == "experiment=sso"


def test_experiment_target_labels_by_differing_params(store, tmp_path):
    client, _, _, plain = store
    report(client, "sso-exp", "other", tmp_path, SETTINGS)
    runs = _rows(tmp_path / "runs.csv")
    assert [r["label"] for r in runs] == ["loss.name=ipo", "loss.name=dpo"]
    assert [r["pairs/kept"] for r in runs] == ["3.0", "3.0"]
    assert [r["run"] for r in runs] == [p[:8] for p in plain]


def test_experiment_target_leaves_out_sweep_parents(store):
    study = find_study(store[0], "other", "sso-exp")
    assert study.parent is None
    assert sorted(r.info.run_name for r in study.runs) == ["job-0", "job-1", "job-2"]


def test_unknown_target_and_empty_sweep(store):
    client = store[0]
    with pytest.raises(CompareError) as err:
        find_study(client, "sso-exp", "nope")
    assert all(s in str(err.value) for s in ("sweep id", "run id", "experiment name"))
    with pytest.raises(CompareError, match="sweep s2 has no child runs"):
        find_study(client, "sso-exp", "s2")


def test_config_validation_names_the_key():
    base = OmegaConf.load(ROOT / "conf" / "compare.yaml")
    cfg = OmegaConf.merge(
        OmegaConf.masked_copy(base, ["final_metrics", "plots", "out_dir", "log_to_parent"]),
        {"target": "s1", "tracking": {"uri": "sqlite:///x.db"}},
    )
    assert validate(cfg).out_dir == "outputs/compare/s1"
    with pytest.raises(ConfigError, match="plotz"):
        validate(OmegaConf.merge(cfg, {"plotz": {}}))
    with pytest.raises(ConfigError, match="plots.eval"):
        validate(OmegaConf.merge(cfg, {"plots": {"eval": []}}))
    with pytest.raises(ConfigError, match="target"):
        validate(
            OmegaConf.masked_copy(
                cfg, ["final_metrics", "plots", "tracking", "out_dir", "log_to_parent"]
            )
        )
    settings = default_settings()
    assert "onpolicy/raw" in settings.plots["onpolicy"] and settings.log_to_parent


def test_bare_target_is_quoted():
    assert bare_target(["c", "123", "out_dir=x"]) == ["c", "target='123'", "out_dir=x"]
    assert bare_target(["c", "target=s1"]) == ["c", "target=s1"]
    assert bare_target(["c", "--cfg", "job"]) == ["c", "--cfg", "job"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_module("sso_exp.tracking.compare", *args, timeout=120)


def test_cli_bare_target_and_error(store, tmp_path):
    uri = store[1]
    done = _cli("s1", f"tracking.uri={uri}", f"out_dir={tmp_path}/report", "log_to_parent=false")
    assert done.returncode == 0, done.stderr
    assert "| experiment=no_w | FINISHED |" in done.stdout
    assert f"{tmp_path}/report/pairs.png" in done.stdout
    assert (tmp_path / "report" / "pairs.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    bad = _cli("nope", f"tracking.uri={uri}", f"out_dir={tmp_path}/bad")
    assert bad.returncode == 2
    assert "error: 'nope' is neither a sweep id" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()
