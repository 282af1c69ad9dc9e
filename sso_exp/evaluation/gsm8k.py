"""GSM8K exact match: the final number of a completion against the `#### N` of the reference.

Chat models do not always follow the requested `#### N` format. Extraction therefore falls back
through the markers models commonly use ("#### N", "the answer is N", "Answer: N") to the last
number in the text, the way lm-eval-harness's flexible extract does. Numbers are compared by
value, so `$1,234.50`, `1234.5` and `+1234.50` all match.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Optional

# An optional sign or "$" (in either order), then digits with optional thousands commas and
# decimals. The look-behind keeps "16-3" from reading as 16 and -3, and "x2" from reading as 2.
_NUMBER = r"(?<![\w.])(?:\$-|[-+]?\$?)(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_ANY_NUMBER = re.compile(_NUMBER)
_MARKED = (  # most explicit first; markdown bold and ":" / "=" are allowed before the number
    re.compile(rf"####[\s*:]*({_NUMBER})"),
    re.compile(rf"\banswer\s*(?:is\b)?[\s*:=]*({_NUMBER})", re.IGNORECASE),
)


def _normalise(number: str) -> str:
    """Drop "$", thousands commas, a leading "+" and trailing decimal zeros ("18.00" -> "18")."""
    s = number.strip().replace("$", "").replace(",", "").lstrip("+")
    return s.rstrip("0").rstrip(".") if "." in s else s


def reference_answer(answer: str) -> str:
    """The normalised number after the last `####` of a GSM8K answer field."""
    _, marker, tail = answer.rpartition("####")
    match = _ANY_NUMBER.search(tail) if marker else None
    if match is None:
        raise ValueError(f"no '#### <number>' in GSM8K answer: {answer[-80:]!r}")
    return _normalise(match.group())


def predicted_answer(text: str) -> Optional[str]:
    """The completion's final number, normalised: the last `#### N`, else the last
    "answer is N" / "Answer: N", else the last number at all; None when there is none."""
    for pattern in _MARKED:
        marked = pattern.findall(text)
        if marked:
            return _normalise(marked[-1])
    numbers = _ANY_NUMBER.findall(text)
    return _normalise(numbers[-1]) if numbers else None


def exact_match(prediction: Optional[str], reference: str) -> bool:
    """Numeric equality (as Decimal, so "12.5" == "12.50"); string equality if either
    won't parse."""
    if prediction is None:
        return False
    pred, ref = _normalise(prediction), _normalise(reference)
    try:
        return Decimal(pred) == Decimal(ref)
    except InvalidOperation:
        return pred == ref


def gsm8k_prompt(question: str) -> str:
    """The user message for one GSM8K question. It asks for the `#### N` line that
    `predicted_answer` looks for first."""
    return (
        "Solve the following math word problem. Reason step by step, then end your response "
        'with a final line of the form "#### <number>" that contains only the numeric '
        f"answer (no units).\n\nQuestion: {question.strip()}"
    )
