"""MT-Bench's judge prompts as FastChat's `llm_judge` runs them, read from a prompts file in
FastChat's format (one JSON object per line with `name`, `system_prompt` and
`prompt_template`; docs/data.md says where the benchmark's own comes from). Single-answer
grading uses four of them: `single-v1` and `single-math-v1` (a reference answer) for turn
1, and their `-multi-turn` forms for turn 2, which show the whole conversation and both
reference turns and grade the second answer. The templates are filled as FastChat fills
them (`str.format` with its field names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import DataError
from .judges.llm import Message

NAMES = ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn")
FIELDS = ("system_prompt", "prompt_template")


class FastChatPrompts:
    """`prompt(conversation, references)` for `LLMJudge.rate`: the judge conversation for
    the last answer of a one- or two-turn `conversation`, with the reference answers of
    its turns (None: graded without)."""

    def __init__(self, path: str | Path):
        self.path = path
        self.prompts: Dict[str, Dict[str, str]] = {}
        for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            try:
                obj = json.loads(line) if line.strip() else {}
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: not JSON ({err.msg})") from None
            if obj.get("name") in NAMES:
                if not all(isinstance(obj.get(k), str) for k in FIELDS):
                    raise DataError(f"{path}:{lineno}: needs {' and '.join(map(repr, FIELDS))}")
                self.prompts[obj["name"]] = obj
        missing = [n for n in NAMES if n not in self.prompts]
        if missing:
            raise DataError(
                f"{path}: no judge prompt named {', '.join(missing)} (FastChat's "
                "llm_judge/data/judge_prompts.jsonl has them)"
            )

    def __call__(
        self, conversation: Sequence[Message], references: Optional[Sequence[str]]
    ) -> List[Message]:
        turns = len(conversation) // 2
        if turns not in (1, 2) or len(conversation) != 2 * turns:
            raise ValueError(f"{self.path}: FastChat grades one or two turns, not {conversation!r}")
        questions = [m["content"] for m in conversation[0::2]]
        answers = [m["content"] for m in conversation[1::2]]
        name = "single-math-v1" if references else "single-v1"
        if turns == 1:
            fields = {"question": questions[0], "answer": answers[0]}
        else:
            name += "-multi-turn"
            fields = {f"question_{k + 1}": q for k, q in enumerate(questions)}
            fields.update({f"answer_{k + 1}": a for k, a in enumerate(answers)})
        fields.update({f"ref_answer_{k + 1}": r for k, r in enumerate(references or [])})
        p = self.prompts[name]
        try:
            user = p["prompt_template"].format(**fields)
        except (KeyError, IndexError) as err:
            raise DataError(f"{self.path}: {name}'s template asks for {err}") from None
        return [
            {"role": "system", "content": p["system_prompt"]},
            {"role": "user", "content": user},
        ]
