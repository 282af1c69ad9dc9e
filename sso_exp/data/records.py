"""Queries in, SSO records out: prompt files, and the authors' record format
(`instruction, idx, history, p_system, n_system, system, chosen, rejected, raw`) read and
written unchanged, so data moves between sso-exp and the authors' code."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from ..distributed import is_main
from ..errors import DataError

RECORD_FIELDS = (
    "instruction",
    "idx",
    "history",
    "p_system",
    "n_system",
    "system",
    "chosen",
    "rejected",
    "raw",
)


def _utf8(path: Path, lineno: int, raw: bytes) -> str:
    """The text of `raw` (from line `lineno` on); a file in another encoding (UTF-16, binary)
    is named with the line and column of its first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = lineno + raw.count(b"\n", 0, err.start)
        column = err.start - raw.rfind(b"\n", 0, err.start)
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {column}); "
            "save the file as UTF-8"
        ) from None


def read_jsonl(path: str | Path) -> Iterator[Tuple[int, dict]]:
    """(line number, object) for each non-blank line; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: " + ("not a regular file" if path.exists() else "file not found"))
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = _utf8(path, lineno, raw)
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


def make_record(
    instruction: str, p_system: str, n_system: str, chosen: str, rejected: str, raw: str
) -> Dict:
    """A record in the authors' format (`system` empty: y0 is sampled without one)."""
    idx = hashlib.sha256(instruction.encode("utf-8")).hexdigest()
    return {
        "instruction": instruction,
        "idx": idx,
        "history": [],
        "p_system": p_system,
        "n_system": n_system,
        "system": "",
        "chosen": chosen,
        "rejected": rejected,
        "raw": raw,
    }


def write_jsonl(rows: Iterable[Dict], path: Path) -> None:
    """Write atomically, so an interrupted run never leaves half a file; rank 0 alone
    writes (every rank holds the same rows)."""
    if not is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_records(path: str | Path) -> List[Dict]:
    """SSO records from JSONL, or from a JSON file holding one record or a list of them
    (the authors' `example_online.json`); fields beyond the format's are kept as they are."""
    path = Path(path)
    if path.suffix == ".json":
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        try:
            data = json.loads(_utf8(path, 1, path.read_bytes()))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
        rows = list(enumerate(data if isinstance(data, list) else [data], 1))
    else:
        rows = list(read_jsonl(path))
    for where, rec in rows:
        missing = [
            k
            for k in ("instruction", "p_system", "n_system", "chosen", "rejected", "raw")
            if not isinstance(rec.get(k), str)
        ]
        if missing:
            raise DataError(f"{path}:{where}: record lacks the text fields {missing}")
    if not rows:
        raise DataError(f"{path}: no records")
    return [rec for _, rec in rows]


def read_csv_rows(path: str | Path) -> int:
    """The number of data rows of a CSV file with a header; errors name the file and line."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header, rows = next(reader, None), sum(1 for _ in reader)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: not CSV ({err})") from None
    if not header or rows == 0:
        raise DataError(f"{path}: a CSV file needs a header row and at least one data row")
    return rows
