"""Sweep jobs through Hydra's Submitit launcher (docs/cluster.md). The job's shape for Slurm
comes from the trainer's: `conf/hydra/launcher/submitit_*.yaml` map it (`tasks_per_node`
= `trainer.devices`, `nodes` = `trainer.num_nodes`, GPUs per node through `slurm_gpus`);
the checks here refuse, before any job is submitted, what would fail or run wrong on the
cluster: a shape that disagrees with the trainer's, a partition the cluster needs, a store
the nodes cannot share."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, List, Optional

from omegaconf import DictConfig

from ..errors import ConfigError
from .schema import SSOConfig, TrackingConfig

LAUNCHERS = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."
SUBMITIT = {LAUNCHERS + "SlurmLauncher": "slurm", LAUNCHERS + "LocalLauncher": "local"}
LOCAL_STORES = ("sqlite:", "file:", "/", ".")


def slurm_gpus(accelerator: str, devices: Any) -> Optional[int]:
    """GPUs per node to ask Slurm for: the trainer's devices when it trains on GPUs."""
    return devices if accelerator in ("gpu", "cuda") else None


def check_launcher(launcher: DictConfig, cfg: SSOConfig) -> None:
    """One job's launcher against its config (a no-op unless it is Submitit's)."""
    kind = SUBMITIT.get(str(launcher.get("_target_", "")))
    if kind is None:
        return
    trainer = cfg.trainer
    if not isinstance(trainer.devices, int) or isinstance(trainer.devices, bool):
        raise ConfigError(
            f"config key 'trainer.devices': {trainer.devices!r}; with a Submitit launcher each "
            "task is one rank, so the devices per node must be a count"
        )
    if kind == "local" and trainer.num_nodes != 1:
        raise ConfigError(
            f"config key 'trainer.num_nodes': {trainer.num_nodes}; hydra/launcher=submitit_local "
            "runs every job on this machine (one node)"
        )
    for key, source in (("tasks_per_node", "devices"), ("nodes", "num_nodes")):
        want = getattr(trainer, source)
        if launcher[key] != want:
            raise ConfigError(
                f"config key 'hydra.launcher.{key}': {launcher[key]}, but trainer.{source} is "
                f"{want}: each task is one rank. Leave it to the preset, which sets it from "
                "the trainer"
            )
    if kind == "slurm":
        shared_store(cfg.tracking)
        check_partition(launcher.get("partition"))


def shared_store(tracking: TrackingConfig) -> None:
    """Jobs on other nodes must reach the store: a sqlite file or a folder is one machine's
    (sqlite's locks do not hold on network file systems)."""
    if tracking.uri.startswith(LOCAL_STORES):
        raise ConfigError(
            f"config key 'tracking.uri': {tracking.uri} is a file on this machine, which jobs "
            "on other nodes cannot share; run an MLflow server and pass tracking=server "
            "tracking.uri=http://<host>:<port> (docs/cluster.md)"
        )


def check_partition(partition: Optional[str]) -> None:
    """The partition is one the cluster has, or the cluster has a default (sinfo says)."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise ConfigError(
            "hydra/launcher=submitit_slurm: sbatch and sinfo are not on this machine's PATH; "
            "start the sweep on a node of the cluster (its login node)"
        )
    names = partitions()
    default = [p[:-1] for p in names if p.endswith("*")]
    known = [p.rstrip("*") for p in names]
    if partition is None and not default:
        raise ConfigError(
            "config key 'hydra.launcher.partition': this cluster has no default partition; "
            f"name one of {', '.join(known)} (conf/local/slurm.yaml or on the command line)"
        )
    if partition is not None and partition not in known:
        raise ConfigError(
            f"config key 'hydra.launcher.partition': {partition!r} is not a partition of this "
            f"cluster ({', '.join(known)})"
        )


def partitions() -> List[str]:
    """The cluster's partitions as sinfo names them (the default one ends in '*')."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise ConfigError(f"hydra/launcher=submitit_slurm: sinfo failed ({err})") from None
    return sorted({line.strip() for line in out.splitlines() if line.strip()})
