"""One of 2 gloo ranks killed (kill -9) while the job samples, under Lightning's launcher
and under torchrun: the rank that outlives it ends the job in one line naming the dead
rank and saying how to resume, no traceback, and the MLflow run is FAILED, not RUNNING.
(Killing rank 0 under Lightning's launcher, then resuming: tests/pipeline/test_online_ranks.py.)"""

import os
import signal
import time

import forkserver
import pytest
from pipeline.test_online_ranks import ARGS, TWO_RANKS, mlflow_runs, stages

from conftest import ROOT, store

pytestmark = pytest.mark.slow  # 2-rank jobs: `make test` starts these files first


def job_at_iteration_2(tmp_path, module, *launcher_args):
    """A 2-rank job returned once iteration 1 has trained, with its ranks' pids."""
    args = (
        *launcher_args,
        f"hydra.run.dir={tmp_path}/run",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
        *ARGS,
        *TWO_RANKS,
    )
    proc = forkserver.Job(module, args, ROOT, log=tmp_path / "out.log")
    start = time.monotonic()
    while "iter_1/train" not in stages(tmp_path / "run"):
        assert proc.poll() is None, (tmp_path / "out.log").read_text()[-3000:]
        assert time.monotonic() - start < 300
        time.sleep(0.02)
    return proc, ranks(proc.pid)


def ranks(pid):
    """{rank: pid} of the job whose first process is `pid` (itself rank 0 under
    Lightning's launcher; torchrun's agent otherwise)."""
    found = {}
    for child in map(int, os.popen(f"pgrep -P {pid}").read().split()):
        pairs = open(f"/proc/{child}/environ").read().split("\0")
        env = dict(kv.split("=", 1) for kv in pairs if "=" in kv)
        found[int(env.get("RANK", env.get("LOCAL_RANK", "0")))] = child
    return found if 0 in found else {0: pid, **found}


def ended(tmp_path, proc, survivor):
    """The job's output once `survivor` has exited too, and the seconds it took."""
    start = time.monotonic()
    proc.wait(timeout=120)
    while os.path.exists(f"/proc/{survivor}") and time.monotonic() - start < 120:
        time.sleep(0.05)
    return (tmp_path / "out.log").read_text(), time.monotonic() - start


def assert_one_message(said, survivor_rank, dead_rank):
    # no rank's traceback: torchrun's agent raises its own failure summary, once
    assert said.count("Traceback") == said.count("errors.ChildFailedError:"), said[-3000:]
    line = f"rank {survivor_rank}: rank {dead_rank} of this 2-rank job ended"
    assert said.count(line) == 1, said[-3000:]
    assert "the same command resumes it" in said


def test_torchrun_a_dead_rank_ends_the_other_in_one_message(tmp_path):
    """Rank 0 killed (rank 1's death under torchrun takes the same path, by hand: 0.05 s to
    rank 0's line, docs/reliability.md)."""
    dead = 0
    proc, pids = job_at_iteration_2(
        tmp_path, "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sso_exp"
    )
    os.kill(pids[dead], signal.SIGKILL)
    said, seconds = ended(tmp_path, proc, pids[1 - dead])
    assert_one_message(said, 1 - dead, dead)
    assert proc.returncode != 0
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED", said[-3000:]
    assert seconds < 60


def test_lightning_rank_1_dead_ends_rank_0_in_one_message(tmp_path):
    """Lightning's launcher SIGKILLs rank 0 at most 5 s after it sees a child die; rank 0's
    watchdog says it first (within 0.1 s, the run closed in milliseconds)."""
    proc, pids = job_at_iteration_2(tmp_path, "sso_exp")
    os.kill(pids[1], signal.SIGKILL)
    said, _ = ended(tmp_path, proc, pids[0])
    assert_one_message(said, 0, 1)
    assert proc.returncode == 2
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED"
