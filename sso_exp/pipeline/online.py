"""Online SSO (docs/algorithm.md §6): each iteration the current policy writes its own
principle-steered pairs, is trained on them, and becomes the next iteration's policy and
reference. With objective=v2 a data generator (initialised from the policy) writes the
pairs, is trained on them with L+ + L-, then writes the pairs the policy is trained on.
Everything an iteration writes stays on disk and in MLflow whatever follows."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import pytorch_lightning as pl
from transformers import PreTrainedModel

from ..config import SSOConfig
from ..data.records import read_records
from ..models.device import device
from ..models.loading import checkpoint_problem, load_checkpoint, load_policy
from ..runtime.memory import release_memory
from ..runtime.signals import raise_if_stopped
from ..training.objectives import generator_objective
from .context import RunContext
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


class Models(NamedTuple):
    policy: PreTrainedModel
    generator: Optional[PreTrainedModel]  # objective=v2: writes the policy's pairs
    judge: Optional[Any]  # eval.every_iteration: judges each iteration's policy


# Each stage's seed offset: its own random stream, the same whether resumed or not.
STAGE_SEEDS = {
    "sample": 0,
    "train": 1000,
    "eval": 2000,
    "generator_sample": 3000,
    "generator_train": 4000,
}


class Stages:
    """An iteration's stages, each run once: a stage that finished before a kill is skipped
    when the run is started again, and reports what it reported."""

    def __init__(self, ctx: RunContext, iteration: int):
        self.ctx, self.iteration = ctx, iteration

    def run(self, name: str, step: Callable[..., Dict[str, float]], *args) -> Dict[str, float]:
        """`step(ctx, iteration, *args)`, seeded by itself, so that a resumed stage does
        what it would have done."""
        stage, progress = stage_key(self.iteration, name), self.ctx.progress
        if not progress.done(stage):
            seed = self.ctx.cfg.schedule.seed + self.iteration + STAGE_SEEDS[name]
            pl.seed_everything(seed, workers=True, verbose=False)
            figures = step(self.ctx, self.iteration, *args)
            progress.finish(stage, figures, self.ctx.logger.step_offset)
            release_memory()  # what the stage held (a Trainer, its optimizer) and glibc's heap
            raise_if_stopped()
        return progress.stages[stage]


def run_iteration(
    ctx: RunContext, models: Models, iteration: int, queries: List[str]
) -> Dict[str, float]:
    """One iteration (docs/algorithm.md §6): principles, sampling and the filter write the
    round's pairs; the policy trains on them and is saved (then evaluated, given a judge).
    Under v2 (§5) the generator first trains on pairs of its own, then writes the policy's.
    Returns the iteration's row of the summary."""
    stages = Stages(ctx, iteration)
    row: Dict[str, float] = {"iteration": iteration}
    writer = models.policy
    if models.generator is not None:
        writer = models.generator
        own = stages.run("generator_sample", sample_pairs, writer, queries, "generator_")
        if not own["pairs/kept"]:
            return row
        row.update(stages.run("generator_train", train_generator, writer))
    row.update(stages.run("sample", sample_pairs, writer, queries))
    if not row["pairs/kept"]:
        return row
    row.update(stages.run("train", train_policy, models.policy))
    if models.judge is not None:
        row.update(stages.run("eval", evaluate_policy, models.policy, models.judge))
    return row


def sample_pairs(
    ctx: RunContext, iteration: int, writer, queries: List[str], stem: str = ""
) -> Dict[str, float]:
    """The writer's pairs for this iteration (principles, sampling, filter), written and
    logged; returns the round's figures. An empty round stops the run or is reported, as
    `mode.on_empty` says."""
    rnd = sample_round(ctx, writer, queries, iteration, stem)
    stats = round_stats(rnd)
    ctx.logger.log_iteration(iteration, {stem.replace("_", "/") + k: v for k, v in stats.items()})
    if not rnd.kept:
        generated = ctx.iteration_dir(iteration) / f"{stem}generated.jsonl"
        msg = (
            f"iteration {iteration}: the filter dropped all {len(rnd.generated)} pairs "
            f"({dict(rnd.drops)}); the samples are in {generated}"
        )
        if ctx.cfg.mode.on_empty == "stop":
            raise EmptyIteration(msg + "; stopping (mode.on_empty=continue goes on)")
        log.warning("%s; going on with the policy unchanged", msg)
    return stats


def kept_pairs(ctx: RunContext, iteration: int, stem: str = "") -> List[Dict]:
    return read_records(ctx.iteration_dir(iteration) / f"{stem}pairs.jsonl")


def train_policy(ctx: RunContext, iteration: int, policy) -> Dict[str, float]:
    """The policy trained on the iteration's pairs with the SSO loss, saved as iter_k/policy."""
    return train_on_pairs(ctx, policy, kept_pairs(ctx, iteration), iteration)


def train_generator(ctx: RunContext, iteration: int, generator) -> Dict[str, float]:
    """v2: the generator trained on its own pairs with L+ + L-, saved as iter_k/generator."""
    objective = generator_objective(ctx.cfg.objective)
    records = kept_pairs(ctx, iteration, "generator_")
    return train_on_pairs(ctx, generator, records, iteration, objective, save_as="generator")


def evaluate_policy(ctx: RunContext, iteration: int, policy, judge) -> Dict[str, float]:
    """The trained policy on the configured tasks, its tables in the iteration's folder."""
    records = kept_pairs(ctx, iteration)
    return evaluate(ctx, policy, judge, records, iteration, ctx.iteration_dir(iteration))


def evaluate_before(ctx: RunContext, iteration: int, policy, judge) -> Dict[str, float]:
    """The untrained policy (iteration 0) on the tasks that need no pairs: the baseline
    every later iteration is compared with."""
    return evaluate(ctx, policy, judge, None, iteration, ctx.iteration_dir(iteration))


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
    schedule = cfg.schedule
    with tracked_run(cfg, progress=progress) as (run_dir, logger, rows):
        policy, tok, generator = load_models(cfg, progress)
        ctx = RunContext(cfg, tok, logger, run_dir, progress)
        prompts = usable_prompts(ctx, policy)
        judge = None
        if cfg.eval.every_iteration:
            judge = make_judge(cfg.eval, cfg.model, policy, tok, schedule.seed)
        models = Models(policy, generator, judge)
        if judge is not None:
            rows.append(
                {"iteration": 0, **Stages(ctx, 0).run("eval", evaluate_before, policy, judge)}
            )
        for iteration in range(1, schedule.iterations + 1):
            queries = iteration_queries(
                prompts, schedule.queries_per_iteration, iteration, schedule.seed
            )
            rows.append(run_iteration(ctx, models, iteration, queries))
    return rows
