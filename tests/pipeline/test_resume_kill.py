"""kill -9 a real online run (model=tiny) while it names features, samples, scores, trains,
saves or evaluates iteration 2; the same command started again goes on from the last
finished stage, in the same folder and MLflow run, logs no metric twice, and ends where an
uninterrupted run ends (that a seeded run reproduces is pinned by test_golden). A Submitit
job pre-empted while it trains requeues itself and does the same. Where a log line cannot
time the kill, tests/faults/pause.py holds the run at the chosen call until it is killed.
Also: every run records its provenance."""

import contextlib
import json
import os
import signal
import time

import forkserver
import mlflow
import psutil
import pytest

from conftest import ROOT, run_module, store

PAUSE = ROOT / "tests/faults/pause.py"

pytestmark = pytest.mark.slow  # long: `make test` starts these files first

ARGS = (
    "model=tiny",
    "schedule.iterations=2",
    "schedule.queries_per_iteration=12",
    "schedule.batch_size=1",
    "schedule.grad_accum=1",
    "generation.max_new_tokens=12",
    "principle.identify_max_new_tokens=8",
    "schedule.optimizer.lr=1e-3",
)
STEPS_PER_ITERATION = 12


# an evaluation after every iteration: signal accuracy under the policy as its own judge
EVALUATED = ("eval.every_iteration=true", "eval.tasks=[signal]", "eval.judge.max_new_tokens=8")


def command(tmp, *extra):
    return (
        f"hydra.run.dir={tmp}/run",
        f"tracking.uri={store(tmp)}",
        f"tracking.artifact_location={tmp}/art",
        *ARGS,
        *extra,
    )


def run(tmp, *extra):
    proc = run_module("sso_exp", *command(tmp, *extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def stages(tmp):
    try:
        return json.loads((tmp / "run/state.json").read_text())["stages"]
    except (OSError, ValueError):  # not written yet
        return {}


def the_run(tmp):
    client = mlflow.MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])
    runs = [r for r in runs if r.data.tags.get("sso.role") != "sweep"]  # a sweep's parent
    assert len(runs) == 1, "a resumed run continues its MLflow run"
    return client, runs[0]


def logged_steps(tmp, key="loss"):
    try:
        client, r = the_run(tmp)
    except Exception:  # the store is being created
        return 0
    return len(client.get_metric_history(r.info.run_id, key))


def kill_when(tmp, ready, signum=signal.SIGKILL, module="sso_exp", args=None):
    """Start the run (`module` with `args`, by default the plain command), send it `signum`
    as soon as `ready()` holds; its exit code and output."""
    start = time.monotonic()
    proc = forkserver.Job(module, args or command(tmp), ROOT, log=tmp / "out.log")
    while not ready():
        assert proc.poll() is None, (tmp / "out.log").read_text()[-3000:]
        assert time.monotonic() - start < 300
        time.sleep(0.02)
    os.kill(proc.pid, signum)
    done = proc.wait(timeout=120)
    return done.returncode, done.stdout


def history(tmp):
    """Every metric's (step, value) list, but the wall times, which differ run to run."""
    client, r = the_run(tmp)
    return {
        k: sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id, k))
        for k in r.data.metrics
        if not k.startswith(("time/", "system/"))  # differ run to run
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    run(tmp)
    return tmp


@pytest.fixture(scope="module")
def evaluated_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluated")
    run(tmp, *EVALUATED)
    return tmp


def check_like_reference(tmp, reference):
    """The same metrics, each logged once a step, and the same pairs, byte for byte, as
    the uninterrupted run."""
    got, want = history(tmp), history(reference)
    for key, values in got.items():
        steps = [s for s, _ in values]
        assert len(steps) == len(set(steps)), f"{key} logged twice at a step"
    assert got.keys() == want.keys()
    assert got == want  # the same values at the same steps as an uninterrupted run
    for it in (1, 2):
        assert (tmp / f"run/iter_{it}/pairs.jsonl").read_text() == (
            reference / f"run/iter_{it}/pairs.jsonl"
        ).read_text()


def check_resumed_like_reference(tmp, reference, not_redone, *extra):
    before = {
        p: (tmp / "run" / p).stat().st_mtime_ns
        for p in [*not_redone, "config.yaml", "provenance.json"]
    }  # the run's own
    run_id = the_run(tmp)[1].info.run_id
    proc = run(tmp, *extra)
    assert "resuming" in proc.stdout + proc.stderr
    _, r = the_run(tmp)
    assert r.info.run_id == run_id and r.info.status == "FINISHED"
    for p, mtime in before.items():
        assert (tmp / "run" / p).stat().st_mtime_ns == mtime, f"{p} was redone"
    check_like_reference(tmp, reference)


def training_iteration_2(tmp):
    return "iter_2/sample" in stages(tmp) and logged_steps(tmp) > STEPS_PER_ITERATION + 1


@pytest.mark.parametrize(
    "signum, ready",
    [
        (signal.SIGINT, training_iteration_2),
        (signal.SIGTERM, lambda tmp: "iter_1/train" in stages(tmp)),
    ],
    ids=["sigint-training", "sigterm-sampling"],
)
def test_a_signal_closes_the_run_killed_in_one_message_and_it_resumes(
    tmp_path, reference, signum, ready
):
    rc, err = kill_when(tmp_path, lambda: ready(tmp_path), signum)
    assert rc == 128 + signum and "Traceback" not in err, err[-3000:]
    assert "marked KILLED; the same command resumes it" in err
    assert the_run(tmp_path)[1].info.status == "KILLED"
    if ready is training_iteration_2:  # stopped mid-training: its steps are not logged twice
        assert "iter_2/train" not in stages(tmp_path)
        assert STEPS_PER_ITERATION < logged_steps(tmp_path) < 2 * STEPS_PER_ITERATION
    check_resumed_like_reference(tmp_path, reference, ["iter_1/pairs.jsonl"])


