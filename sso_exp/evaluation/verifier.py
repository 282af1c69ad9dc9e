"""The signal judged by the checker (`eval/judge=verifier`): pairs written under verifiable
principles carry their constraints, and IFEval's checker says of each answer whether it
satisfies the good and the bad constraint. A pair's signal is accurate when y+ satisfies the
good constraint and y- does not; y0 (no principles) shows how often the policy does either
unasked. Shares in percent, each with its binomial SE and a Wilson 95% interval, overall and
per constraint family; with an LLM judge, its agreement with the checker on the same pairs."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..errors import DataError
from ..steering.verifiable import all_hold
from .accuracy import percent_share, wilson_interval

ANSWERS = {"chosen": "y+", "rejected": "y-", "raw": "y0"}


class Verifier:
    """A judge that needs no model: the checker itself (pairs only)."""


def verifier_judge(policy, tok, model_cfg) -> Verifier:
    """What eval/judge=verifier builds; the policy plays no part."""
    return Verifier()


def constraints_of(records: Sequence[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
    """Each record's constraints; a record without them cannot be verified."""
    out = []
    for n, rec in enumerate(records, 1):
        cons = rec.get("constraints")
        if not (isinstance(cons, list) and cons and all(isinstance(c, dict) for c in cons)):
            raise DataError(
                f"record {n}: no 'constraints' to verify (pairs written with principle=verifiable "
                "carry them)"
            )
        out.append(cons)
    return out


def answer_verdicts(rec: Dict[str, Any], cons: Sequence[Dict[str, Any]]) -> Dict[str, bool]:
    """Per answer whether it satisfies all good constraints (`<answer>_good`) and all bad
    ones (`<answer>_bad`)."""
    good, bad = [c["good"] for c in cons], [c["bad"] for c in cons]
    out = {}
    for answer in ANSWERS:
        out[f"{answer}_good"] = all_hold(good, rec[answer])
        out[f"{answer}_bad"] = all_hold(bad, rec[answer])
    return out


def outcomes(v: Dict[str, bool]) -> Dict[str, bool]:
    """The figures of one pair: the main pair's signal (the p pair holds the same answers
    under p+, so its verdict is the same), the n pair's (y0 over y+ under p-), each answer's."""
    return {
        "verified_accuracy": v["chosen_good"] and not v["rejected_good"],
        "chosen_follows": v["chosen_good"],
        "rejected_violates": not v["rejected_good"],
        "rejected_follows_bad": v["rejected_bad"],
        "raw_follows": v["raw_good"],
        "raw_follows_bad": v["raw_bad"],
        "n_accuracy": v["raw_bad"] and not v["chosen_bad"],
    }


def verified_metrics(rows: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    """Every outcome overall and per family (a record counts for each family it draws)."""
    metrics: Dict[str, float] = {"signal/verified_n": float(len(rows))}
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        for family in row["families"]:
            groups.setdefault(family, []).append(row)
    for prefix, group in [("signal", rows)] + [
        (f"signal/family/{f}", g) for f, g in sorted(groups.items())
    ]:
        if prefix != "signal":
            metrics[f"{prefix}/n"] = float(len(group))
        for name in group[0]["outcomes"]:
            metrics.update(percent_share(f"{prefix}/{name}", [r["outcomes"][name] for r in group]))
    return metrics


def verify(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per pair: the texts, the constraints and the checker's verdicts."""
    rows = []
    for rec, cons in zip(records, constraints_of(records)):
        verdicts = answer_verdicts(rec, cons)
        rows.append(
            {
                "instruction": rec["instruction"],
                **{answer: rec[answer] for answer in ANSWERS},
                "families": [c["family"] for c in cons],
                "constraints": cons,
                "verdicts": verdicts,
                "outcomes": outcomes(verdicts),
            }
        )
    return rows


def agreement(prefs: Sequence[Optional[float]], rows: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    """How often an LLM judge prefers the answer the checker prefers, over the pairs where
    exactly one of y+ and y- satisfies the good constraint (a tie counting half; pairs the
    judge could not tell or the checker does not order are left out)."""
    hits = []
    for p, row in zip(prefs, rows):
        v = row["verdicts"]
        if p is None or v["chosen_good"] == v["rejected_good"]:
            continue
        hits.append(p if v["chosen_good"] else 1 - p)
    metrics = {"signal/judge_agreement_n": float(len(hits))}
    if hits:
        k = sum(hits)
        low, high = wilson_interval(round(k), len(hits))
        metrics["signal/judge_agreement"] = 100 * k / len(hits)
        metrics["signal/judge_agreement_ci_low"] = 100 * low
        metrics["signal/judge_agreement_ci_high"] = 100 * high
    return metrics
