"""Which differences between runs are outside the intervals: for each final metric that two
runs logged with its standard error, the difference, its 95% interval and whether the
interval excludes zero, alone and after Holm's correction for the number of comparisons
(a sweep of many runs compares many pairs, and some differ at 95% by chance)."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Dict, List, Optional, Sequence

from ..evaluation.accuracy import Z95

Series = Dict[str, Dict[int, float]]  # metric -> iteration -> value, for one run
ALPHA = 0.05


def final_value(series: Series, metric: str) -> Optional[float]:
    """The metric's value at the last iteration the run logged it (None: never logged)."""
    values = series.get(metric)
    return values[max(values)] if values else None


def differences(
    names: Sequence[str], series: Sequence[Series], metrics: Sequence[str]
) -> List[Dict[str, object]]:
    """One row per (metric, pair of runs) where both logged the metric's final value and its
    standard error: a - b, the 95% interval's half-width sqrt(se_a^2 + se_b^2) * 1.96 (the
    runs are independent samples), the two-sided p of a normal test, and the verdicts."""
    rows: List[Dict[str, object]] = []
    for metric in metrics:
        for (na, a), (nb, b) in combinations(zip(names, series), 2):
            va, vb = final_value(a, metric), final_value(b, metric)
            sa, sb = final_value(a, f"{metric}_se"), final_value(b, f"{metric}_se")
            if None in (va, vb, sa, sb) or math.isnan(sa) or math.isnan(sb):
                continue
            se = math.hypot(sa, sb)
            diff = va - vb
            p = math.erfc(abs(diff) / se / math.sqrt(2)) if se > 0 else float(diff == 0)
            rows.append(
                {"metric": metric, "a": na, "b": nb, "a - b": diff, "±95%": Z95 * se, "p": p}
            )
    for row, holm in zip(rows, holm_rejects([r["p"] for r in rows])):
        row["outside 95%"] = "yes" if row["p"] < ALPHA else "no"
        row["after Holm"] = "yes" if holm else "no"
    return rows


def holm_rejects(pvalues: Sequence[float], alpha: float = ALPHA) -> List[bool]:
    """Holm's step-down: the k-th smallest p is tested at alpha / (m - k); testing stops at
    the first that fails. Keeps the chance of any false 'differs' under alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for k, i in enumerate(order):
        if pvalues[i] >= alpha / (len(pvalues) - k):
            break
        rejected[i] = True
    return rejected