SAMPLED_1 = ["iter_1/sample", "iter_1/train"]
SAMPLED_2 = [*SAMPLED_1, "iter_2/sample"]
KEPT_1 = ["iter_1/pairs.jsonl", "iter_1/policy/model.safetensors"]
KEPT_2 = ["iter_1/policy/model.safetensors", "iter_2/pairs.jsonl", "iter_2/generated.jsonl"]


@pytest.mark.parametrize(
    "target, n, finished, kept",
    [
        # iteration 2's first identification prompt (iteration 1 asks 12)
        ("sso_exp.steering.rounds:identify_prompt", 13, SAMPLED_1, KEPT_1),
        # iteration 2's reference scoring, its second sequence name: iteration 1 scored
        # 7 names before training and 2 after it, a batch each
        ("sso_exp.models.logprobs:sequence_logps", 11, SAMPLED_2, KEPT_2),
        # iteration 2's policy written in full beside its folder, not yet moved in
        ("replace:iter_2/policy", 1, SAMPLED_2, KEPT_2),
    ],
    ids=["features", "scoring", "saving"],
)
def test_killed_at_a_paused_call_of_iteration_2(tmp_path, reference, target, n, finished, kept):
    kill_paused(tmp_path, target, n)
    assert list(stages(tmp_path)) == finished
    check_resumed_like_reference(tmp_path, reference, kept)


def test_killed_while_evaluating_iteration_2(tmp_path, evaluated_reference):
    kill_paused(tmp_path, "sso_exp.evaluation.tasks:signal_accuracy", 2, *EVALUATED)
    # iteration 0: the untrained policy's evaluation (signal has no pairs there yet)
    done = ["iter_0/eval", *SAMPLED_1, "iter_1/eval", "iter_2/sample", "iter_2/train"]
    assert list(stages(tmp_path)) == done
    kept = [*KEPT_2, "iter_2/policy/model.safetensors"]
    check_resumed_like_reference(tmp_path, evaluated_reference, kept, *EVALUATED)


def kill_paused(tmp, target, n, *extra):
    """Start the run held at the n-th call of `target` (tests/faults/pause.py), kill -9 it
    there."""
    marker = tmp / "paused"
    args = (str(marker), target, str(n), *command(tmp, *extra))
    kill_when(tmp, marker.exists, module=str(PAUSE), args=args)


def test_a_run_records_commit_versions_and_data_hashes(reference):
    record = json.loads((reference / "run/provenance.json").read_text())
    assert record["versions"]["torch"].startswith("2.") and record["versions"]["sso-exp"]
    assert len(record["data_sha256"]["data.prompts"]) == 64
    _, r = the_run(reference)
    assert r.data.tags["sso.sha256.data.prompts"] == record["data_sha256"]["data.prompts"]
    assert r.data.tags["mlflow.source.git.commit"] == record["git"]["git.commit"]
    assert r.data.tags["sso.version.transformers"] == record["versions"]["transformers"]


def submitit_task(job):
    """The pid of the process running a Submitit job's task, once it exists."""
    for p in psutil.Process(job.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "submitit.core._submit" in p.cmdline():
                return p.pid
    return None


def test_a_preempted_submitit_job_is_requeued_and_resumes_by_itself(tmp_path, reference):
    """Submitit's pre-emption signal (USR2, what Slurm sends before a time limit or a
    pre-emption) during iteration 2's training: the job closes its run KILLED, Submitit
    requeues it, and the requeued job goes on from iteration 1's end in the same MLflow
    run, ending as the uninterrupted run ends. The job is one rank on this machine."""
    args = (
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweep.subdir=run",
        *command(tmp_path, "tracking.system_metrics_interval_s=1")[1:],
    )
    sweep = forkserver.Job("sso_exp", args, ROOT, log=tmp_path / "out.log")
    start = time.monotonic()
    while not training_iteration_2(tmp_path):
        assert sweep.poll() is None, (tmp_path / "out.log").read_text()[-3000:]
        assert time.monotonic() - start < 300
        time.sleep(0.02)
    before = {p: (tmp_path / "run" / p).stat().st_mtime_ns for p in KEPT_1}
    os.kill(submitit_task(sweep), signal.SIGUSR2)
    done = sweep.wait(timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob(".submitit/*/*_log.*")))
    assert "the run is marked KILLED; Submitit requeues the job" in logs
    assert "Requeued job" in logs and "resuming" in logs
    assert "Traceback" not in logs
    client, r = the_run(tmp_path)
    assert r.info.status == "FINISHED"
    assert {p: (tmp_path / "run" / p).stat().st_mtime_ns for p in KEPT_1} == before
    check_like_reference(tmp_path, reference)
    cpu = [
        m.step
        for m in client.get_metric_history(r.info.run_id, "system/cpu_utilization_percentage")
    ]
    assert len(cpu) == len(set(cpu)) > 0  # the requeued job's samples after the first's
