"""Online SSO (DESIGN.md section 4): each iteration the current policy writes its own
principle-steered pairs, is trained on them, and becomes the next iteration's policy and
reference. With objective=v2 a data generator (initialised from the policy) writes the
pairs, is trained on them with L+ + L-, then writes the pairs the policy is trained on.
Everything an iteration writes stays on disk and in MLflow whatever follows."""
from __future__ import annotations

import copy
import logging
import random
from pathlib import Path
from typing import Dict, List

import pytorch_lightning as pl

from ..config import SSOConfig, SSOError
from ..data import load_prompts, write_jsonl
from ..precision import device
from ..models import check_available, load_policy
from ..pair_builder import PairRound, build_pairs
from ..tracking import RunLogger
from ..objectives import generator_objective
from .common import round_stats, tracked_run, train_on_pairs
from .evaluate import check_eval_config, evaluate, make_judge

log = logging.getLogger(__name__)


class EmptyIteration(SSOError):
    """The filter dropped every pair of an iteration and `mode.on_empty=stop`."""


def iteration_queries(prompts: List[str], n: int, iteration: int, seed: int) -> List[str]:
    """Iteration k's n queries: the next slice of one seeded shuffle, wrapping around."""
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    start = (iteration - 1) * n
    return [prompts[order[(start + i) % len(order)]] for i in range(n)]


def write_round(rnd: PairRound, it_dir: Path, logger: RunLogger, stem: str = "") -> None:
    write_jsonl(rnd.kept, it_dir / f"{stem}pairs.jsonl")
    write_jsonl(rnd.generated, it_dir / f"{stem}generated.jsonl")
    logger.log_file(it_dir / f"{stem}pairs.jsonl", it_dir.name)


def sample_round(writer, tok, cfg: SSOConfig, logger: RunLogger, iteration: int,
                 queries: List[str], run_dir: Path, stem: str = "") -> PairRound:
    """The writer's pairs for this iteration, written and logged; an empty round stops the
    run or is reported, as `mode.on_empty` says."""
    it_dir = run_dir / f"iter_{iteration}"
    rnd = build_pairs(writer, tok, queries, cfg, random.Random(cfg.schedule.seed + iteration))
    write_round(rnd, it_dir, logger, stem)
    prefix = stem.replace("_", "/")
    logger.log_iteration(iteration, {prefix + k: v for k, v in round_stats(rnd).items()})
    if not rnd.kept:
        msg = (f"iteration {iteration}: the filter dropped all {len(rnd.generated)} pairs "
               f"({dict(rnd.drops)}); the samples are in {it_dir / f'{stem}generated.jsonl'}")
        if cfg.mode.on_empty == "stop":
            raise EmptyIteration(msg + "; stopping (mode.on_empty=continue goes on)")
        log.warning("%s; going on with the policy unchanged", msg)
    return rnd


def run_iteration(model, tok, cfg: SSOConfig, logger: RunLogger, iteration: int,
                  queries: List[str], run_dir: Path, generator=None,
                  judge=None) -> Dict[str, float]:
    """Sample, filter, write, train, save (and evaluate, given a judge): one iteration's
    row of the summary."""
    pl.seed_everything(cfg.schedule.seed + iteration, workers=True, verbose=False)
    row: Dict[str, float] = {"iteration": iteration}
    if generator is not None:  # v2: train the generator on its own pairs first
        rnd = sample_round(generator, tok, cfg, logger, iteration, queries, run_dir, "generator_")
        if not rnd.kept:
            return row
        row.update(train_on_pairs(generator, tok, rnd.kept, cfg, logger, iteration, run_dir,
                                  generator_objective(cfg), save_as="generator"))
    rnd = sample_round(generator or model, tok, cfg, logger, iteration, queries, run_dir)
    row.update(round_stats(rnd))
    if not rnd.kept:
        return row
    row.update(train_on_pairs(model, tok, rnd.kept, cfg, logger, iteration, run_dir))
    if judge is not None:
        row.update(evaluate(model, tok, judge, cfg, rnd.kept, logger, iteration,
                            run_dir / f"iter_{iteration}"))
    return row


def run_online(cfg: SSOConfig) -> List[Dict[str, float]]:
    """The whole online job; returns one summary row per iteration."""
    prompts = load_prompts(cfg.data.prompts)  # bad input fails here, before any work
    check_available(cfg.model)
    if cfg.eval.every_iteration:
        check_eval_config(cfg)
    with tracked_run(cfg) as (run_dir, logger, rows):
        model, tok = load_policy(cfg.model, cfg.schedule.seed)
        model.to(device(cfg.trainer))
        generator = copy.deepcopy(model) if cfg.objective.name == "v2" else None
        judge = make_judge(cfg, model, tok) if cfg.eval.every_iteration else None
        for it in range(1, cfg.schedule.iterations + 1):
            queries = iteration_queries(prompts, cfg.schedule.queries_per_iteration, it,
                                        cfg.schedule.seed)
            rows.append(run_iteration(model, tok, cfg, logger, it, queries, run_dir,
                                      generator, judge))
    return rows
