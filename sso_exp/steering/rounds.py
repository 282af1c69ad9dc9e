"""One round of self-steering data (docs/algorithm.md §1-3): the writer names each query's
features (and, with `principle.generate`, writes its principles), samples y+ under p+, y-
under p- and y0 with no system prompt, and the filters keep the triples that make real
pairs. The writer is reached only through its `Sampler` (and, for the log-prob filter, a
`Scorer` of records under it): the policy online, the generator offline. Every random choice
about query i comes from streams named by (round, i, role), so a query's triple is the same
however the round is batched or shared out among ranks."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..config import FilterConfig, PrincipleConfig
from ..data.pairs import SeqLogps
from ..data.records import make_record
from ..distributed import stream_seed
from .filters import LOGPROB_SEQUENCES, logprob_filter, string_filter
from .principles import (
    Steering,
    add_concision,
    identify_prompt,
    parse_features,
    parse_principles,
    principle_prompt,
    steer,
    steer_verifiable,
)
from .sampling import Sampler
from .verifiable import draw_constraints

# records and sequence names -> their log-probs under the writer (models/logprobs.py)
Scorer = Callable[[Sequence[Dict], Sequence[str]], Dict[str, SeqLogps]]
ROLES = ("y+", "y-", "y0")  # a triple's samples, in the order they are asked for


@dataclass
class PairRound:
    kept: List[Dict]
    generated: List[Dict]
    drops: Counter
    stats: Dict[str, float] = field(default_factory=dict)


def write_principles(
    sampler: Sampler,
    queries: Sequence[str],
    features: Sequence[List[str]],
    cfg: PrincipleConfig,
    key: Tuple,
) -> Tuple[List[Dict[str, Tuple[str, str]]], Dict[str, float]]:
    """Query-specific principles per (query, feature); unparsed answers fall back."""
    jobs = [(i, f) for i, fs in enumerate(features) for f in fs]
    answers = sampler.sample(
        [(None, principle_prompt(cfg, queries[i], f)) for i, f in jobs],
        cfg.generate_max_new_tokens,
        "principles",
        [stream_seed(*key, i, "principle", f) for i, f in jobs],
    )
    written: List[Dict[str, Tuple[str, str]]] = [{} for _ in queries]
    for (i, f), answer in zip(jobs, answers):
        parsed = parse_principles(answer)
        if parsed:
            written[i][f] = parsed
    parsed_count = sum(len(w) for w in written)
    return written, {
        "principles/generated": len(jobs),
        "principles/fallback_rate": 1 - parsed_count / max(len(jobs), 1),
    }


def steer_queries(
    sampler: Sampler, queries: Sequence[str], cfg: PrincipleConfig, key: Tuple
) -> Tuple[List[Steering], Dict[str, float]]:
    """p+/p- per query, from the features the writer names for it (verifiable principles:
    from the constraints drawn from its stream, the writer not asked)."""
    if cfg.verifiable:
        return [
            steer_verifiable(
                draw_constraints(cfg, random.Random(stream_seed(*key, i, "choices"))), cfg
            )
            for i in range(len(queries))
        ], {}
    answers = sampler.sample(
        [(None, identify_prompt(cfg, q)) for q in queries],
        cfg.identify_max_new_tokens,
        "features",
        [stream_seed(*key, i, "features") for i in range(len(queries))],
    )
    rngs = [random.Random(stream_seed(*key, i, "choices")) for i in range(len(queries))]
    features = [
        add_concision(parse_features(a, cfg, rng), cfg, rng) for a, rng in zip(answers, rngs)
    ]
    written, stats = ([{} for _ in queries], {})
    if cfg.generate:
        written, stats = write_principles(sampler, queries, features, cfg, key)
    return [steer(f, cfg, w) for f, w in zip(features, written)], stats


def apply_logprob_filter(kept: List[Dict], scorer: Scorer) -> Tuple[List[Dict], Counter]:
    """The log-prob filter, scored under the writer model."""
    if not kept:
        return kept, Counter()
    keep, drops = logprob_filter(scorer(kept, LOGPROB_SEQUENCES))
    return [rec for rec, k in zip(kept, keep.tolist()) if k], drops


def with_constraints(record: Dict, steering: Steering) -> Dict:
    """The record with its verifiable constraints as an added field (`constraints`: family,
    good and bad constraint, both principles), the authors' fields unchanged."""
    if steering.constraints:
        record["constraints"] = list(steering.constraints)
    return record


def build_round(
    sampler: Sampler,
    queries: Sequence[str],
    principles: PrincipleConfig,
    filters: FilterConfig,
    max_new_tokens: int,
    key: Tuple,
    scorer: Optional[Scorer] = None,
) -> PairRound:
    """Sample a triple per query with the writer and filter them; `key` names the round's
    random streams (`scorer` is needed by filter=logprob only). `time/*_s` are the wall
    times of its steps."""
    clock = time.perf_counter()
    steerings, stats = steer_queries(sampler, queries, principles, key)
    stats["time/features_s"] = time.perf_counter() - clock
    chats = [
        (system, q)
        for q, st in zip(queries, steerings)
        for system in (st.p_system, st.n_system, None)
    ]
    seeds = [stream_seed(*key, i, role) for i in range(len(queries)) for role in ROLES]
    texts = sampler.sample(chats, max_new_tokens, "y+/y-/y0", seeds)
    stats["time/sampling_s"] = time.perf_counter() - clock - stats["time/features_s"]
    generated = [
        with_constraints(make_record(q, st.p_system, st.n_system, *texts[3 * i : 3 * i + 3]), st)
        for i, (q, st) in enumerate(zip(queries, steerings))
    ]
    kept, drops = string_filter(generated, filters.min_chars)
    if filters.name == "logprob":
        if scorer is None:
            raise ValueError("filter=logprob needs a scorer of records under the writer")
        clock = time.perf_counter()
        kept, more = apply_logprob_filter(kept, scorer)
        drops.update(more)
        stats["time/filter_scoring_s"] = time.perf_counter() - clock
    return PairRound(kept, generated, drops, stats)
