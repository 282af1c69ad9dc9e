"""Online SSO on two CPU ranks over gloo (model=tiny): the ranks are started at start-up,
each samples half of every stage's sequences, rank 0 alone writes, and the job writes the
same pairs as one process (which samples with another generation batch size) and trains
like one process with the global batch (the ranks started as Slurm starts a job's tasks);
FSDP trains like DDP. A 2-rank run killed with kill -9 while it samples iteration 2 goes
on, started again, from its last finished stage."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import forkserver
import mlflow
import pytest
import torch
from safetensors.torch import load_file

from conftest import FIXTURES, ROOT, compose_cfg, free_port, run_cli, run_module, store
from sso_exp.config import compose
from sso_exp.pipeline.resume import run_identity

pytestmark = pytest.mark.slow  # long: `make test` starts these files first

ARGS = (
    "model=tiny",
    "schedule.iterations=2",
    "schedule.queries_per_iteration=4",
    "schedule.grad_accum=1",
    "generation.max_new_tokens=12",
    "principle.identify_max_new_tokens=8",
    "schedule.optimizer.lr=1e-3",
)
ONE_RANK = ("schedule.batch_size=4", "generation.batch_size=1")
TWO_RANKS = ("trainer=ddp", "schedule.batch_size=2", "generation.batch_size=4")
FILES = [f"iter_{i}/{f}" for i in (1, 2) for f in ("generated.jsonl", "pairs.jsonl")]
SAMPLED_PER_ITERATION = 4 * 4  # per query: features, y+, y-, y0


def finished(tmp: Path, *args: str) -> Path:
    proc = run_cli(tmp, *ARGS, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run"


def stages(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())["stages"]
    except (OSError, ValueError):  # not written yet
        return {}


def mlflow_runs(tmp: Path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    return client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    return finished(tmp_path_factory.mktemp("one"), *ONE_RANK)


def slurm_task(proc_id: int, port: int) -> dict:
    """The variables srun gives task `proc_id` of a 2-task job on one node (Lightning's
    SLURMEnvironment reads them; MASTER_ADDR/PORT as a batch script would export them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_"))}
    env.update(
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="sso",
        SLURM_NTASKS="2",
        SLURM_NTASKS_PER_NODE="2",
        SLURM_JOB_NUM_NODES="1",
        SLURM_NODELIST="localhost",
        SLURM_PROCID=str(proc_id),
        SLURM_LOCALID=str(proc_id),
        SLURM_NODEID="0",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    return env


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The 2-rank job with its ranks started as Slurm starts a job's tasks (srun, as for a
    Submitit job), not by a launcher of ours: two processes with Slurm's variables, which
    Lightning's SLURMEnvironment makes the ranks. This shows the path from Slurm's
    variables to the ranks on one node over gloo; srun, several nodes, GPUs and NCCL need a
    cluster. (Lightning's own launcher starts the FSDP job below and the jobs of
    tests/faults/test_ranks.py.)"""
    tmp = tmp_path_factory.mktemp("two")
    port, args = (
        free_port(),
        [
            f"hydra.run.dir={tmp}/run",
            f"tracking.uri={store(tmp)}",
            f"tracking.artifact_location={tmp}/art",
            *ARGS,
            *TWO_RANKS,
        ],
    )
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "sso_exp", *args],
            cwd=ROOT,
            env=slurm_task(k, port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in (0, 1)
    ]
    outs = [t.communicate(timeout=600)[0] for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert "rank 1 of 2" in outs[1]
    return tmp, tmp / "run"


def test_two_ranks_write_the_pairs_of_one_byte_for_byte(one_rank, two_ranks):
    for name in FILES:
        assert (two_ranks[1] / name).read_bytes() == (one_rank / name).read_bytes(), name


def test_each_rank_samples_half_and_each_sequence_is_sampled_once(one_rank, two_ranks):
    for it in (1, 2):
        alone, shared = (
            stages(one_rank)[f"iter_{it}/sample"],
            stages(two_ranks[1])[f"iter_{it}/sample"],
        )
        assert alone["sampled/rank0"] == SAMPLED_PER_ITERATION
        assert shared["sampled/rank0"] == shared["sampled/rank1"] == SAMPLED_PER_ITERATION / 2


def test_two_ranks_of_batch_b_train_like_one_of_batch_2b(one_rank, two_ranks):
    for it in (1, 2):
        alone, shared = (
            stages(one_rank)[f"iter_{it}/train"],
            stages(two_ranks[1])[f"iter_{it}/train"],
        )
        assert shared["train/loss"] == pytest.approx(alone["train/loss"], abs=1e-4)
    start = load_file(one_rank / "iter_1/policy/model.safetensors")
    want = load_file(one_rank / "iter_2/policy/model.safetensors")
    got = load_file(two_ranks[1] / "iter_2/policy/model.safetensors")
    assert any(not torch.equal(start[k], want[k]) for k in want)  # it trained
    for key in want:
        # float32 sums in another order (another batch shape, DDP's all-reduce) differ in
        # the last bits, and Adam's first steps (~lr x the gradient's sign) turn that into a
        # different step for an entry whose gradient is near zero: so each tensor's update
        # is compared as a whole (1.2e-3 of it apart at worst on an AMX CPU)
        step = (want[key] - start[key]).norm()
        assert (got[key] - want[key]).norm() <= 1e-2 * step, key


def test_fsdp_trains_like_ddp_and_samples_from_the_gathered_weights(two_ranks, tmp_path):
    """FSDP2 shards a copy for training and gathers it back whole for sampling: iteration
    2's samples (each rank's own share, from its gathered weights) equal DDP's."""
    fsdp = finished(tmp_path, "trainer=fsdp", *TWO_RANKS[1:])
    ddp = two_ranks[1]
    for name in FILES:
        assert (fsdp / name).read_bytes() == (ddp / name).read_bytes(), name
    for it in (1, 2):
        got, want = stages(fsdp)[f"iter_{it}/train"], stages(ddp)[f"iter_{it}/train"]
        assert got["train/loss"] == pytest.approx(want["train/loss"], abs=1e-4)
    start = load_file(ddp / "iter_1/policy/model.safetensors")
    want = load_file(ddp / "iter_2/policy/model.safetensors")
    got = load_file(fsdp / "iter_2/policy/model.safetensors")
    for key in want:  # reduce-scatter sums in another order than all-reduce: 7.4e-6 seen
        assert (got[key] - want[key]).norm() <= 1e-3 * (want[key] - start[key]).norm(), key


