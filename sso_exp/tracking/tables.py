"""Markdown tables: the one writer, used by the end-of-run summary (one row per iteration)
and the comparison report (one row per run)."""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

from ..evaluation.accuracy import Z95


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns, so numbers line up; "|" in a cell is escaped."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---:" for _ in header) + "|", *map(line, rows)])


Column = Tuple[str, str, str]  # (header, row key, format)
COLUMNS: Sequence[Column] = (
    ("iter", "iteration", "{:d}"),
    ("generated", "pairs/generated", "{:d}"),
    ("kept", "pairs/kept", "{:d}"),
    ("drop %", "pairs/drop_rate", "{:.0%}"),
    ("len y+", "length/chosen", "{:.0f}"),
    ("len y-", "length/rejected", "{:.0f}"),
    ("len y0", "length/raw", "{:.0f}"),
    ("onpol y+", "onpolicy/chosen", "{:.3f}"),
    ("onpol y-", "onpolicy/rejected", "{:.3f}"),
    ("onpol y0", "onpolicy/raw", "{:.3f}"),
    ("y+ - y0", "onpolicy/chosen_minus_raw", "{:.3f}"),
    ("y- - y0", "onpolicy/rejected_minus_raw", "{:.3f}"),
    ("loss", "train/loss", "{:.4f}"),
    ("acc main", "train/rewards/accuracies", "{:.2f}"),
    ("acc p", "train/p_rewards/accuracies", "{:.2f}"),
    ("acc n", "train/n_rewards/accuracies", "{:.2f}"),
    ("acc after", "after/accuracy", "{:.2f}"),
    ("margin after", "after/margin", "{:.2f}"),
    ("W", "train/w/mean", "{:.3f}"),
    ("signal acc", "signal/accuracy", "{:.1f}"),
    ("verified signal", "signal/verified_accuracy", "{:.1f}"),
    ("IFEval strict", "ifeval/prompt_level_strict_acc", "{:.1f}"),
)


def _cell(row: Dict[str, float], key: str, fmt: str) -> str:
    """The value, and ± its 95% half-width when the row holds its standard error."""
    if key not in row:
        return "-"
    value = row[key]
    text = fmt.format(int(value) if fmt == "{:d}" else value)
    se = row.get(f"{key}_se", math.nan)
    return text if math.isnan(se) else f"{text} ± {fmt.format(Z95 * se)}"


def summary_table(rows: List[Dict[str, float]], columns: Sequence[Column] = COLUMNS) -> str:
    """The policy columns by default: lengths in tokens; onpol, the mean token log-prob of
    the response under pi(.|x) before the iteration's training, and y+'s and y-'s against
    y0 of the same query; acc and margin after, what
    the trained policy prefers on the pairs it was trained on; a figure measured over
    queries shows ± its 95% interval (1.96 standard errors)."""
    return markdown_table(
        [h for h, _, _ in columns], [[_cell(r, k, f) for _, k, f in columns] for r in rows]
    )
