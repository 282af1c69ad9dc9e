"""`python -m sso_exp [group=option ...] [key=value ...]`: the one entry point."""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from .config import compose, validate
from .errors import ConfigError, SSOError, Stopped, refused_write

log = logging.getLogger("sso_exp")
# mode -> (module, function); the pipeline (torch, Lightning, MLflow: seconds) is imported
# once the command line has composed, so bad input is answered at once
MODES = {
    "online": ("online", "run_online"),
    "offline": ("offline", "run_offline"),
    "rm": ("reward", "run_rm"),
    "rm_score": ("reward", "run_rm_score"),
    "eval": ("evaluate", "run_eval"),
}


def in_multirun() -> bool:
    from .tracking.sweep import in_multirun as multirun

    return multirun()


def run(cfg: DictConfig) -> Optional[float]:
    """Validate, check the inputs, run the mode; returns `optimized_metric` of the last
    summary row (what a hyperparameter sweeper optimises), or None when none is asked for."""
    try:
        config = validate(cfg)
    except OmegaConfBaseException as err:  # wrong type, unknown or missing key
        raise ConfigError(str(err)) from None
    from .distributed import barrier, outlived
    from .pipeline.inputs import check_inputs
    from .pipeline.launch import start_ranks
    from .pipeline.tracked_run import close_left_run
    from .runtime.host import limit_onednn_cache
    from .runtime.memory import imports_frozen
    from .runtime.watchdog import claim_or_wait, stop_watching

    limit_onednn_cache(config.trainer)

    config = start_ranks(check_inputs(config), in_multirun())
    module, function = MODES[config.mode.name]
    work = getattr(importlib.import_module(f".pipeline.{module}", __package__), function)
    try:
        with imports_frozen():
            rows = work(config)
        stop_watching()
        barrier()  # no rank exits before the others are done: that would look like a loss
    except (Stopped, RuntimeError) as err:  # a stop, or a rank that outlived a dead one
        lost = outlived(err)
        if lost is None and isinstance(err, RuntimeError):
            raise
        if lost is not None:
            claim_or_wait()
        close_left_run(config, "KILLED" if lost is None else "FAILED")
        raise (err if lost is None else lost) from None
    finally:
        stop_watching()
    return optimized_value(config.optimized_metric, rows)


def optimized_value(key: Optional[str], rows: List[Dict[str, float]]) -> Optional[float]:
    """`key` of the last summary row, when it is a finite number."""
    if key is None:
        return None
    if not rows or key not in rows[-1]:  # the run's work stands; only the search loses it
        known = sorted(rows[-1]) if rows else []
        log.warning(
            "config key 'optimized_metric': the run reported no '%s'; it reported %s", key, known
        )
        return None
    value = float(rows[-1][key])
    return value if math.isfinite(value) else None


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """In a sweep a failed job is logged (its MLflow run marked FAILED) and the sweep goes
    on; the sweep reports the failures at its end. A pre-empted Submitit job is requeued
    once its run is closed."""
    try:
        return run(cfg)
    except (SSOError, OSError) as err:
        known = err if isinstance(err, SSOError) else refused_write(err)
        if known is None and not in_multirun():
            raise
        log.error("%s", known or err)
        if not in_multirun():
            sys.exit(2)
    except Stopped as stop:  # the whole sweep stops too
        from .runtime.signals import preemption_signal

        how = (
            "resume=<its job folder> resumes it" if in_multirun() else "the same command resumes it"
        )
        if stop.signum == preemption_signal():
            how = "Submitit requeues the job (pre-empted, or at its time limit), which resumes it"
        log.error("%s: the run is marked KILLED; %s", stop, how)
        sys.exit(128 + stop.signum)
    except Exception:
        if not in_multirun():
            raise
        log.exception("job failed")
    finally:  # the run is closed, however its work ended
        from .runtime.signals import requeue_if_preempted

        requeue_if_preempted()
    return None


def check_command_line(argv: List[str]) -> None:
    """A run whose command line does not compose (unknown key or option, wrong type) or
    validate is bad input: one message, exit 2, as for all bad input (Hydra alone would
    exit 1). Sweeps check every job in their callback; flags (--cfg, -m) go to Hydra."""
    if any(arg.startswith("-") for arg in argv):
        return
    try:
        compose(*argv)
        writable_folder(Path(HydraConfig.get().run.dir), "hydra.run.dir")
    except (ConfigCompositionException, OmegaConfBaseException, SSOError) as err:
        cause = f"\n{err.__cause__}" if err.__cause__ else ""
        print(f"error: {err}{cause}", file=sys.stderr)
        sys.exit(2)


def writable_folder(folder: Path, key: str) -> None:
    """The run folder can be made where it is asked for: its nearest existing parent is a
    folder this process may write in (Hydra would fail there with a traceback)."""
    parent = folder.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        what = "not a folder" if not parent.is_dir() else "not writable"
        raise ConfigError(f"config key '{key}': {folder} cannot be made: {parent} is {what}")


if __name__ == "__main__":
    check_command_line(sys.argv[1:])
    main()
