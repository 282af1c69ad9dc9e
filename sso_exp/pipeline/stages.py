"""The stages the workflows share: a round of pairs sampled by a writer model and written
(online iterations, offline generation, a reward model's SSO data), and training on pairs
(scored under the model as it is, fitted, saved)."""

from __future__ import annotations

import logging
import math
import random
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch

from ..data.encoding import ON_POLICY, encode_records, fit_prompts
from ..data.pairs import SeqLogps
from ..data.records import load_prompts, write_jsonl
from ..distributed import barrier, gather
from ..errors import DataError, SSOError
from ..evaluation.accuracy import mean_and_se
from ..models.device import trained_weights
from ..models.loading import load_policy, save_model
from ..models.logprobs import score_named
from ..steering.filters import LOGPROB_RULES, STRING_RULES
from ..steering.rounds import PairRound, Scorer, build_round
from ..steering.sampling import make_sampler
from ..training.fit import FitSetup, ScoredPairs, fit
from ..training.objectives import Objective, policy_objective
from .context import RunContext

log = logging.getLogger(__name__)


class EmptyIteration(SSOError):
    """The filter dropped every pair of an iteration and `mode.on_empty=stop`."""


def usable_prompts(ctx: RunContext, model) -> List[str]:
    """The prompts file's queries that fit the token budget (data.max_prompt_tokens, and
    the model's context less the answer budget); the others cut or dropped, counted as
    `prompts/<reason>` and logged."""
    cfg = ctx.cfg
    context = getattr(model.config, "max_position_embeddings", None) or cfg.data.max_prompt_tokens
    budget = min(cfg.data.max_prompt_tokens, context - cfg.generation.max_new_tokens)
    prompts = load_prompts(cfg.data.prompts)
    kept, counts = fit_prompts(ctx.tok, prompts, max(budget, 1), cfg.data.long_prompts)
    if any(counts.values()):
        log.warning(
            "prompts over %d tokens: %s (data.long_prompts=%s)",
            budget,
            counts,
            cfg.data.long_prompts,
        )
    ctx.logger.log_iteration(0, {f"prompts/{k}": v for k, v in counts.items()})
    if not kept:
        raise DataError(
            f"{cfg.data.prompts}: all {len(prompts)} prompts are over {budget} tokens "
            "(config key 'data.max_prompt_tokens'; data.long_prompts=cut keeps their start)"
        )
    if len(kept) < cfg.schedule.queries_per_iteration:
        log.warning(
            "%s holds %d usable prompts for schedule.queries_per_iteration=%d: each "
            "iteration asks some of them more than once",
            cfg.data.prompts or "the demo queries", len(kept), cfg.schedule.queries_per_iteration,
        )  # fmt: skip
    return kept


def iteration_queries(prompts: List[str], n: int, iteration: int, seed: int) -> List[str]:
    """Iteration k's n queries: the next slice of one seeded shuffle, wrapping around."""
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    start = (iteration - 1) * n
    return [prompts[order[(start + i) % len(order)]] for i in range(n)]


def record_scorer(ctx: RunContext, model) -> Scorer:
    """Log-probs of records' named sequences under `model`, without gradient."""

    def score(records: Sequence[Dict], names: Sequence[str]) -> Dict[str, SeqLogps]:
        return score_as_trained(ctx, model, encode(ctx, records, names))

    return score


def encode(ctx: RunContext, records: Sequence[Dict], names: Sequence[str]):
    return encode_records(ctx.tok, records, names, ctx.cfg.schedule.max_length)


def score_as_trained(ctx: RunContext, model, encoded) -> Dict[str, SeqLogps]:
    """`score_named` with the weights as training computes with them (models/device.py)."""
    cfg = ctx.cfg
    with trained_weights(model, cfg.trainer):
        return score_named(
            model, encoded, ctx.tok.pad_token_id, cfg.scoring.batch_size, cfg.trainer.logps_chunk
        )


def sample_round(
    ctx: RunContext, writer, queries: Sequence[str], iteration: int, stem: str = ""
) -> PairRound:
    """A round of pairs written by `writer` with the configured sampler and filters, its
    random streams named by (seed, iteration, stem); every triple and the kept pairs go to
    the iteration's folder, the pairs to MLflow too. `sampled/rank<r>` counts the sequences
    rank r sampled."""
    cfg, it_dir = ctx.cfg, ctx.iteration_dir(iteration)
    seed = cfg.schedule.seed
    sampler = make_sampler(writer, ctx.tok, cfg.generation, seed + iteration)
    rnd = build_round(
        sampler,
        queries,
        cfg.principle,
        cfg.filter,
        cfg.generation.max_new_tokens,
        (seed, iteration, stem),
        record_scorer(ctx, writer),
    )
    rnd.stats.update({f"sampled/rank{r}": n for r, n in enumerate(gather(sampler.sampled))})
    write_jsonl(rnd.kept, it_dir / f"{stem}pairs.jsonl")
    write_jsonl(rnd.generated, it_dir / f"{stem}generated.jsonl")
    ctx.logger.log_file(it_dir / f"{stem}pairs.jsonl", it_dir.name)
    ctx.logger.log_table(rnd.kept, f"{it_dir.name}/{stem}pairs.json")
    barrier()  # the other ranks read what rank 0 wrote
    return rnd


def round_stats(rnd: PairRound) -> Dict[str, float]:
    generated, kept = len(rnd.generated), len(rnd.kept)
    stats = {
        "pairs/generated": generated,
        "pairs/kept": kept,
        "pairs/drop_rate": 1 - kept / max(generated, 1),
        **rnd.stats,
    }
    stats.update(
        {f"pairs/dropped/{rule}": rnd.drops.get(rule, 0) for rule in STRING_RULES + LOGPROB_RULES}
    )
    return stats


