"""Verifiable principles (`principle=verifiable`, docs/algorithm.md §1): each feature is a
family of IFEval instructions, a good constraint for p+ and a bad one for p- that no response
can satisfy both. A query's families and their arguments (the keyword, the word limit, the
end phrase) are drawn from the query's own random stream, and stored with its record as
`constraints`, so the checker lm-evaluation-harness ships for IFEval can judge every sampled
answer exactly. The checkers are the library's; only their arguments and, for a negated
side, the principle's wording are ours."""

from __future__ import annotations

import functools
import random
from typing import Any, Dict, List, Mapping, Sequence

from ..config import PrincipleConfig
from ..errors import ConfigError
from ..runtime.host import offline_hub

Spec = Dict[str, Any]  # a constraint as stored: {"id", "kwargs", "negate"}


@functools.cache
def registry() -> Mapping[str, type]:
    """IFEval's instruction id -> checker class (imported when first needed: lm_eval is
    heavy, and only verifiable principles and IFEval use it; once: every verdict asks)."""
    import langdetect

    offline_hub()
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    langdetect.DetectorFactory.seed = 0  # the case checkers' language detection, repeatable
    return INSTRUCTION_DICT


def checker(spec: Mapping[str, Any]):
    """The library's checker for a stored constraint, built with all its arguments."""
    inst = registry()[spec["id"]](spec["id"])
    inst.build_description(**spec["kwargs"])
    return inst


def holds(spec: Mapping[str, Any], response: str) -> bool:
    """Whether `response` satisfies the constraint (the checker's verdict, or its negation)."""
    return bool(checker(spec).check_following(response)) != bool(spec.get("negate", False))


def draw_value(rule: Any, rng: random.Random) -> Any:
    """One argument: from a list, an integer range {low, high} or k items {sample, from}."""
    if isinstance(rule, Mapping) and "sample" in rule:
        return sorted(rng.sample(list(rule["from"]), int(rule["sample"])))
    if isinstance(rule, Mapping):
        return rng.randint(int(rule["low"]), int(rule["high"]))
    return rng.choice(list(rule))


def fill(kwargs: Mapping[str, Any], drawn: Mapping[str, Any]) -> Dict[str, Any]:
    """The constraint's arguments with each "$name" replaced by its drawn value."""
    return {
        k: drawn[v[1:]] if isinstance(v, str) and v.startswith("$") else v
        for k, v in kwargs.items()
    }


def side(constraint, drawn: Mapping[str, Any]) -> Spec:
    return {
        "id": constraint.id,
        "kwargs": fill(constraint.kwargs, drawn),
        "negate": constraint.negate,
    }


def describe(constraint, spec: Spec, drawn: Mapping[str, Any]) -> str:
    """The principle's text: the option's own, else the checker's description."""
    if constraint.text is not None:
        return constraint.text.format(**{k: render(v) for k, v in drawn.items()})
    return checker(spec).build_description(**spec["kwargs"])


def render(value: Any) -> str:
    """A drawn argument in prose: lists as 'a' and 'b'."""
    if isinstance(value, list):
        return " and ".join(f"'{v}'" for v in value)
    return str(value)


def draw_constraints(cfg: PrincipleConfig, rng: random.Random) -> List[Dict[str, Any]]:
    """`num_features` families and their arguments for one query, from its stream: per
    family its name, the good and bad constraints and both principles' texts."""
    chosen = rng.sample(range(len(cfg.verifiable)), cfg.num_features)
    out = []
    for index in sorted(chosen):
        family = cfg.verifiable[index]
        drawn = {name: draw_value(rule, rng) for name, rule in sorted(family.draw.items())}
        good, bad = side(family.good_constraint, drawn), side(family.bad_constraint, drawn)
        out.append(
            {
                "family": family.name,
                "good": good,
                "bad": bad,
                "good_principle": describe(family.good_constraint, good, drawn),
                "bad_principle": describe(family.bad_constraint, bad, drawn),
            }
        )
    return out


def all_hold(specs: Sequence[Spec], response: str) -> bool:
    return all(holds(spec, response) for spec in specs)


def check_families(cfg: PrincipleConfig) -> None:
    """Start-up: every family's instructions are in IFEval's registry, take exactly the
    arguments given (a missing one would be drawn by the library's global random state) and
    accept the drawn values; the draw rules are well formed. One error names the key."""
    if not cfg.verifiable:
        return
    known = registry()
    for n, family in enumerate(cfg.verifiable):
        key = f"principle.verifiable[{n}]"
        drawn = {name: check_rule(rule, f"{key}.draw.{name}") for name, rule in family.draw.items()}
        for which in ("good_constraint", "bad_constraint"):
            check_constraint(getattr(family, which), drawn, known, f"{key}.{which}")


def check_rule(rule: Any, key: str) -> Any:
    """A draw rule's smallest value, after checking its shape and range."""
    try:
        if isinstance(rule, Mapping) and "sample" in rule:
            pool, k = list(rule["from"]), int(rule["sample"])
            if not 1 <= k <= len(set(pool)) or not all(isinstance(w, str) and w for w in pool):
                raise ValueError(f"needs 1 <= sample <= {len(set(pool))} distinct words")
            return sorted(pool[:k])
        if isinstance(rule, Mapping):
            low, high = int(rule["low"]), int(rule["high"])
            if not 1 <= low <= high:
                raise ValueError(f"needs 1 <= low <= high, got [{low}, {high}]")
            return low
        if isinstance(rule, Sequence) and not isinstance(rule, str) and len(rule):
            return list(rule)[0]
        raise ValueError("must be a non-empty list, {low, high} or {sample, from}")
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"config key '{key}': {err}") from None


def check_constraint(constraint, drawn: Mapping[str, Any], known: Mapping, key: str) -> None:
    if constraint.id not in known:
        raise ConfigError(
            f"config key '{key}.id': '{constraint.id}' is not an IFEval instruction; "
            f"known: {', '.join(sorted(known))}"
        )
    missing = [v[1:] for v in constraint.kwargs.values() if isinstance(v, str) and v[:1] == "$"]
    unknown = [name for name in missing if name not in drawn]
    if unknown:
        raise ConfigError(f"config key '{key}.kwargs': no draw rule for {unknown}")
    if constraint.negate and constraint.text is None:
        raise ConfigError(f"config key '{key}.text': a negated constraint needs its text")
    spec = side(constraint, drawn)
    negative = [k for k, v in spec["kwargs"].items() if isinstance(v, int) and v < 0]
    if negative:  # the library would draw these at random
        raise ConfigError(f"config key '{key}.kwargs': {negative} must be >= 0")
    try:
        inst = known[constraint.id](constraint.id)
        inst.build_description(**spec["kwargs"])
        wanted = set(inst.get_instruction_args_keys())
        if wanted != set(spec["kwargs"]):
            raise ValueError(f"takes the arguments {sorted(wanted)}, got {sorted(spec['kwargs'])}")
        if constraint.text is not None:
            constraint.text.format(**drawn)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"config key '{key}': {err}") from None
