"""Principles: which features matter for a query, and the contrastive system prompts p+/p-.

The policy itself names the crucial features (few-shot prompt, comma-separated answer);
we keep the valid names, shuffle, take `num_features`, fill up at random, and add
Concision with probability `concision_prob` (DESIGN.md section 1)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from .config import FeatureConfig, PrincipleConfig


@dataclass(frozen=True)
class Steering:
    """The features chosen for one query and the two system prompts built from them."""
    features: Tuple[str, ...]
    p_system: str
    n_system: str


def identifiable(cfg: PrincipleConfig) -> List[FeatureConfig]:
    """The features the policy may name (Concision is only ever added at random)."""
    return [f for f in cfg.features if f.name != cfg.concision_feature]


def identify_prompt(cfg: PrincipleConfig, query: str) -> str:
    """A few-shot user message asking for the features most crucial to answer `query`."""
    menu = "\n".join(f"- {f.name}: {f.meaning}" for f in identifiable(cfg))
    shots = "\n\n".join(f"Query: {ex.query}\nFeatures: {', '.join(ex.features)}"
                        for ex in cfg.identify_examples)
    return (f"Here are features a good response can have:\n{menu}\n\n"
            f"Name the {cfg.num_features} features that matter most for a response to the "
            f"query, as one comma-separated line of feature names.\n\n{shots}\n\n"
            f"Query: {query}\nFeatures:")


def parse_features(answer: str, cfg: PrincipleConfig, rng: random.Random) -> List[str]:
    """Valid feature names in the answer, shuffled, cut or filled up to `num_features`."""
    names = [f.name for f in identifiable(cfg)]
    by_lower = {n.lower(): n for n in names}
    found = []
    for word in re.findall(r"[A-Za-z]+", answer):
        name = by_lower.get(word.lower())
        if name and name not in found:
            found.append(name)
    rng.shuffle(found)
    chosen = found[:cfg.num_features]
    others = [n for n in names if n not in chosen]
    chosen += rng.sample(others, cfg.num_features - len(chosen))
    return chosen


def join_words(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def steer(features: Sequence[str], cfg: PrincipleConfig, rng: random.Random) -> Steering:
    """p+ and p- for the chosen features, with Concision added at random."""
    features = list(features)
    if cfg.concision_feature not in features and rng.random() < cfg.concision_prob:
        features.append(cfg.concision_feature)
    table = {f.name: f for f in cfg.features}
    picked = [table[n] for n in features]

    def system(adjective: str, principle: str) -> str:
        head = f"Your response should be {join_words([getattr(f, adjective) for f in picked])}."
        body = "\n\n".join(f"{f.name}: {getattr(f, principle)}" for f in picked)
        return f"{head}\n\n{body}\n\n{cfg.secrecy}"

    return Steering(tuple(features), system("good", "good_principle"),
                    system("bad", "bad_principle"))
