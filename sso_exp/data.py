"""Queries in, SSO records out: reading prompt files, the string filter, and the authors'
record format (`instruction, idx, history, p_system, n_system, system, chosen, rejected,
raw`), so data moves between sso-exp and the authors' code unchanged."""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from .config import SSOError

RECORD_FIELDS = ("instruction", "idx", "history", "p_system", "n_system", "system",
                 "chosen", "rejected", "raw")
# The model may echo a label such as "Response:" or "### Assistant Response:".
_LABEL = re.compile(r"^\s*(?:#+\s*)?(?:[A-Za-z]+\s+){0,2}response\s*:\s*", re.IGNORECASE)


class DataError(SSOError, ValueError):
    """Bad input data; the message names file and line."""


def read_jsonl(path: str | Path) -> Iterator[Tuple[int, dict]]:
    """(line number, object) for each non-blank line; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def demo_queries_path() -> Path:
    return Path(str(resources.files("sso_exp") / "resources" / "demo_queries.jsonl"))


def load_prompts(path: Optional[str]) -> List[str]:
    """Prompts from a JSONL file (field `prompt` or `instruction`), or the demo queries."""
    path = Path(path) if path else demo_queries_path()
    prompts = []
    for lineno, obj in read_jsonl(path):
        text = obj.get("prompt", obj.get("instruction"))
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{lineno}: no 'prompt' or 'instruction' text field")
        prompts.append(text.strip())
    if not prompts:
        raise DataError(f"{path}: no prompts")
    return prompts


def strip_label(text: str) -> str:
    return _LABEL.sub("", text, count=1).strip()


def drop_reason(chosen: str, rejected: str, raw: str, min_chars: int) -> Optional[str]:
    """Why DESIGN.md's string filter drops a triple, or None to keep it."""
    if min(len(chosen), len(rejected), len(raw)) < min_chars:
        return "short"
    if chosen == rejected:
        return "chosen_eq_rejected"
    if rejected == raw:
        return "rejected_eq_raw"
    if chosen == raw:
        return "chosen_eq_raw"
    return None


def make_record(instruction: str, p_system: str, n_system: str, chosen: str, rejected: str,
                raw: str) -> Dict:
    """A record in the authors' format (`system` empty: y0 is sampled without one)."""
    idx = hashlib.sha256(instruction.encode("utf-8")).hexdigest()
    return {"instruction": instruction, "idx": idx, "history": [], "p_system": p_system,
            "n_system": n_system, "system": "", "chosen": chosen, "rejected": rejected,
            "raw": raw}


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


def write_jsonl(rows: Iterable[Dict], path: Path) -> None:
    """Write atomically, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
