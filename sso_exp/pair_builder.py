"""One round of self-steering data: the policy names each query's features, samples
y+ under p+, y- under p- and y0 with no system prompt, and the string filter keeps the
triples that differ (DESIGN.md sections 1-2)."""
from __future__ import annotations

import random
from collections import Counter
from typing import Dict, List, Sequence, Tuple

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .config import SSOConfig
from .data import make_record, string_filter
from .generation import sample
from .logprobs import chat_prompt
from .principles import Steering, identify_prompt, parse_features, steer


def steer_queries(model: PreTrainedModel, tok: PreTrainedTokenizerBase, queries: Sequence[str],
                  cfg: SSOConfig, rng: random.Random) -> List[Steering]:
    """p+/p- per query, from the features the policy names for it."""
    pc, s = cfg.principle, cfg.schedule
    answers = sample(model, tok, [chat_prompt(tok, None, identify_prompt(pc, q)) for q in queries],
                     max_new_tokens=pc.identify_max_new_tokens, temperature=s.temperature,
                     top_p=s.top_p, batch_size=s.generation_batch_size, desc="features")
    return [steer(parse_features(a, pc, rng), pc, rng) for a in answers]


def build_pairs(model: PreTrainedModel, tok: PreTrainedTokenizerBase, queries: Sequence[str],
                cfg: SSOConfig, rng: random.Random) -> Tuple[List[Dict], List[Dict], Counter]:
    """(kept records, all generated records, drops per filter rule)."""
    steerings = steer_queries(model, tok, queries, cfg, rng)
    prompts = [chat_prompt(tok, system, q)
               for q, st in zip(queries, steerings)
               for system in (st.p_system, st.n_system, None)]
    s = cfg.schedule
    texts = sample(model, tok, prompts, max_new_tokens=s.max_new_tokens,
                   temperature=s.temperature, top_p=s.top_p,
                   batch_size=s.generation_batch_size, desc="y+/y-/y0")
    generated = [make_record(q, st.p_system, st.n_system, *texts[3 * i:3 * i + 3])
                 for i, (q, st) in enumerate(zip(queries, steerings))]
    kept, drops = string_filter(generated, cfg.filter.min_chars)
    return kept, generated, drops