def test_rank_0_alone_tracks_and_writes(two_ranks):
    tmp, run_dir = two_ranks
    (run,) = mlflow_runs(tmp)
    assert run.info.status == "FINISHED" and run.data.metrics["sampled/rank1"] == 8
    assert not list(run_dir.glob("**/*.tmp"))


def test_a_run_may_go_on_with_another_number_of_ranks(tmp_path):
    one = run_identity(compose(*ARGS, *ONE_RANK[:1]))
    assert run_identity(compose(*ARGS, "trainer=ddp", "schedule.batch_size=4")) == one


def two_ranks_sampling_iteration_2(tmp_path):
    """A 2-rank job (Lightning's launcher), returned once iteration 1 has trained."""
    run_dir = tmp_path / "run"
    args = [
        f"hydra.run.dir={run_dir}",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
        *ARGS,
        *TWO_RANKS,
    ]
    proc = forkserver.Job("sso_exp", args, ROOT)
    start = time.monotonic()
    while "iter_1/train" not in stages(run_dir):
        assert proc.poll() is None, "the run ended before the kill"
        assert time.monotonic() - start < 300
        time.sleep(0.02)
    return proc, run_dir


def test_two_ranks_killed_while_sampling_iteration_2_resume(tmp_path, one_rank):
    proc, run_dir = two_ranks_sampling_iteration_2(tmp_path)
    (rank1,) = [int(p) for p in os.popen(f"pgrep -P {proc.pid}").read().split()]
    os.kill(proc.pid, signal.SIGKILL)  # rank 0; rank 1 closes its run (tests/faults)
    proc.wait(timeout=120)
    start = time.monotonic()
    while os.path.exists(f"/proc/{rank1}") and time.monotonic() - start < 60:
        time.sleep(0.05)
    assert mlflow_runs(tmp_path)[0].info.status == "FAILED"
    assert not (run_dir / "iter_2/pairs.jsonl").exists()
    kept = (run_dir / "iter_1/pairs.jsonl").stat().st_mtime_ns
    resumed = run_cli(tmp_path, *ARGS, *TWO_RANKS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout + resumed.stderr
    assert (run_dir / "iter_1/pairs.jsonl").stat().st_mtime_ns == kept  # not redone
    for name in FILES:
        assert (run_dir / name).read_bytes() == (one_rank / name).read_bytes(), name
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FINISHED"


def test_evaluation_on_two_ranks_answers_and_judges_like_one(tmp_path):
    """mode=eval with the policy as judge: each rank answers and judges its share."""
    common = (
        "mode=eval",
        "model=tiny",
        f"data.pairs={FIXTURES / 'sso_records.json'}",
        f"data.dir={FIXTURES / 'data'}",
        "eval.alpaca.limit=3",
        "eval.mt_bench.limit=2",
        "eval.gsm8k.limit=3",
        "eval.alpaca.max_new_tokens=6",
        "eval.mt_bench.max_new_tokens=6",
        "eval.gsm8k.gen_kwargs.max_gen_toks=6",
        "eval.judge.max_new_tokens=6",
    )
    runs = {}
    for name, extra in {"one": (), "two": ("trainer=ddp",)}.items():
        proc = run_cli(tmp_path / name, *common, *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = tmp_path / name / "run"
    tables = sorted(p.name for p in runs["one"].glob("eval_*.jsonl"))
    assert len(tables) == 4
    for table in tables:
        assert (runs["two"] / table).read_bytes() == (runs["one"] / table).read_bytes(), table


def test_torchrun_starts_the_same_job(tmp_path, one_rank):
    """Ranks started by torchrun instead of Lightning: the same folder, pairs and run."""
    proc = run_module(
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sso_exp",
        f"hydra.run.dir={tmp_path}/run",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
        *ARGS,
        *TWO_RANKS,
        "schedule.iterations=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = "iter_1/pairs.jsonl"
    assert (tmp_path / "run" / name).read_bytes() == (one_rank / name).read_bytes()
    assert stages(tmp_path / "run")["iter_1/sample"]["sampled/rank1"] == SAMPLED_PER_ITERATION / 2
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FINISHED"


def test_verifiable_constraints_are_drawn_alike_on_one_and_two_ranks(tmp_path):
    """A query's constraints and arguments come from its stream alone: the records two ranks
    write (each sampling half) carry the constraints one process draws for the same seed,
    iteration and query index."""
    import random

    from sso_exp.distributed import stream_seed
    from sso_exp.steering.verifiable import draw_constraints

    verifiable = ("principle=verifiable", "schedule.iterations=1")
    two = finished(tmp_path, *TWO_RANKS, *verifiable)
    cfg = compose_cfg(tmp_path / "cfg", *ARGS, *verifiable)
    records = [json.loads(line) for line in (two / "iter_1/generated.jsonl").open()]
    seed = cfg.schedule.seed
    assert [r["constraints"] for r in records] == [
        draw_constraints(cfg.principle, random.Random(stream_seed(seed, 1, "", i, "choices")))
        for i in range(len(records))
    ]