def generate_pairs(ctx: RunContext, policy):
    """Offline pairs, written once into iter_1/ by the generator (the policy itself unless
    `generator` is set); returns the kept records and the round's figures."""
    cfg = ctx.cfg
    if cfg.generator is not None:
        writer, tok = load_policy(cfg.generator, cfg.schedule.seed)
        writer.to(policy.device)
        ctx = replace(ctx, tok=tok)
    else:
        writer = policy
    prompts = usable_prompts(ctx, writer)
    queries = iteration_queries(prompts, cfg.schedule.queries_per_iteration, 1, cfg.schedule.seed)
    rnd = sample_round(ctx, writer, queries, 1)
    return rnd.kept, round_stats(rnd)


def signal_stats(scores: Dict[str, Any], prefix: str = "") -> Dict[str, float]:
    """On-policyness and lengths of y+, y-, y0 with their standard errors, and y+'s and y-'s
    on-policyness against y0 of the same query (the paper's reading; its interval comes
    from the per-query differences, not from the separate means')."""
    chosen, rejected, raw = (scores[n] for n in ON_POLICY)
    named = {
        "onpolicy/chosen": chosen.mean,
        "onpolicy/rejected": rejected.mean,
        "onpolicy/raw": raw.mean,
        "onpolicy/chosen_minus_raw": chosen.mean - raw.mean,
        "onpolicy/rejected_minus_raw": rejected.mean - raw.mean,
        "length/chosen": chosen.count,
        "length/rejected": rejected.count,
        "length/raw": raw.count,
    }
    stats = {}
    for key, values in named.items():
        stats[prefix + key], stats[f"{prefix}{key}_se"] = mean_and_se(values)
    return stats


@contextmanager
def timed(stats: Dict[str, float], key: str) -> Iterator[None]:
    """The block's wall time in seconds, as stats[key] (`time/*_s` in MLflow)."""
    clock = time.perf_counter()
    yield
    stats[key] = time.perf_counter() - clock


def train_on_pairs(
    ctx: RunContext,
    model,
    records: List[Dict],
    iteration: int,
    objective: Optional[Objective] = None,
    save_as: str = "policy",
) -> Dict[str, float]:
    """Score the pairs under the model as it is (reference, on-policyness), train it on them
    (the policy objective unless told otherwise), save it to iter_<k>/<save_as>; returns
    the iteration's figures."""
    objective = objective or policy_objective(ctx.cfg.loss, ctx.cfg.objective)
    prefix = objective.prefix
    stats: Dict[str, float] = {}
    with timed(stats, f"time/{prefix}scoring_s"):
        encoded = encode(ctx, records, objective.sequences())
        scores = score_as_trained(ctx, model, {n: encoded[n] for n in objective.scored()})
    pairs = ScoredPairs(encoded, scores, ctx.tok.pad_token_id)
    stats.update(signal_stats({n: scores[n] for n in ON_POLICY}, prefix))
    ctx.logger.log_iteration(iteration, stats)
    train: Dict[str, float] = {}
    with timed(train, f"time/{prefix}training_s"):
        train.update(train_metrics(ctx, model, pairs, objective, iteration))
    seen = len(records) * ctx.cfg.schedule.epochs  # pairs behind each accuracy
    train.update(share_errors(train, seen))
    if torch.cuda.is_available():
        train["gpu/peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    with timed(train, f"time/{prefix}after_scoring_s"):
        train.update(preference_after(ctx, model, pairs, prefix))
    ctx.logger.log_iteration(iteration, train)
    save_model(model, ctx.tok, ctx.iteration_dir(iteration) / save_as)
    return {**stats, **train}


def train_metrics(
    ctx: RunContext, model, pairs: ScoredPairs, objective: Objective, iteration: int
) -> Dict[str, float]:
    """`fit`, its means as `train/*`; the run's steps go on after its optimizer steps."""
    cfg = ctx.cfg
    setup = FitSetup(cfg.schedule, cfg.trainer, cfg.model.lora, ctx.logger, ctx.run_dir)
    metrics, steps = fit(model, pairs, objective, setup, iteration)
    ctx.logger.step_offset += steps
    return {f"train/{k}": v for k, v in metrics.items()}


def share_errors(train: Dict[str, float], seen: int) -> Dict[str, float]:
    """Each accuracy's binomial standard error over the `seen` pairs behind it (`_se`)."""
    errors = {}
    for key in [k for k in train if k.endswith("accuracies")]:
        p = min(max(train[key], 0.0), 1.0)
        errors[f"{key}_se"] = math.sqrt(p * (1.0 - p) / seen)
    return errors


def preference_after(ctx: RunContext, model, pairs: ScoredPairs, prefix: str) -> Dict[str, float]:
    """What the trained model prefers on the pairs it was just trained on: the main pair's
    log-ratio margin against the model before training,
    log pi(y+)/pi_0(y+) - log pi(y-)/pi_0(y-), and the share of pairs where it is positive.
    The running `train/*accuracies` mix every step's model; this is the model saved."""
    names = ("main_chosen", "main_rejected")
    after = score_as_trained(ctx, model, {n: pairs.encoded[n] for n in names})
    chosen, rejected = (after[n].sum - pairs.scores[n].sum for n in names)
    margin = (chosen - rejected).double()
    stats: Dict[str, float] = {}
    for key, values in (("margin", margin), ("accuracy", (margin > 0).double())):
        stats[f"{prefix}after/{key}"], stats[f"{prefix}after/{key}_se"] = mean_and_se(values)
    return stats
