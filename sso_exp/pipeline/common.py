"""What every workflow shares: the tracked run around it, and the train-on-pairs step
(score under the current policy, fit, save) that online iterations and offline runs make."""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mlflow.exceptions import MlflowException
from omegaconf import OmegaConf

from ..config import SSOConfig, SSOError
from ..dataset import ON_POLICY, encode_records
from ..filters import LOGPROB_RULES, STRING_RULES
from ..models import save_policy
from ..pair_builder import PairRound
from ..precision import autocast
from ..report import COLUMNS, Column, summary_table
from ..provenance import provenance, provenance_tags
from ..resume import Progress
from ..sweep import job_tags
from ..tracking import RunLogger, start_run
from ..objectives import Objective, policy_objective
from ..logprobs import score_named
from ..train import fit

log = logging.getLogger(__name__)


def open_run(cfg: SSOConfig, run_dir: Path, progress: Optional[Progress]) -> RunLogger:
    """The run's MLflow run: continued when resuming, else new, tagged with its sweep and
    provenance (also written to provenance.json)."""
    config_file = run_dir / "config.yaml"
    if progress is not None and progress.resumed:  # its config.yaml is the run's own
        try:
            logger = start_run(cfg, cfg.tracking, config_file, run_id=progress.run_id,
                               tags=job_tags())
        except MlflowException as err:
            raise SSOError(f"{run_dir}: its MLflow run {progress.run_id} cannot be continued "
                           f"in {cfg.tracking.uri} ({err}); start afresh with resume=never") from None
        logger.step_offset = progress.step_offset
        return logger
    config_file.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    record = provenance(cfg)
    (run_dir / "provenance.json").write_text(json.dumps(record, indent=1))
    logger = start_run(cfg, cfg.tracking, config_file,
                       tags={**job_tags(), **provenance_tags(record)})
    logger.log_file(run_dir / "provenance.json")
    if progress is not None:
        progress.run_id = logger.run_id
        progress.save()
    return logger


@contextmanager
def tracked_run(cfg: SSOConfig, columns: Sequence[Column] = COLUMNS,
                progress: Optional[Progress] = None
                ) -> Iterator[Tuple[Path, RunLogger, List[Dict[str, float]]]]:
    """The run folder (a resumed one when `progress` says so), its MLflow run and the
    summary rows; on the way out the summary is printed and logged, and the run closed
    FINISHED, FAILED or KILLED. The work inside runs under the trainer's autocast, so
    sampling and scoring match training's precision."""
    run_dir = progress.run_dir if progress is not None else Path(cfg.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = open_run(cfg, run_dir, progress)
    log.info("MLflow run %s in %s", logger.run_id, cfg.tracking.uri)
    rows: List[Dict[str, float]] = []
    status = "FAILED"
    try:
        with autocast(cfg.trainer):
            yield run_dir, logger, rows
        status = "FINISHED"
        if progress is not None:
            progress.finished = True
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if rows:
            table = summary_table(rows, columns)
            (run_dir / "summary.md").write_text(table + "\n")
            logger.log_file(run_dir / "summary.md")
            print("\n" + table)
        logger.close(status)
        if progress is not None:
            progress.save()
            progress.release()


def round_stats(rnd: PairRound) -> Dict[str, float]:
    generated, kept = len(rnd.generated), len(rnd.kept)
    stats = {"pairs/generated": generated, "pairs/kept": kept,
             "pairs/drop_rate": 1 - kept / max(generated, 1), **rnd.stats}
    stats.update({f"pairs/dropped/{rule}": rnd.drops.get(rule, 0)
                  for rule in STRING_RULES + LOGPROB_RULES})
    return stats


def train_on_pairs(model, tok, records: List[Dict], cfg: SSOConfig, logger: RunLogger,
                   iteration: int, run_dir: Path, objective: Optional[Objective] = None,
                   save_as: str = "policy") -> Dict[str, float]:
    """Score the pairs under the model as it is (reference, on-policyness), train it on them
    (the policy objective unless told otherwise), save it to iter_<k>/<save_as>; returns
    the iteration's figures."""
    objective = objective or policy_objective(cfg)
    encoded = encode_records(tok, records, objective.sequences(), cfg.schedule.max_length)
    scores = score_named(model, {n: encoded[n] for n in objective.scored()}, tok.pad_token_id,
                         cfg.schedule.generation_batch_size, cfg.trainer.logps_chunk)
    stats: Dict[str, float] = {}
    for name, label in zip(ON_POLICY, ("chosen", "rejected", "raw")):
        stats[f"{objective.prefix}onpolicy/{label}"] = float(scores[name].mean.mean())
        stats[f"{objective.prefix}length/{label}"] = float(scores[name].count.mean())
    logger.log_iteration(iteration, stats)
    train = {f"train/{k}": v for k, v in fit(model, tok, encoded, scores, objective, cfg,
                                             logger, iteration, run_dir).items()}
    logger.log_iteration(iteration, train)
    save_policy(model, tok, run_dir / f"iter_{iteration}" / save_as)
    return {**stats, **train}
