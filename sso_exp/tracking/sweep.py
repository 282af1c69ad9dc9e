"""Sweeps as studies: `python -m sso_exp -m ...` checks every job's config before the first
one starts, groups the jobs' MLflow runs under one parent run (tags: the sweep id and each
job's overrides), and at the end closes the parent with the sweep's outcome and logs the
comparison report to it. Works with any launcher (jobs in this process or in workers): the
parent's id reaches the jobs through `sweep.json` in the sweep folder."""

from __future__ import annotations

import atexit
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import SSOConfig, TrackingConfig, validate
from ..config.cluster import check_launcher
from ..errors import ConfigError
from .mlflow_run import search_all_runs
from .store import experiment_id, open_client

log = logging.getLogger(__name__)
SWEEP_FILE = "sweep.json"


def expand_jobs(overrides: List[str]) -> List[List[str]]:
    """Each job's overrides, as the basic sweeper will launch them. Sweeps it cannot list
    (Optuna's `interval(...)`) are left to their sweeper: the rest is still checked."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = [
        o
        for o in OverridesParser.create().parse_overrides(overrides)
        if not (o.is_sweep_override() and not o.is_discrete_sweep())
    ]
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _store(cfg: SSOConfig) -> tuple:
    return cfg.tracking.uri, cfg.tracking.experiment_name


def validate_jobs(config: DictConfig, jobs: List[List[str]]) -> SSOConfig:
    """Compose and validate every job's config (unknown options, keys, types, ranges) so a
    bad one fails the sweep before any job has run; returns the first job's config."""
    loader = GlobalHydra.instance().config_loader()
    first: Optional[SSOConfig] = None
    for num, overrides in enumerate(jobs):
        try:
            job = loader.load_sweep_config(config, list(overrides))
            HydraConfig.instance().set_config(job)
            OmegaConf.update(job, "output_dir", str(Path(config.hydra.sweep.dir) / str(num)))
            checked = validate(job)
            check_launcher(job.hydra.launcher, checked)
        except (OmegaConfBaseException, HydraException, ConfigError, ValueError) as err:
            raise ConfigError(f"sweep job {num} ({' '.join(overrides)}): {err}") from None
        finally:
            HydraConfig.instance().set_config(config)
        first = first or checked
        if _store(checked) != _store(first):  # one parent run, in one store and experiment
            raise ConfigError(
                f"sweep job {num}: config keys 'tracking.uri' and "
                "'tracking.experiment_name' must be the same for every job"
            )
    assert first is not None
    return first


class SweepTracking(Callback):
    """Hydra callback (conf/config.yaml, hydra.callbacks) around a multirun."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        overrides = list(config.hydra.overrides.task)
        try:
            first = validate_jobs(config, expand_jobs(overrides))
        except (ConfigError, HydraException) as err:  # Hydra would make it a warning
            log.error("%s", err)
            sys.exit(2)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_id = f"{sweep_dir.name}-{uuid.uuid4().hex[:6]}"
        tags = {
            "sso.role": "sweep",
            "sso.sweep_id": sweep_id,
            "sso.sweep_overrides": " ".join(overrides),
            "sso.sweep_dir": str(sweep_dir),
        }
        try:
            client = open_client(first.tracking.uri)
            exp_id = experiment_id(client, first.tracking)
            parent = client.create_run(exp_id, run_name=f"sweep-{sweep_id}", tags=tags)
        except Exception as err:  # whatever the store says: no job runs without its parent
            log.error(
                "sweep: its parent MLflow run could not be made in %s (%s); no job ran",
                first.tracking.uri,
                str(err).splitlines()[0][:300],
            )
            sys.exit(2)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        info = {
            "sweep_id": sweep_id,
            "parent_run_id": parent.info.run_id,
            "tracking": OmegaConf.to_container(OmegaConf.structured(first.tracking)),
        }
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=1))
        atexit.register(close_if_running, client, parent.info.run_id)
        log.info("sweep %s: parent MLflow run %s", sweep_id, parent.info.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        info = json.loads((sweep_dir / SWEEP_FILE).read_text())
        tracking = TrackingConfig(**info["tracking"])
        client = open_client(tracking.uri)
        failed = failed_jobs(client, tracking, info["sweep_id"], sweep_dir)
        try:
            self.report(client, tracking, info, sweep_dir)
        except Exception as err:  # e.g. every job failed before its run began
            log.warning("no comparison report: %s", err)
        finally:
            client.set_terminated(info["parent_run_id"], "FAILED" if failed else "FINISHED")
        if failed:  # Hydra turns a callback's exception into a warning: exit here instead
            log.error(
                "sweep %s: %d job(s) failed: %s (the other jobs ran; see their logs)",
                info["sweep_id"],
                len(failed),
                "; ".join(failed),
            )
            sys.exit(1)

    @staticmethod
    def report(
        client: MlflowClient, tracking: TrackingConfig, info: Dict[str, Any], sweep_dir: Path
    ) -> None:
        """The comparison report, printed and logged to the parent, and Optuna's best."""
        from .compare import report_sweep  # matplotlib is imported only when a sweep ends

        written = report_sweep(client, tracking, info["sweep_id"], sweep_dir / "compare")
        print("\n" + (sweep_dir / "compare" / "runs.md").read_text())
        log.info("comparison: %s", ", ".join(str(p) for p in written))
        best = sweep_dir / "optimization_results.yaml"  # written by the Optuna sweeper
        if best.is_file():
            client.log_artifact(info["parent_run_id"], str(best))


def close_if_running(client: MlflowClient, run_id: str) -> None:
    """At exit: a sweep that ended without reaching its end (interrupted, or its sweeper
    failed) leaves its parent FAILED rather than RUNNING forever."""
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "FAILED")


def job_overrides(job_dir: Path) -> str:
    saved = job_dir / ".hydra" / "overrides.yaml"
    return " ".join(OmegaConf.load(saved)) if saved.is_file() else ""


def failed_jobs(
    client: MlflowClient, tracking: TrackingConfig, sweep_id: str, sweep_dir: Path
) -> List[str]:
    """'job <n> (<overrides>)' for each job of the sweep without a finished run."""
    exp = client.get_experiment_by_name(tracking.experiment_name)
    runs = search_all_runs(client, exp.experiment_id, f"tags.`sso.sweep_id` = '{sweep_id}'")
    finished = {r.data.tags.get("sso.job") for r in runs if r.info.status == "FINISHED"}
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    return [f"job {p.name} ({job_overrides(p)})" for p in jobs if p.name not in finished]


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_tags() -> Dict[str, str]:
    """A sweep job's tags: its parent run, the sweep id, its overrides and number."""
    if not in_multirun():
        return {}
    hc = HydraConfig.get()
    info_file = Path(hc.sweep.dir) / SWEEP_FILE
    if not info_file.is_file():  # the callback is not configured
        return {}
    info = json.loads(info_file.read_text())
    return {
        "mlflow.parentRunId": info["parent_run_id"],
        "sso.sweep_id": info["sweep_id"],
        "sso.overrides": " ".join(hc.overrides.task),
        "sso.job": str(hc.job.num),
    }
