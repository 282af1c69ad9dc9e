"""Online SSO (docs/algorithm.md §6): each iteration the current policy writes its own
principle-steered pairs, is trained on them, and becomes the next iteration's policy and
reference. With objective=v2 a data generator (initialised from the policy) writes the
pairs, is trained on them with L+ + L-, then writes the pairs the policy is trained on.
Everything an iteration writes stays on disk and in MLflow whatever follows."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytorch_lightning as pl

from ..config import SSOConfig
from ..data.records import read_records
from ..models.device import device
from ..models.loading import checkpoint_problem, load_checkpoint, load_policy
from ..runtime.memory import release_memory
from ..runtime.signals import raise_if_stopped
from ..tracking.mlflow_run import RunLogger
from ..training.objectives import generator_objective
from .evaluate import evaluate, make_judge
from .resume import Progress, open_progress, stage_key
from .stages import (
    EmptyIteration,
    iteration_queries,
    round_stats,
    sample_round,
    train_on_pairs,
    usable_prompts,
)
from .tracked_run import tracked_run

log = logging.getLogger(__name__)


def sample_stage(
    writer,
    tok,
    cfg: SSOConfig,
    logger: RunLogger,
    iteration: int,
    queries: List[str],
    run_dir: Path,
    stem: str = "",
) -> Dict[str, float]:
    """The writer's pairs for this iteration, written and logged; returns the round's
    figures. An empty round stops the run or is reported, as `mode.on_empty` says."""
    it_dir = run_dir / f"iter_{iteration}"
    rnd = sample_round(writer, tok, cfg, queries, iteration, it_dir, logger, stem)
    prefix = stem.replace("_", "/")
    stats = round_stats(rnd)
    logger.log_iteration(iteration, {prefix + k: v for k, v in stats.items()})
    if not rnd.kept:
        msg = (
            f"iteration {iteration}: the filter dropped all {len(rnd.generated)} pairs "
            f"({dict(rnd.drops)}); the samples are in {it_dir / f'{stem}generated.jsonl'}"
        )
        if cfg.mode.on_empty == "stop":
            raise EmptyIteration(msg + "; stopping (mode.on_empty=continue goes on)")
        log.warning("%s; going on with the policy unchanged", msg)
    return stats


# Each stage's seed offset: its own random stream, the same whether resumed or not.
STAGE_SEEDS = {
    "sample": 0,
    "train": 1000,
    "eval": 2000,
    "generator_sample": 3000,
    "generator_train": 4000,
}


class Stages:
    """An iteration's stages (sample, train, evaluate), each run once: a stage that finished
    before a kill is skipped when the run is started again, and reports what it reported."""

    def __init__(self, progress: Progress, logger: RunLogger, iteration: int, seed: int):
        self.progress, self.logger, self.iteration = progress, logger, iteration
        self.seed = seed + iteration

    def run(self, name: str, work: Callable[[], Dict[str, float]]) -> Dict[str, float]:
        """Each stage is seeded by itself, so a resumed stage does what it would have done."""
        stage = stage_key(self.iteration, name)
        if not self.progress.done(stage):
            pl.seed_everything(self.seed + STAGE_SEEDS[name], workers=True, verbose=False)
            self.progress.finish(stage, work(), self.logger.step_offset)
            release_memory()  # what the stage held (a Trainer, its optimizer) and glibc's heap
            raise_if_stopped()
        return self.progress.stages[stage]


def kept_pairs(run_dir: Path, iteration: int, stem: str = "") -> List[Dict]:
    return read_records(run_dir / f"iter_{iteration}" / f"{stem}pairs.jsonl")


def run_iteration(
    model,
    tok,
    cfg: SSOConfig,
    logger: RunLogger,
    iteration: int,
    queries: List[str],
    run_dir: Path,
    progress: Progress,
    generator=None,
    judge=None,
) -> Dict[str, float]:
    """Sample, filter, write, train, save (and evaluate, given a judge): one iteration's
    row of the summary."""
    stages = Stages(progress, logger, iteration, cfg.schedule.seed)
    row: Dict[str, float] = {"iteration": iteration}
    if generator is not None:  # v2: train the generator on its own pairs first
        stats = stages.run(
            "generator_sample",
            lambda: sample_stage(
                generator, tok, cfg, logger, iteration, queries, run_dir, "generator_"
            ),
        )
        if not stats["pairs/kept"]:
            return row
        row.update(
            stages.run(
                "generator_train",
                lambda: train_on_pairs(
                    generator,
                    tok,
                    kept_pairs(run_dir, iteration, "generator_"),
                    cfg,
                    logger,
                    iteration,
                    run_dir,
                    generator_objective(cfg.objective),
                    save_as="generator",
                ),
            )
        )
    row.update(
        stages.run(
            "sample",
            lambda: sample_stage(generator or model, tok, cfg, logger, iteration, queries, run_dir),
        )
    )
    if not row["pairs/kept"]:
        return row
    kept = kept_pairs(run_dir, iteration)
    row.update(
        stages.run(
            "train", lambda: train_on_pairs(model, tok, kept, cfg, logger, iteration, run_dir)
        )
    )
    if judge is not None:
        row.update(
            stages.run(
                "eval",
                lambda: evaluate(
                    model,
                    tok,
                    judge,
                    cfg.eval,
                    kept,
                    logger,
                    iteration,
                    run_dir / f"iter_{iteration}",
                ),
            )
        )
    return row


def latest_checkpoint(progress: Progress, name: str, stage: str) -> Optional[Path]:
    """iter_<k>/<name> of the last iteration whose `stage` finished (a resumed run)."""
    last = progress.last_iteration(stage)
    return None if last is None else progress.run_dir / f"iter_{last}" / name


def verify_checkpoints(progress: Progress) -> None:
    """A resumed run trusts a saved model only when its weights read: the training stage
    that wrote a damaged one is done again, and every stage after it, saying so."""
    for name, stage in (("policy", "train"), ("generator", "generator_train")):
        while (saved := latest_checkpoint(progress, name, stage)) is not None:
            problem = checkpoint_problem(saved)
            if problem is None:
                break
            last = progress.last_iteration(stage)
            log.warning("%s; doing iteration %d's %s stage again", problem, last, stage)
            progress.forget_from(stage_key(last, stage))


def load_models(cfg: SSOConfig, progress: Progress):
    """The policy (and v2's generator) as the last finished training left them."""
    saved = latest_checkpoint(progress, "policy", "train")
    model, tok = (
        load_checkpoint(saved, cfg.model) if saved else load_policy(cfg.model, cfg.schedule.seed)
    )
    model.to(device(cfg.trainer))
    if cfg.objective.name != "v2":
        return model, tok, None
    saved = latest_checkpoint(progress, "generator", "generator_train")
    generator = load_checkpoint(saved, cfg.model)[0] if saved else copy.deepcopy(model)
    return model, tok, generator.to(device(cfg.trainer))


def run_online(cfg: SSOConfig) -> List[Dict[str, float]]:
    """The whole online job; returns one summary row per iteration. A killed run started
    again with the same command goes on where it stopped (`resume`, pipeline/resume.py)."""
    progress = open_progress(cfg)
    verify_checkpoints(progress)
    with tracked_run(cfg, progress=progress) as (run_dir, logger, rows):
        model, tok, generator = load_models(cfg, progress)
        prompts = usable_prompts(cfg, model, tok, logger)
        judge = (
            make_judge(cfg.eval, cfg.model, model, tok, cfg.schedule.seed)
            if cfg.eval.every_iteration
            else None
        )
        for it in range(1, cfg.schedule.iterations + 1):
            queries = iteration_queries(
                prompts, cfg.schedule.queries_per_iteration, it, cfg.schedule.seed
            )
            rows.append(
                run_iteration(
                    model, tok, cfg, logger, it, queries, run_dir, progress, generator, judge
                )
            )
    return rows
