"""An LLM as judge, MT-Bench style (Zheng et al. 2023, FastChat `llm_judge`): pairwise
preference with the verdict `[[A]]`, `[[B]]` or `[[C]]` (tie), and single-answer grading
`Rating: [[x]]` on a 1-10 scale. Any chat model behind `ChatBackend` can judge.

Pairs are judged in both orders because LLM judges favour a position; a reply that does
not parse is counted and yields no score rather than a guess."""

from __future__ import annotations

import random
import re
from importlib import resources
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

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
# FastChat's single-answer rating patterns (`run_judge_single`): `[[x]]`, else `[x]`, no
# spaces inside the brackets.
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

# P(first-shown answer is better) for each verdict.
_P_FIRST = {"A": 1.0, "B": 0.0, "C": 0.5}


# AlpacaEval 2.0's weighted annotator (`weighted_alpaca_eval_gpt4_turbo` in the alpaca_eval
# package): its prompt, one answer named "m" and the other "M", the preference read from the
# two tokens' probabilities for the first reply token.
ALPACA_TEMPLATE = "evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"
ALPACA_TOKENS = ("m", "M")


class JudgeError(RuntimeError):
    """The judge could not be reached or refused the request; never holds secrets."""


class ChatBackend(Protocol):
    """Anything that answers a batch of chat conversations, one reply text each."""

    def complete(
        self, conversations: Sequence[List[Message]], max_new_tokens: Optional[int] = None
    ) -> List[str]:
        """A reply per conversation, at most `max_new_tokens` long (None: the backend's own
        budget)."""
        ...

    def first_token_share(
        self, conversations: Sequence[List[Message]], tokens: Tuple[str, str]
    ) -> List[Optional[float]]:
        """P(tokens[0]) / (P(tokens[0]) + P(tokens[1])) for each reply's first token, None
        where the backend cannot tell (neither among the probabilities it returns)."""
        ...


def parse_verdict(text: str) -> Optional[str]:
    """'A', 'B' or 'C' from the last `[[X]]` in `text` (a judge may quote the format
    before its verdict), else None."""
    found = _VERDICT.findall(text)
    return found[-1] if found else None


def parse_rating(text: str) -> Optional[float]:
    """The number in the first `[[x]]` of `text`, else in its first `[x]`, else None (a
    failed judgment, FastChat's -1). This is FastChat's rule exactly, so that MT-Bench scores
    compare with published ones: the first match wins even where the judge quotes the format
    first, and there is no 1-10 check (`[[11]]` is 11)."""
    found = _RATING.search(text) or _RATING_BACKUP.search(text)
    return float(found.group(1)) if found else None


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


def rate_prompt(
    conversation: Sequence[Message], references: Optional[Sequence[str]]
) -> List[Message]:
    """The judge conversation grading the last (assistant) message of `conversation`, with
    the reference answers of its user turns (the last one's alone in a one-turn one)."""
    if not conversation or conversation[-1]["role"] != "assistant":
        raise ValueError("rate: each conversation must end with the assistant answer to grade")
    history = "\n\n".join(
        f"### {m['role'].capitalize()}:\n{m['content']}" for m in conversation[:-1]
    )
    parts = [f"[Conversation]\n{history}"]
    for k, reference in enumerate(references or []):
        name = "Reference Answer" if len(references) == 1 else f"Reference Answer to Turn {k + 1}"
        parts.append(_block(name, reference))
    parts.append(_block("Assistant's Answer", conversation[-1]["content"]))
    system = RATE_REFERENCE_SYSTEM if references else RATE_SYSTEM
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def alpaca_prompt(instruction: str, output_1: str, output_2: str) -> List[Message]:
    """AlpacaEval 2.0's annotator conversation, from the template the package ships; the
    template is filled by plain replacement (its JSON-like layout holds other braces)."""
    from alpaca_eval.utils import prompt_to_chatml

    text = (resources.files("alpaca_eval") / ALPACA_TEMPLATE).read_text(encoding="utf-8")
    for key, value in (
        ("instruction", instruction),
        ("output_1", output_1),
        ("output_2", output_2),
    ):
        text = text.replace("{" + key + "}", value)
    return [{"role": m["role"], "content": m["content"]} for m in prompt_to_chatml(text)]


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

    def _ask(
        self, conversations: List[List[Message]], max_new_tokens: Optional[int] = None
    ) -> List[str]:
        replies = self.backend.complete(conversations, max_new_tokens)
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

    def prefer_weighted(
        self, items: Sequence[Tuple[str, str, str]], seed: int = 0
    ) -> List[Optional[float]]:
        """P(answer_a is better) per (instruction, answer_a, answer_b) as AlpacaEval 2.0
        asks its weighted annotator: once per item, the two answers in a random order (item
        i's from `seed` and i), the preference the share of "m" (the first shown) in the
        first reply token's probability. A local judge always answers; None only where an
        endpoint's top log-probs hold neither token."""
        first_is_a = [random.Random(f"{seed}/{i}").random() < 0.5 for i in range(len(items))]
        conversations = [
            alpaca_prompt(q, *((a, b) if keep else (b, a)))
            for (q, a, b), keep in zip(items, first_is_a)
        ]
        shares = self.backend.first_token_share(conversations, ALPACA_TOKENS)
        self.calls += len(conversations)
        self._count_unparsed(shares)
        return [
            None if p is None else (p if keep else 1.0 - p) for p, keep in zip(shares, first_is_a)
        ]

    def rate(
        self,
        items: Sequence[Tuple[List[Message], Optional[Sequence[str]]]],
        prompt: Callable[..., List[Message]] = rate_prompt,
        max_new_tokens: Optional[int] = None,
    ) -> List[Optional[float]]:
        """A grade (asked for on 1-10) per (conversation ending with the answer to grade, the
        reference answers of its turns or None), asked with `prompt` (ours, or FastChat's)
        and at most `max_new_tokens` (None: the backend's budget); None where the reply holds
        no rating (`parse_rating`), counted in `unparsed`."""
        asked = [prompt(conv, refs) for conv, refs in items]
        ratings = [parse_rating(r) for r in self._ask(asked, max_new_tokens)]
        self._count_unparsed(ratings)
        return ratings
