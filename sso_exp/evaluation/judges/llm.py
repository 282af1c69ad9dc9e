"""An LLM as judge, MT-Bench style (Zheng et al. 2023, FastChat `llm_judge`): pairwise
preference with the verdict `[[A]]`, `[[B]]` or `[[C]]` (tie), and single-answer grading
`Rating: [[x]]` on a 1-10 scale. Any chat model behind `ChatBackend` can judge.

Pairs are judged in both orders because LLM judges favour a position; a reply that does
not parse is counted and yields no score rather than a guess."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

Message = Dict[str, str]

_IMPARTIAL = (
    "You are an impartial judge of AI assistants' answers. Be as objective as "
    "possible: ignore the answers' length, the assistants' names and, for several "
    "answers, the order in which they are shown. "
)

PAIR_SYSTEM = (
    _IMPARTIAL + "Given a user question and the answers of two assistants, decide which assistant "
    "follows the instructions and answers the question better, considering helpfulness, "
    "relevance, accuracy, depth, creativity and level of detail. First compare the two "
    "answers in a short explanation, then give your final verdict in exactly this format: "
    '"[[A]]" if assistant A is better, "[[B]]" if assistant B is better, "[[C]]" for a tie.'
)

RATE_SYSTEM = (
    _IMPARTIAL + "Given a conversation, grade the assistant's answer to the last user message, "
    "considering helpfulness, relevance, accuracy, depth, creativity and level of detail. "
    "First explain your assessment briefly, then rate the answer from 1 to 10 in exactly "
    'this format: "Rating: [[rating]]", for example "Rating: [[5]]".'
)

RATE_REFERENCE_SYSTEM = (
    RATE_SYSTEM + " A reference answer is given: judge correctness and helpfulness by "
    "comparing the assistant's answer with it, and point out any mistakes."
)

_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")

# P(first-shown answer is better) for each verdict.
_P_FIRST = {"A": 1.0, "B": 0.0, "C": 0.5}


class JudgeError(RuntimeError):
    """The judge could not be reached or refused the request; never holds secrets."""


class ChatBackend(Protocol):
    """Anything that answers a batch of chat conversations, one reply text each."""

    def complete(self, conversations: Sequence[List[Message]]) -> List[str]: ...


def parse_verdict(text: str) -> Optional[str]:
    """'A', 'B' or 'C' from the last `[[X]]` in `text` (a judge may quote the format
    before its verdict), else None."""
    found = _VERDICT.findall(text)
    return found[-1] if found else None


def parse_rating(text: str) -> Optional[float]:
    """The number in the last `[[x]]` of `text` if it lies in 1..10, else None."""
    found = _RATING.findall(text)
    if not found:
        return None
    value = float(found[-1])
    return value if 1.0 <= value <= 10.0 else None


def _block(title: str, text: str) -> str:
    return f"[The Start of {title}]\n{text}\n[The End of {title}]"


def pair_prompt(instruction: str, first: str, second: str) -> List[Message]:
    """The judge conversation comparing `first` (shown as A) with `second` (B)."""
    user = "\n\n".join(
        [
            f"[User Question]\n{instruction}",
            _block("Assistant A's Answer", first),
            _block("Assistant B's Answer", second),
        ]
    )
    return [{"role": "system", "content": PAIR_SYSTEM}, {"role": "user", "content": user}]


def rate_prompt(conversation: Sequence[Message], reference: Optional[str]) -> List[Message]:
    """The judge conversation grading the last (assistant) message of `conversation`."""
    if not conversation or conversation[-1]["role"] != "assistant":
        raise ValueError("rate: each conversation must end with the assistant answer to grade")
    history = "\n\n".join(
        f"### {m['role'].capitalize()}:\n{m['content']}" for m in conversation[:-1]
    )
    parts = [f"[Conversation]\n{history}"]
    if reference is not None:
        parts.append(_block("Reference Answer", reference))
    parts.append(_block("Assistant's Answer", conversation[-1]["content"]))
    system = RATE_SYSTEM if reference is None else RATE_REFERENCE_SYSTEM
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _p_a(verdict: Optional[str], swapped: bool) -> Optional[float]:
    """P(answer a is better) from one verdict; in the swapped order a was shown as B."""
    if verdict is None:
        return None
    return 1.0 - _P_FIRST[verdict] if swapped else _P_FIRST[verdict]


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


class LLMJudge:
    """MT-Bench-style judgements from any `ChatBackend`; `calls` counts judge requests and
    `unparsed` the replies without a well-formed verdict or rating, for reporting."""

    def __init__(self, backend: ChatBackend):
        self.backend = backend
        self.calls = 0
        self.unparsed = 0

    def _ask(self, conversations: List[List[Message]]) -> List[str]:
        replies = self.backend.complete(conversations)
        if len(replies) != len(conversations):
            raise JudgeError(
                f"backend returned {len(replies)} replies for {len(conversations)} conversations"
            )
        self.calls += len(conversations)
        return replies

    def _count_unparsed(self, parsed: Sequence[Optional[object]]) -> None:
        self.unparsed += sum(p is None for p in parsed)

    def prefer(self, items: Sequence[Tuple[str, str, str]]) -> List[Optional[float]]:
        """P(answer_a is better) per (instruction, answer_a, answer_b): the mean over both
        presentation orders of 1 / 0.5 / 0, from the order(s) whose reply parsed; None if
        neither did."""
        conversations = [pair_prompt(q, *order) for q, a, b in items for order in ((a, b), (b, a))]
        verdicts = [parse_verdict(r) for r in self._ask(conversations)]
        self._count_unparsed(verdicts)
        p_a = [_p_a(v, swapped=i % 2 == 1) for i, v in enumerate(verdicts)]
        return [_mean(p_a[i : i + 2]) for i in range(0, len(p_a), 2)]

    def rate(self, items: Sequence[Tuple[List[Message], Optional[str]]]) -> List[Optional[float]]:
        """A 1-10 grade per (conversation ending with the answer to grade, optional
        reference answer); None where the reply holds no valid rating."""
        ratings = [
            parse_rating(r) for r in self._ask([rate_prompt(conv, ref) for conv, ref in items])
        ]
        self._count_unparsed(ratings)
        return ratings
