"""Intervals: accuracy with a 95% Wilson score interval (honest at small n and near 0 or 1,
where the normal approximation leaves [0, 1]), and the standard error of a mean over items,
which the summaries show as mean ± 1.96 SE."""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> Tuple[float, float]:
    if n == 0:
        raise ValueError("no items to compute an accuracy interval from")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # none or all correct: the interval ends at the share itself (exactly, not by a rounding)
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    return low, 1.0 if correct == n else min(1.0, centre + half)


def accuracy_metrics(prefix: str, hits: Sequence[bool]) -> Dict[str, float]:
    """`{prefix}/accuracy`, its 95% interval and n, accuracies as fractions."""
    low, high = wilson_interval(sum(hits), len(hits))
    return {
        f"{prefix}/accuracy": sum(hits) / len(hits),
        f"{prefix}/accuracy_ci_low": low,
        f"{prefix}/accuracy_ci_high": high,
        f"{prefix}/n": len(hits),
    }


def percent_share(key: str, hits: Sequence[bool], se: Optional[float] = None) -> Dict[str, float]:
    """`key`: the share of hits in percent, with its standard error (binomial unless the
    caller has one, e.g. a benchmark harness's own) and its Wilson 95% interval
    (`_se`, `_ci_low`, `_ci_high`)."""
    n, k = len(hits), sum(hits)
    p = k / n
    low, high = wilson_interval(k, n)
    return {
        key: 100 * p,
        f"{key}_se": 100 * (math.sqrt(p * (1 - p) / n) if se is None else se),
        f"{key}_ci_low": 100 * low,
        f"{key}_ci_high": 100 * high,
    }


def mean_and_se(values: torch.Tensor) -> Tuple[float, float]:
    """The mean over items and its standard error (NaN for fewer than two items)."""
    values = values.double()
    se = values.std() / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return float(values.mean()), float(se)
