"""Starting the ranks (docs/distributed.md): one launch model for every multi-process run.
With a data-parallel strategy on several devices (or nodes) the ranks are started before any
work, by Lightning Fabric's launcher (which re-runs this command for each local rank) or by
torchrun / a cluster scheduler that already started them; each joins one torch.distributed
process group that the Trainers of every iteration then reuse. Every stage therefore knows
its rank and world size from the first line, and all ranks work in rank 0's run folder."""

from __future__ import annotations

import functools
import logging
import os

from ..config import SSOConfig, TrainerConfig
from ..distributed import RankLost, broadcast, note_processes, world
from ..errors import ConfigError
from ..runtime.watchdog import watch_ranks
from ..training.fit import check_trainer
from .tracked_run import close_left_run

log = logging.getLogger(__name__)
SPAWNING = ("ddp_spawn", "ddp_notebook", "ddp_fork")  # ranks live inside `fit` only


def fabric(trainer_cfg: TrainerConfig):
    """Lightning Fabric sized like the Trainers, to start the ranks and their process group;
    what the machine cannot run is a ConfigError naming the trainer key."""
    from lightning_fabric import Fabric
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return Fabric(
            accelerator=trainer_cfg.accelerator,
            devices=trainer_cfg.devices,
            num_nodes=trainer_cfg.num_nodes,
            strategy="ddp",
        )
    except (MisconfigurationException, RuntimeError, ValueError) as err:
        key = "trainer.accelerator" if "accelerator" in str(err).lower() else "trainer.devices"
        raise ConfigError(f"config key '{key}': {err}") from None


def check_devices(trainer_cfg: TrainerConfig, processes: int) -> None:
    """CPU ranks beyond the machine's cores would only slow each other down."""
    cores = os.cpu_count() or 1
    if trainer_cfg.accelerator == "cpu" and processes > cores * trainer_cfg.num_nodes:
        raise ConfigError(
            f"config key 'trainer.devices': {trainer_cfg.devices} CPU processes per node, "
            f"but this machine has {cores} cores"
        )


def end_for_lost_rank(cfg: SSOConfig, lost: RankLost) -> None:
    """What a rank's watchdog does when another rank of the job has ended."""
    close_left_run(cfg, "FAILED")
    log.error("%s", lost)


def submitit_tasks() -> None:
    """The tasks of a Submitit job on this machine (hydra/launcher=submitit_local) become
    the job's ranks through the variables torch.distributed reads, as Submitit exports
    them. Under Slurm, Lightning's SLURMEnvironment reads Slurm's own variables instead."""
    if int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1 and "LOCAL_RANK" not in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def started_elsewhere() -> bool:
    """Whether this process is one rank of ranks something else started (torchrun, Slurm's
    srun, Submitit), rather than the first, which Lightning's launcher would start the rest
    from."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return any(k in os.environ for k in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK")) or (
        SLURMEnvironment.detected()
    )


def start_ranks(cfg: SSOConfig, sweeping: bool) -> SSOConfig:
    """Start (or join) the job's ranks when the trainer asks for several processes; all
    ranks then share rank 0's run folder. A no-op for one process and for the spawning
    strategies, whose ranks exist only while a Trainer fits."""
    trainer_cfg = cfg.trainer
    check_trainer(trainer_cfg)
    if trainer_cfg.strategy_name in SPAWNING:
        return cfg
    submitit_tasks()
    launcher = fabric(trainer_cfg)
    if launcher.world_size == 1:
        return cfg
    check_devices(trainer_cfg, launcher.world_size // trainer_cfg.num_nodes)
    if sweeping and not started_elsewhere():
        raise ConfigError(
            "config key 'trainer.devices': a sweep (-m) runs its jobs one after another in "
            "this process; give each job its ranks with hydra/launcher=submitit_local (or "
            "submitit_slurm), start the sweep under torchrun, or run the jobs one by one"
        )
    try:
        launcher.launch()
    except ValueError as err:  # torchrun started another number of processes
        raise ConfigError(f"config key 'trainer.devices': {err}") from None
    cfg.output_dir = broadcast(cfg.output_dir)
    note_processes()
    watch_ranks(functools.partial(end_for_lost_rank, cfg))
    log.info("rank %d of %d, working in %s", launcher.global_rank, world(), cfg.output_dir)
    return cfg
