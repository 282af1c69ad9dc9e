"""One round of self-steering data: the writer model names each query's features (and,
with `principle.generate`, writes its principles), samples y+ under p+, y- under p- and y0
with no system prompt, and the filters keep the triples that make real pairs (DESIGN.md
sections 1-2). The writer is the policy online, the generator offline."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .config import SSOConfig
from .data import make_record
from .dataset import encode_records
from .filters import LOGPROB_SEQUENCES, logprob_filter, string_filter
from .generation import sample
from . import vllm_sampling
from .logprobs import chat_prompt, score_named
from .principles import (Steering, add_concision, identify_prompt, parse_features,
                         parse_principles, principle_prompt, steer)


@dataclass
class PairRound:
    kept: List[Dict]
    generated: List[Dict]
    drops: Counter
    stats: Dict[str, float] = field(default_factory=dict)


def sample_prompts(model, tok, prompts: List[Tuple[Optional[str], str]], cfg: SSOConfig,
                   max_new_tokens: int, desc: str) -> List[str]:
    """One completion per (system, user) prompt with the configured sampling backend."""
    s = cfg.schedule
    texts = [chat_prompt(tok, system, user) for system, user in prompts]
    if cfg.generation.backend == "vllm":
        return vllm_sampling.sample(model, tok, texts, max_new_tokens=max_new_tokens,
                                    temperature=s.temperature, top_p=s.top_p,
                                    cfg=cfg.generation, seed=s.seed, desc=desc)
    return sample(model, tok, texts, max_new_tokens=max_new_tokens, temperature=s.temperature,
                  top_p=s.top_p, batch_size=s.generation_batch_size,
                  candidates=cfg.generation.nucleus_candidates, desc=desc)


def write_principles(model, tok, queries: Sequence[str], features: Sequence[List[str]],
                     cfg: SSOConfig) -> Tuple[List[Dict[str, Tuple[str, str]]], Dict[str, float]]:
    """Query-specific principles per (query, feature); unparsed answers fall back."""
    jobs = [(i, f) for i, fs in enumerate(features) for f in fs]
    answers = sample_prompts(model, tok, [(None, principle_prompt(cfg.principle, queries[i], f))
                                   for i, f in jobs], cfg,
                      cfg.principle.generate_max_new_tokens, "principles")
    written: List[Dict[str, Tuple[str, str]]] = [{} for _ in queries]
    for (i, f), answer in zip(jobs, answers):
        parsed = parse_principles(answer)
        if parsed:
            written[i][f] = parsed
    parsed_count = sum(len(w) for w in written)
    return written, {"principles/generated": len(jobs),
                     "principles/fallback_rate": 1 - parsed_count / max(len(jobs), 1)}


def steer_queries(model, tok, queries: Sequence[str], cfg: SSOConfig,
                  rng: random.Random) -> Tuple[List[Steering], Dict[str, float]]:
    """p+/p- per query, from the features the writer names for it."""
    pc = cfg.principle
    answers = sample_prompts(model, tok, [(None, identify_prompt(pc, q)) for q in queries], cfg,
                      pc.identify_max_new_tokens, "features")
    features = [add_concision(parse_features(a, pc, rng), pc, rng) for a in answers]
    written, stats = ([{} for _ in queries], {})
    if pc.generate:
        written, stats = write_principles(model, tok, queries, features, cfg)
    return [steer(f, pc, w) for f, w in zip(features, written)], stats


def apply_logprob_filter(model, tok, kept: List[Dict], cfg: SSOConfig) -> Tuple[List[Dict], Counter]:
    """DESIGN.md's log-prob filter, scored under the writer model."""
    if not kept:
        return kept, Counter()
    encoded = encode_records(tok, kept, LOGPROB_SEQUENCES, cfg.schedule.max_length)
    scores = score_named(model, encoded, tok.pad_token_id, cfg.schedule.generation_batch_size,
                         cfg.trainer.logps_chunk)
    keep, drops = logprob_filter(scores)
    return [rec for rec, k in zip(kept, keep.tolist()) if k], drops


def build_pairs(model: PreTrainedModel, tok: PreTrainedTokenizerBase, queries: Sequence[str],
                cfg: SSOConfig, rng: random.Random) -> PairRound:
    """Sample a triple per query with the writer model and filter them."""
    steerings, stats = steer_queries(model, tok, queries, cfg, rng)
    prompts = [(system, q) for q, st in zip(queries, steerings)
               for system in (st.p_system, st.n_system, None)]
    texts = sample_prompts(model, tok, prompts, cfg, cfg.schedule.max_new_tokens, "y+/y-/y0")
    generated = [make_record(q, st.p_system, st.n_system, *texts[3 * i:3 * i + 3])
                 for i, (q, st) in enumerate(zip(queries, steerings))]
    kept, drops = string_filter(generated, cfg.filter.min_chars)
    if cfg.filter.name == "logprob":
        kept, more = apply_logprob_filter(model, tok, kept, cfg)
        drops.update(more)
    return PairRound(kept, generated, drops, stats)
