"""The tracked run around every workflow: the run folder, its MLflow run (new, or continued
when resuming), provenance, and the summary table at the end."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from ..config import SSOConfig
from ..distributed import dead_ranks, is_main
from ..errors import SSOError, Stopped
from ..models.device import autocast
from ..runtime.signals import raise_if_stopped, stop_on_signals
from ..tracking.mlflow_run import IdleLogger, RunLogger, start_run
from ..tracking.provenance import data_files, provenance, provenance_tags
from ..tracking.store import open_client
from ..tracking.sweep import job_tags
from ..tracking.system_metrics import system_metrics
from ..tracking.tables import COLUMNS, Column, summary_table
from .resume import Progress, read_state

log = logging.getLogger(__name__)


def open_run(cfg: SSOConfig, run_dir: Path, progress: Optional[Progress]) -> RunLogger:
    """The run's MLflow run: continued when resuming, else new, tagged with its sweep and
    provenance (also written to provenance.json)."""
    config_file = run_dir / "config.yaml"
    if progress is not None and progress.resumed:  # its config.yaml is the run's own
        try:
            logger = start_run(
                cfg, cfg.tracking, config_file, run_id=progress.run_id, tags=job_tags()
            )
        except MlflowException as err:
            raise SSOError(
                f"{run_dir}: its MLflow run {progress.run_id} cannot be continued "
                f"in {cfg.tracking.uri} ({err}); start afresh with resume=never"
            ) from None
        logger.step_offset = progress.step_offset
        return logger
    config_file.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    record = provenance(cfg)
    (run_dir / "provenance.json").write_text(json.dumps(record, indent=1))
    logger = start_run(
        cfg, cfg.tracking, config_file, tags={**job_tags(), **provenance_tags(record)}
    )
    try:
        logger.log_file(run_dir / "provenance.json")
        logger.log_data_files(data_files(cfg), record["data_sha256"])
        if progress is not None:
            progress.run_id = logger.run_id
            progress.save()
    except BaseException as err:  # the run exists: it must not stay RUNNING
        logger.close("KILLED" if isinstance(err, (KeyboardInterrupt, Stopped)) else "FAILED")
        raise
    return logger


@contextmanager
def tracked_run(
    cfg: SSOConfig, columns: Sequence[Column] = COLUMNS, progress: Optional[Progress] = None
) -> Iterator[Tuple[Path, RunLogger, List[Dict[str, float]]]]:
    """The run folder (a resumed one when `progress` says so), its MLflow run and the
    summary rows; on the way out the summary is printed and logged, and the run closed
    FINISHED, FAILED or KILLED (SIGINT, SIGTERM). The work inside runs under the trainer's
    autocast, so sampling and scoring match training's precision. Rank 0 alone writes and
    tracks."""
    run_dir = progress.run_dir if progress is not None else Path(cfg.output_dir)
    resumed = progress is not None and progress.resumed  # (a new run gets its id below)
    if is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        logger = open_run(cfg, run_dir, progress)
        log.info("MLflow run %s in %s", logger.run_id, cfg.tracking.uri)
    else:
        logger = IdleLogger()
    rows: List[Dict[str, float]] = []
    status = "FAILED"
    try:
        with (
            stop_on_signals(),
            system_metrics(cfg.tracking, logger.run_id, resumed),
            autocast(cfg.trainer),
        ):
            yield run_dir, logger, rows
            raise_if_stopped()
        status = "FINISHED"
        if progress is not None:
            progress.finished = True
    except (KeyboardInterrupt, Stopped):  # a launcher stops the ranks outliving a dead one
        status = "FAILED" if dead_ranks() else "KILLED"
        raise
    finally:
        if rows and is_main():
            table = summary_table(rows, columns)
            (run_dir / "summary.md").write_text(table + "\n")
            logger.log_file(run_dir / "summary.md")
            logger.describe(table)
            print("\n" + table)
        logger.close(status)
        if progress is not None:
            progress.save()
            progress.release()


def close_left_run(cfg: SSOConfig, status: str) -> None:
    """The run's MLflow run closed with `status` if it is still RUNNING: by a rank that
    outlives the rank that tracked it (rank 0), or by rank 0 when its watchdog ends it."""
    if cfg.output_dir is None:
        return
    try:
        run_id = (read_state(Path(cfg.output_dir)) or {}).get("run_id")
        if run_id:
            client = open_client(cfg.tracking.uri)
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, status)
    except Exception as err:  # the job is failing already; its message is what matters
        log.warning("could not close the MLflow run rank 0 left: %s", err)
