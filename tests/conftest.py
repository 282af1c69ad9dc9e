"""Shared fixtures: composed configs, and a tiny random Llama with the real SmolLM2 tokenizer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from sso_exp.config import validate
from sso_exp.models import load_policy

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"


def compose_cfg(tmp_path: Path, *overrides: str):
    """The composed and validated config, with outputs under tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"output_dir={tmp_path}/run",
                                           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                                           f"tracking.artifact_location={tmp_path}/art"],
                      return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return validate(cfg)


def run_cli(tmp_path: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m sso_exp` in a subprocess, its outputs and MLflow store under tmp_path."""
    flags = [a for a in overrides if a.startswith("-")]  # argparse wants them first
    cmd = [sys.executable, "-m", "sso_exp", *flags, f"hydra.run.dir={tmp_path}/run",
           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
           f"tracking.artifact_location={tmp_path}/art",
           *[a for a in overrides if not a.startswith("-")]]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(model, tokenizer) of model=tiny."""
    cfg = compose_cfg(tmp_path_factory.mktemp("tiny"), "model=tiny")
    return load_policy(cfg.model, seed=0)


TINY_ARGS = ("model=tiny", "schedule.iterations=2", "schedule.queries_per_iteration=4",
             "schedule.max_new_tokens=12", "schedule.batch_size=2", "schedule.grad_accum=1",
             "principle.identify_max_new_tokens=8", "schedule.lr=1e-3")
