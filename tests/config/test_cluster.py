"""Sweeps through Hydra's Submitit launcher: the presets take the job's shape from the
trainer, and what would fail or run wrong on a cluster (a shape that disagrees with the
trainer's, a partition the cluster needs, a store other nodes cannot share) is refused
before any job is submitted. Slurm's commands are stand-ins written by the test."""

import os
import stat

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from omegaconf import OmegaConf

from conftest import CONF, compose_cfg, run_module, store
from sso_exp.config.cluster import check_launcher, check_partition
from sso_exp.errors import ConfigError

SERVER = "tracking.uri=http://127.0.0.1:5000"


def launcher_of(tmp_path, *overrides):
    cfg = compose_cfg(tmp_path, *overrides)
    cfg.tracking.uri = SERVER.split("=", 1)[1]
    return HydraConfig.get().launcher, cfg


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    """sbatch and sinfo on PATH; sinfo lists the partitions written to `slurm.partitions`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    listing = tmp_path / "partitions"
    for name, body in (("sbatch", "exit 1"), ("sinfo", f"cat {listing}")):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return listing


def test_the_slurm_preset_asks_for_a_task_per_rank_and_the_trainers_gpus(tmp_path):
    launcher, cfg = launcher_of(
        tmp_path,
        "hydra/launcher=submitit_slurm",
        "trainer=ddp",
        "trainer.accelerator=gpu",
        "trainer.devices=8",
        "trainer.num_nodes=2",
    )
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (8, 2, 8)
    cpu, _ = launcher_of(tmp_path, "hydra/launcher=submitit_slurm", "trainer=ddp")
    assert (cpu.tasks_per_node, cpu.gpus_per_node) == (2, None)  # CPU ranks ask no GPU


def test_a_shape_that_disagrees_with_the_trainer_names_the_launcher_key(tmp_path):
    launcher, cfg = launcher_of(
        tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=4"
    )
    with pytest.raises(ConfigError, match=r"'hydra.launcher.tasks_per_node': 4.*trainer.devices"):
        check_launcher(launcher, cfg)
    launcher, cfg = launcher_of(tmp_path, "hydra/launcher=submitit_local", "trainer.num_nodes=2")
    with pytest.raises(ConfigError, match=r"'trainer.num_nodes': 2.*one node"):
        check_launcher(launcher, cfg)
    launcher, cfg = launcher_of(tmp_path, "hydra/launcher=submitit_slurm", "hydra.launcher.nodes=2")
    with pytest.raises(ConfigError, match=r"'hydra.launcher.nodes': 2.*trainer.num_nodes"):
        check_launcher(launcher, cfg)


def test_devices_must_be_a_count_with_a_submitit_launcher(tmp_path):
    launcher, cfg = launcher_of(tmp_path, "hydra/launcher=submitit_local", "trainer.devices=auto")
    with pytest.raises(ConfigError, match="'trainer.devices'.*a count"):
        check_launcher(launcher, cfg)


def test_other_launchers_are_not_checked(tmp_path):
    launcher, cfg = launcher_of(tmp_path, "trainer.devices=auto")
    check_launcher(launcher, cfg)


def test_a_cluster_without_a_default_partition_needs_one_named(slurm):
    slurm.write_text("cpu\ngpu\n")
    with pytest.raises(ConfigError, match=r"'hydra.launcher.partition'.*cpu, gpu"):
        check_partition(None)
    with pytest.raises(ConfigError, match=r"'hydra.launcher.partition': 'gpus' is not"):
        check_partition("gpus")
    check_partition("gpu")
    slurm.write_text("cpu*\ngpu\n")
    check_partition(None)  # the cluster's default


def test_no_slurm_here_is_said_before_any_submission(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="sbatch and sinfo are not on this machine's PATH"):
        check_partition("gpu")


def test_the_example_holds_launcher_keys_only():
    example = OmegaConf.load(CONF / "local/slurm.example.yaml")
    OmegaConf.merge(OmegaConf.structured(SlurmQueueConf), example)  # raises on a wrong key


@pytest.mark.parametrize(
    "overrides, says",
    [
        (("hydra/launcher=submitit_slurm",), "config key 'tracking.uri'"),
        (
            ("hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2"),
            "config key 'hydra.launcher.tasks_per_node'",
        ),
    ],
    ids=["sqlite-on-slurm", "tasks-per-node"],
)
def test_a_sweep_that_cannot_run_on_its_launcher_stops_before_submitting(tmp_path, overrides, says):
    proc = run_module(
        "sso_exp",
        "-m",
        f"hydra.sweep.dir={tmp_path}/sweep",
        f"tracking.uri={store(tmp_path)}",
        "model=tiny",
        "loss.beta=0.1,0.2",
        *overrides,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and says in out, out[-2000:]
    assert "Traceback" not in out
    assert not (tmp_path / "sweep/.submitit").exists()  # nothing was submitted
