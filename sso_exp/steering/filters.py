"""Which sampled triples become training pairs (docs/algorithm.md §3).

The string filter drops echoed labels, identical and too-short answers. The optional
log-prob filter keeps a pair only when each prompt moves each response the right way, both
responses are near on-policy, and the steering gap is clear."""

from __future__ import annotations

import re
from collections import Counter
from typing import Dict, Iterable, List, Optional, Tuple

from torch import Tensor

from ..data.pairs import SeqLogps

# The model may echo a label such as "Response:" or "### Assistant Response:".
_LABEL = re.compile(r"^\s*(?:#+\s*)?(?:[A-Za-z]+\s+){0,2}response\s*:\s*", re.IGNORECASE)
STRING_RULES = ("short", "chosen_eq_rejected", "rejected_eq_raw", "chosen_eq_raw")
LOGPROB_RULES = ("logprob_order", "logprob_offpolicy", "logprob_gap")
# sequences the log-prob filter scores: y+ and y- under x (o), p+ (p) and p- (n)
LOGPROB_SEQUENCES = (
    "main_chosen",
    "main_rejected",
    "p_chosen",
    "p_rejected",
    "n_rejected",
    "pminus_yminus",
)


def strip_label(text: str) -> str:
    return _LABEL.sub("", text, count=1).strip()


def drop_reason(chosen: str, rejected: str, raw: str, min_chars: int) -> Optional[str]:
    """Why the string filter drops a triple, or None to keep it."""
    if min(len(chosen), len(rejected), len(raw)) < min_chars:
        return "short"
    if chosen == rejected:
        return "chosen_eq_rejected"
    if rejected == raw:
        return "rejected_eq_raw"
    if chosen == raw:
        return "chosen_eq_raw"
    return None


def string_filter(records: Iterable[Dict], min_chars: int) -> Tuple[List[Dict], Counter]:
    """Records with labels stripped that pass the filter, and the drop count per rule."""
    kept, drops = [], Counter()
    for rec in records:
        rec = {**rec, **{k: strip_label(rec[k]) for k in ("chosen", "rejected", "raw")}}
        reason = drop_reason(rec["chosen"], rec["rejected"], rec["raw"], min_chars)
        if reason:
            drops[reason] += 1
        else:
            kept.append(rec)
    return kept, drops


def logprob_filter(scores: Dict[str, SeqLogps]) -> Tuple[Tensor, Counter]:
    """Keep-mask over records and drops per rule (first failed rule), from token-averaged
    log-probs, as the SSO authors' filter decides: the order p_c > o_c > n_c and
    n_r > o_r > p_r; then o_c and o_r at least their means over the records in order; then
    p_c - n_c and n_r - p_r above their means over the records that passed both."""
    o_c, o_r = scores["main_chosen"].mean, scores["main_rejected"].mean
    p_c, p_r = scores["p_chosen"].mean, scores["p_rejected"].mean
    n_c, n_r = scores["n_rejected"].mean, scores["pminus_yminus"].mean
    order = (p_c > o_c) & (o_c > n_c) & (n_r > o_r) & (o_r > p_r)
    on_policy = order & (o_c >= o_c[order].mean()) & (o_r >= o_r[order].mean())
    gap_c, gap_r = p_c - n_c, n_r - p_r
    keep = on_policy & (gap_c > gap_c[on_policy].mean()) & (gap_r > gap_r[on_policy].mean())
    drops = Counter(
        {
            "logprob_order": int((~order).sum()),
            "logprob_offpolicy": int((order & ~on_policy).sum()),
            "logprob_gap": int((on_policy & ~keep).sum()),
        }
    )
    return keep, +drops
