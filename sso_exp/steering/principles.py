"""Principles: which features matter for a query, and the contrastive system prompts p+/p-.

The policy itself names the crucial features (few-shot prompt, comma-separated answer);
we keep the valid names, shuffle, take `num_features`, fill up at random, and add
Concision with probability `concision_prob`. With `generate`, the policy also writes a
query-specific good/bad principle per feature as JSON, and the predefined pair stands in
when its answer does not parse (docs/algorithm.md §1). Verifiable principles skip all of
this: their features are drawn (steering/verifiable.py)."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..config import FeatureConfig, PrincipleConfig


@dataclass(frozen=True)
class Steering:
    """The features chosen for one query and the two system prompts built from them."""

    features: Tuple[str, ...]
    p_system: str
    n_system: str
    constraints: Tuple[Dict, ...] = ()  # principle=verifiable: what the checker judges


def identifiable(cfg: PrincipleConfig) -> List[FeatureConfig]:
    """The features the policy may name (Concision is only ever added at random)."""
    return [f for f in cfg.features if f.name != cfg.concision_feature]


def identify_prompt(cfg: PrincipleConfig, query: str) -> str:
    """A few-shot user message asking for the features most crucial to answer `query`."""
    menu = "\n".join(f"- {f.name}: {f.meaning}" for f in identifiable(cfg))
    shots = "\n\n".join(
        f"Query: {ex.query}\nFeatures: {', '.join(ex.features)}" for ex in cfg.identify_examples
    )
    return (
        f"Here are features a good response can have:\n{menu}\n\n"
        f"Name the {cfg.num_features} features that matter most for a response to the "
        f"query, as one comma-separated line of feature names.\n\n{shots}\n\n"
        f"Query: {query}\nFeatures:"
    )


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
    chosen = found[: cfg.num_features]
    others = [n for n in names if n not in chosen]
    chosen += rng.sample(others, cfg.num_features - len(chosen))
    return chosen


def join_words(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def add_concision(features: Sequence[str], cfg: PrincipleConfig, rng: random.Random) -> List[str]:
    features = list(features)
    if cfg.concision_feature not in features and rng.random() < cfg.concision_prob:
        features.append(cfg.concision_feature)
    return features


def principle_prompt(cfg: PrincipleConfig, query: str, feature: str) -> str:
    """A few-shot user message asking for a query-specific good/bad principle as JSON."""
    f = {x.name: x for x in cfg.features}[feature]
    shots = "\n\n".join(
        f"Query: {ex.query}\nFeature: {ex.feature}\nAnswer: "
        + json.dumps({"good_principle": ex.good_principle, "bad_principle": ex.bad_principle})
        for ex in cfg.generate_examples
    )
    return (
        f"Write two mirrored principles for answering the query below, about the feature "
        f"{f.name} ({f.meaning}): a good principle that makes a response {f.good.lower()} "
        f"and a bad principle that makes it {f.bad.lower()}, each 2-4 sentences addressed "
        f"to the assistant. Answer with one JSON object with the keys good_principle and "
        f"bad_principle.\n\n{shots}\n\nQuery: {query}\nFeature: {f.name}\nAnswer:"
    )


def parse_principles(answer: str) -> Optional[Tuple[str, str]]:
    """(good, bad) from the first JSON object in the answer that has both as text."""
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", answer)):
        try:
            obj, _ = decoder.raw_decode(answer[start:])
        except json.JSONDecodeError:
            continue
        good, bad = (
            obj.get(k) if isinstance(obj, dict) else None
            for k in ("good_principle", "bad_principle")
        )
        if isinstance(good, str) and isinstance(bad, str) and good.strip() and bad.strip():
            return good.strip(), bad.strip()
    return None


def system_prompt(adjectives: Sequence[str], principles: Sequence[Tuple[str, str]], secrecy: str):
    """The paper's template: the adjectives, one paragraph per (feature, principle), the
    secrecy line."""
    body = "\n\n".join(f"{name}: {text}" for name, text in principles)
    return f"Your response should be {join_words(adjectives)}.\n\n{body}\n\n{secrecy}"


def mirrored(names: Sequence[str], table: Dict, text: Callable[[str, int], str], secrecy: str):
    """(p+, p-) in the template: side 0 the good adjectives and principles, side 1 the bad;
    `table` maps a feature name to its adjectives, `text(name, side)` gives its principle."""
    return tuple(
        system_prompt(
            [getattr(table[n], adjective) for n in names],
            [(n, text(n, side)) for n in names],
            secrecy,
        )
        for side, adjective in enumerate(("good", "bad"))
    )


def steer(
    features: Sequence[str],
    cfg: PrincipleConfig,
    written: Optional[Dict[str, Tuple[str, str]]] = None,
) -> Steering:
    """p+ and p- for the features; `written` holds query-specific (good, bad) principles
    that replace the predefined ones."""
    table = {f.name: f for f in cfg.features}
    pairs = {n: (table[n].good_principle, table[n].bad_principle) for n in features}
    pairs.update(written or {})
    p_system, n_system = mirrored(features, table, lambda n, side: pairs[n][side], cfg.secrecy)
    return Steering(tuple(features), p_system, n_system)


def steer_verifiable(constraints: Sequence[Dict], cfg: PrincipleConfig) -> Steering:
    """p+ and p- from a query's drawn constraints (steering/verifiable.py), in the same
    template; the constraints go with the steering into the record."""
    drawn = {c["family"]: (c["good_principle"], c["bad_principle"]) for c in constraints}
    table = {f.name: f for f in cfg.verifiable}
    p_system, n_system = mirrored(list(drawn), table, lambda n, side: drawn[n][side], cfg.secrecy)
    return Steering(tuple(drawn), p_system, n_system, tuple(constraints))
