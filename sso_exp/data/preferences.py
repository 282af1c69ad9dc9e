"""Preference pairs for reward models: SSO records (y+ > y- under the plain query) and
human-labelled pairs, either Anthropic HH-RLHF transcripts ("\\n\\nHuman: ...\\n\\nAssistant:
...") or rows with prompt/chosen/rejected. Pairs whose two answers are equal are skipped and
counted, never trained or scored."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import DataError
from .records import make_record, read_jsonl, read_records

log = logging.getLogger(__name__)
Messages = List[Dict[str, str]]
_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
_LAST_ANSWER = "\n\nAssistant:"


@dataclass(frozen=True)
class PrefPair:
    prompt: Messages  # the conversation before the answers
    chosen: str
    rejected: str
    subset: str = "all"


def parse_transcript(text: str) -> Messages:
    """An HH-RLHF transcript as chat messages."""
    parts = _TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise ValueError("not a '\\n\\nHuman: ... \\n\\nAssistant: ...' transcript")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[r], "content": c.strip()} for r, c in zip(parts[1::2], parts[2::2])]


def _split_last_answer(text: str) -> Tuple[str, str]:
    cut = text.rfind(_LAST_ANSWER)
    if cut < 0:
        raise ValueError("the transcript has no '\n\nAssistant:' answer")
    return text[:cut], text[cut + len(_LAST_ANSWER) :].strip()


def _from_transcripts(chosen: str, rejected: str) -> Tuple[Messages, str, str]:
    """The conversation before chosen's last answer, and the two last answers (answers
    may themselves hold blank lines, so only the last 'Assistant:' marker splits)."""
    prompt, chosen_answer = _split_last_answer(chosen)
    return parse_transcript(prompt), chosen_answer, _split_last_answer(rejected)[1]


def read_pairs(path: str | Path, limit: Optional[int] = None) -> Tuple[List[PrefPair], int]:
    """Human-labelled pairs and how many were skipped because chosen == rejected."""
    pairs, skipped = [], 0
    for lineno, row in read_jsonl(path):
        if limit is not None and len(pairs) >= limit:
            break
        try:
            if "prompt" in row:
                prompt = [{"role": "user", "content": str(row["prompt"])}]
                chosen, rejected = str(row["chosen"]), str(row["rejected"])
            else:
                prompt, chosen, rejected = _from_transcripts(row["chosen"], row["rejected"])
        except KeyError as err:
            raise DataError(f"{path}:{lineno}: not a preference pair (no field {err})") from None
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}:{lineno}: not a preference pair ({err})") from None
        if chosen.strip() == rejected.strip():
            skipped += 1
            continue
        pairs.append(PrefPair(prompt, chosen, rejected, str(row.get("subset", "all"))))
    return pairs, skipped


def from_records(records: Sequence[Dict]) -> Tuple[List[PrefPair], int]:
    """SSO records as reward-model pairs: y+ preferred to y- for the plain query."""
    pairs = [
        PrefPair([{"role": "user", "content": r["instruction"]}], r["chosen"], r["rejected"], "sso")
        for r in records
        if r["chosen"].strip() != r["rejected"].strip()
    ]
    return pairs, len(records) - len(pairs)


def to_records(pairs: Sequence[PrefPair]) -> List[Dict]:
    """Human pairs as SSO records for policy training on the main pair: the last user turn
    is the instruction, the earlier turns its history as [user, assistant] pairs (the
    authors' format); there are no principles and no y0."""

    def history(msgs: Messages) -> List[List[str]]:
        return [[u["content"], a["content"]] for u, a in zip(msgs[0::2], msgs[1::2])]

    return [
        {
            **make_record(p.prompt[-1]["content"], "", "", p.chosen, p.rejected, ""),
            "history": history(p.prompt[:-1]),
        }
        for p in pairs
    ]


def without_empty(path: Path, records: List[Dict]) -> List[Dict]:
    """The pairs whose two answers both hold text: an empty one teaches nothing true (an
    empty y+ would be trained up). The others are dropped with a warning naming the first;
    none left is refused."""
    empty = [
        n for n, r in enumerate(records, 1) if not (r["chosen"].strip() and r["rejected"].strip())
    ]
    if empty:
        log.warning(
            "%s: skipping %d pairs with an empty chosen or rejected answer (the first is "
            "pair %d of the file)", path, len(empty), empty[0],
        )  # fmt: skip
    if records and len(empty) == len(records):
        raise DataError(f"{path}: every pair has an empty chosen or rejected answer")
    dropped = set(empty)
    return [r for n, r in enumerate(records, 1) if n not in dropped]


def read_training_pairs(path: str | Path, equal: str = "drop") -> List[Dict]:
    """SSO records (the authors' format) or human pairs as records, without the pairs
    whose two answers are equal (they teach nothing and score as misses): dropped with a
    warning counting them (`equal=drop`) or refused (`refuse`); a file of nothing else is
    refused either way."""
    path = Path(path)
    first = next(read_jsonl(path), (0, {}))[1] if path.suffix != ".json" else {"p_system": ""}
    if "p_system" in first:
        records = without_empty(path, read_records(path))
        kept = [r for r in records if r["chosen"].strip() != r["rejected"].strip()]
        equal_rows = len(records) - len(kept)
    else:
        pairs, equal_rows = read_pairs(path)
        kept = without_empty(path, to_records(pairs))
    if equal_rows and (equal == "refuse" or not kept):
        raise DataError(
            f"{path}: {equal_rows} of {equal_rows + len(kept)} pairs have chosen == rejected"
            + (
                "; nothing is left to train on"
                if not kept
                else " (config key 'data.equal_pairs': drop skips them)"
            )
        )
    if equal_rows:
        log.warning("%s: skipping %d pairs with chosen == rejected", path, equal_rows)
    if not kept:
        raise DataError(f"{path}: no preference pairs")
    return kept
