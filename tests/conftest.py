"""Shared fixtures: composed configs, a tiny random Llama with the real SmolLM2 tokenizer,
and the data folder of public files ($SSO_EXP_DATA; the tests that need it are skipped,
saying why, where it is not set)."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import compile_cache  # noqa: F401  (before torch: a compile cache of the session's own)
import forkserver
import pytest
import torch
from hydra.core.hydra_config import HydraConfig

from sso_exp.config import compose
from sso_exp.models.loading import load_policy

# trainer.precision=auto and compile=auto mean 32-true uncompiled in the suite (and in the
# runs it starts): its numbers and times do not depend on the machine it lands on.
os.environ["SSO_EXP_AUTO"] = "off"


def _share_the_cores() -> None:
    """With several test workers each takes its share of the cores for torch (and the jobs
    it starts): n workers with all cores each would oversubscribe them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


_share_the_cores()
ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # small files made for the tests


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data folder of public files (docs/data.md), from $SSO_EXP_DATA."""
    folder = os.environ.get("SSO_EXP_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.skip("needs the public data files: set SSO_EXP_DATA to their folder (docs/data.md)")
    return Path(folder).resolve()


@functools.cache
def _empty_store() -> Path:
    """An MLflow sqlite store with its tables made, once per session (MLflow's migrations
    take seconds for every new store)."""
    import mlflow

    folder = Path(tempfile.mkdtemp(prefix="sso-exp-store-"))
    atexit.register(shutil.rmtree, folder, True)
    mlflow.MlflowClient(f"sqlite:///{folder}/mlflow.db").search_experiments()
    return folder / "mlflow.db"


def store(folder: Path) -> str:
    """The URI of `folder`/mlflow.db, an empty store copied there unless one exists."""
    db = Path(folder) / "mlflow.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_empty_store(), db)
    return f"sqlite:///{db}"


def tracked_runs(folder: Path) -> int:
    """How many MLflow runs `folder`/mlflow.db holds (0: no work was tracked)."""
    import mlflow

    client = mlflow.MlflowClient(store(folder))
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())


def compose_cfg(tmp_path: Path, *overrides: str):
    """The composed and validated config, with outputs and MLflow under tmp_path."""
    return compose(
        *overrides,
        f"output_dir={tmp_path}/run",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
    )


def run_module(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` as a user runs it (tests/forkserver.py): its own process,
    from the repository root, no stdin, Hydra's short error messages, output captured."""
    return forkserver.Job(module, args, ROOT).wait(timeout)


def run_cli(tmp_path: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m sso_exp` in a subprocess, its outputs and MLflow store under tmp_path."""
    flags = [a for a in overrides if a.startswith("-")]  # argparse wants them first
    args = [
        *flags,
        f"hydra.run.dir={tmp_path}/run",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
        *[a for a in overrides if not a.startswith("-")],
    ]
    return run_module("sso_exp", *args, timeout=timeout)


def pytest_collection_modifyitems(items):
    """The slow tests first, so that with several workers (`make test`) the longest files
    start early instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(tmp_path: Path, port: int = 0):
    """A real `mlflow server` on loopback (sqlite store and artifacts under tmp_path, kept
    across restarts on the same port); yields its URL, stops it on the way out."""
    port = port or free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
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
        # no job runner: five worker processes the tests never use, seconds each to start
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no mlflow server"
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def _tiny_once(tmp_path_factory):
    cfg = compose_cfg(tmp_path_factory.mktemp("tiny"), "model=tiny")
    model, tok = load_policy(cfg.model, seed=0)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    return model, tok, weights, tok.padding_side, model.config._attn_implementation


@pytest.fixture
def tiny(_tiny_once):
    """(model, tokenizer) of model=tiny, loaded once; each test gets it as loaded (weights,
    mode, name, attention kernel) whatever the test before did to it."""
    model, tok, weights, padding_side, kernel = _tiny_once
    model.set_attn_implementation(kernel)
    model.load_state_dict(weights)
    model.eval()
    model.name_or_path = ""
    tok.padding_side = padding_side
    return model, tok


TINY_ARGS = (
    "model=tiny",
    "schedule.iterations=2",
    "schedule.queries_per_iteration=4",
    "generation.max_new_tokens=12",
    "schedule.batch_size=2",
    "schedule.grad_accum=1",
    "principle.identify_max_new_tokens=8",
    "schedule.optimizer.lr=1e-3",
)


def close(a, b, ulps: int = 256) -> bool:
    """a equals b up to float rounding: `ulps` units of b's dtype at b's magnitude (sums
    taken in another order or another kernel, e.g. AMX vs AVX-512, differ by that much)."""
    import torch

    eps = torch.finfo(b.dtype).eps
    return torch.allclose(a, b, rtol=0, atol=ulps * eps * max(1.0, b.abs().max().item()))


@pytest.fixture(autouse=True)
def _isolated_process_state():
    """Each test leaves the process as it found it: the global random streams (torch, random,
    numpy), the environment (Lightning's seed variables, vLLM's switches) and Hydra's
    global config (compose_cfg sets it)."""
    import random

    import numpy as np
    import torch

    py, npy, env = random.getstate(), np.random.get_state(), dict(os.environ)
    with torch.random.fork_rng():
        yield
    random.setstate(py)
    np.random.set_state(npy)
    os.environ.clear()
    os.environ.update(env)
    HydraConfig.instance().cfg = None
