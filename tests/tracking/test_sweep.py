"""`python -m sso_exp -m ...` on model=tiny: one parent MLflow run per sweep, its jobs as
child runs, a comparison at the end (jobs in this process or as Submitit jobs), failures
that do not stop the sweep, bad sweeps that fail before any job, and the Optuna search."""

import mlflow
import pytest

from conftest import run_module, store
from sso_exp.tracking.sweep import expand_jobs

pytestmark = pytest.mark.slow  # whole runs: `make test` starts these files first

SMALL = (
    "model=tiny",
    "schedule.iterations=1",
    "schedule.queries_per_iteration=2",
    "generation.max_new_tokens=8",
    "principle.identify_max_new_tokens=6",
    "generation.batch_size=8",
)


def run_sweep(tmp_path, *overrides, timeout=600):
    return run_module(
        "sso_exp",
        "-m",
        f"hydra.sweep.dir={tmp_path}/sweep",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
        *SMALL,
        *overrides,
        timeout=timeout,
    )


def override(run, key):
    """The value a sweep job's `key` was set to on its command line."""
    return dict(t.split("=", 1) for t in run.data.tags["sso.overrides"].split())[key]


def runs_of(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("sso-exp")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    parents = [r for r in runs if r.data.tags.get("sso.role") == "sweep"]
    children = sorted((r for r in runs if r not in parents), key=lambda r: r.data.tags["sso.job"])
    return client, parents, children


def test_expand_jobs_is_the_cartesian_product():
    jobs = expand_jobs(["experiment=sso,pbaa", "loss.beta=0.1,0.2", "model=tiny"])
    assert len(jobs) == 4 and ["experiment=pbaa", "loss.beta=0.2", "model=tiny"] in jobs


def test_expand_jobs_leaves_continuous_searches_to_their_sweeper():
    assert expand_jobs(["loss.beta=interval(0.1,0.5)", "experiment=sso,pbaa"]) == [
        ["experiment=sso"],
        ["experiment=pbaa"],
    ]


def test_sweep_groups_jobs_under_a_parent_and_compares_them(tmp_path):
    """Each job a Submitit job (its own processes, as on a cluster; the basic launcher's
    jobs, in the sweep's process, are in tests/faults/test_sweeps.py), its system metrics
    sampled every second."""
    launcher = ("hydra/launcher=submitit_local", "tracking.system_metrics_interval_s=1")
    proc = run_sweep(tmp_path, "experiment=sso,pbaa", *launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = runs_of(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    sweep_id = parent.data.tags["sso.sweep_id"]
    assert [override(r, "experiment") for r in children] == ["sso", "pbaa"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["sso.sweep_id"] == sweep_id
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    assert {"compare/runs.md", "compare/runs.csv", "compare/onpolicy.png"} <= logged
    assert all((tmp_path / f"sweep/{job}/iter_1/pairs.jsonl").is_file() for job in (0, 1))
    table = (tmp_path / "sweep/compare/runs.md").read_text()
    assert "| experiment=sso | FINISHED |" in table and "| experiment=pbaa | FINISHED |" in table
    assert "| experiment=pbaa | FINISHED |" in proc.stdout  # printed at the end
    assert len(list(tmp_path.glob("sweep/.submitit/*/*_submitted.pkl"))) == 2
    for child in children:
        assert "system/cpu_utilization_percentage" in child.data.metrics
        assert "system/system_memory_usage_megabytes" in child.data.metrics


def test_parallel_jobs_with_a_failure(tmp_path):
    """joblib workers write to one sqlite store; the failing job's run is FAILED, the other
    finishes, the parent is FAILED and the sweep exits non-zero naming the job."""
    proc = run_sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "filter.min_chars=5,100000",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    _, parents, children = runs_of(tmp_path)
    assert parents[0].info.status == "FAILED" and len(children) == 2
    status = {override(r, "filter.min_chars"): r.info.status for r in children}
    assert status == {"5": "FINISHED", "100000": "FAILED"}
    assert "1 job(s) failed: job 1 (" in proc.stdout + proc.stderr
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    for r in children:  # every metric logged once per step
        for key in r.data.metrics:
            steps = [m.step for m in client.get_metric_history(r.info.run_id, key)]
            assert len(steps) == len(set(steps)), key


@pytest.mark.parametrize(
    "bad, named", [("loss=ipo,nonexistent", "nonexistent"), ("loss.beta=0.1,-1", "loss.beta")]
)
def test_a_bad_job_fails_the_sweep_before_any_job_runs(tmp_path, bad, named):
    proc = run_sweep(tmp_path, bad)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("sweep/[0-9]*/*.log"))  # no job started
    _, parents, children = runs_of(tmp_path)
    assert not parents and not children


def test_optuna_search_returns_the_metric_and_logs_the_best(tmp_path):
    proc = run_sweep(
        tmp_path,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = runs_of(tmp_path)
    assert len(children) == 2
    betas = {r.data.params["loss.beta"] for r in children}
    assert len(betas) == 2  # the sampler chose the knobs
    best = (tmp_path / "sweep/optimization_results.yaml").read_text()
    assert "best_value" in best and "loss.g_beta" in best
    logged = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "optimization_results.yaml" in logged


def test_a_sweep_whose_parent_run_cannot_be_made_runs_no_job(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # the store's folder would have to be inside a file
    proc = run_module(
        "sso_exp", "-m", f"hydra.sweep.dir={tmp_path}/sweep",
        f"tracking.uri=sqlite:///{blocker}/mlflow.db", *SMALL, "loss.beta=0.1,0.2",
    )  # fmt: skip
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-2000:]
    assert "its parent MLflow run could not be made" in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("sweep/[0-9]*/*.log"))  # no job started
