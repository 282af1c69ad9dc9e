"""Accuracy with a 95% Wilson score interval: honest at small n and near 0 or 1, where the
normal approximation leaves [0, 1]."""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> Tuple[float, float]:
    if n == 0:
        raise ValueError("no items to compute an accuracy interval from")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_metrics(prefix: str, hits: Sequence[bool]) -> Dict[str, float]:
    """`{prefix}/accuracy`, its 95% interval and n, accuracies as fractions."""
    low, high = wilson_interval(sum(hits), len(hits))
    return {
        f"{prefix}/accuracy": sum(hits) / len(hits),
        f"{prefix}/accuracy_ci_low": low,
        f"{prefix}/accuracy_ci_high": high,
        f"{prefix}/n": len(hits),
    }
