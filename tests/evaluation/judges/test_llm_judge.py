"""LLMJudge: verdict/rating parsing, both-order pairwise judging with the swap mapped back,
unparsed replies counted and never guessed, against a scripted backend, end to end over
HTTP, and on a tiny local policy."""

from __future__ import annotations

from typing import Dict, List, Sequence

import pytest
from fake_openai import FakeOpenAI

from sso_exp.evaluation.judges import JudgeError, LLMJudge, PolicyBackend
from sso_exp.evaluation.judges.llm import parse_rating, parse_verdict

Conv = List[Dict[str, str]]


class Scripted:
    """A backend returning `replies` in order and recording the conversations asked."""

    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.asked: List[Conv] = []

    def complete(self, conversations: Sequence[Conv], max_new_tokens=None) -> List[str]:
        self.asked += conversations
        self.budgets = getattr(self, "budgets", []) + [max_new_tokens]
        return [self.replies.pop(0) for _ in conversations]


def user_text(conv: Conv) -> str:
    return conv[-1]["content"]


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("[[A]]", "A"),
        ("Assistant B is clearly better. [[B]]", "B"),
        ("tie: [[C]]\n", "C"),
        ('Format: "[[A]]" if A is better... My final verdict: [[B]]', "B"),  # last one wins
        ("[[ C ]]", "C"),
        ("[A]", None),
        ("[[D]]", None),
        ("A is better", None),
        ("", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize(
    "text, rating",
    [
        # FastChat's rule: the first `[[x]]`, else the first `[x]`, else failed (None)
        ("Rating: [[7]]", 7.0),
        ("Solid answer.\nRating: [[8.5]]", 8.5),
        ("Rating: [[7.5]]", 7.5),
        ("[[1]]", 1.0),
        ("[[10]]", 10.0),
        ('e.g. "Rating: [[5]]". My rating: [[3]]', 5.0),  # first one wins
        ("Rating: [[9]] then [[12]]", 9.0),
        ("Rating: [6]", 6.0),
        ("Step [2] of 3. Rating: [[4]]", 4.0),  # any `[[x]]` beats an earlier `[x]`
        ("Rating: [6] or [8]", 6.0),
        ("Rating: [[11]]", 11.0),  # no range check
        ("Rating: [[0]]", 0.0),
        ("Rating: [[7.]]", 7.0),
        ("Rating: [[ 7 ]]", None),  # no spaces allowed, in either pattern
        ("Rating: [[-3]]", None),
        ("Rating: [[.5]]", None),
        ("Rating: 7/10", None),
        ("Rating: [[seven]]", None),
        ("", None),
    ],
)
def test_parse_rating(text, rating):
    assert parse_rating(text) == rating


def test_prefer_asks_both_orders():
    backend = Scripted("[[A]]", "[[B]]")
    LLMJudge(backend).prefer([("Name a colour.", "ANSWER-ONE", "ANSWER-TWO")])
    first, swapped = (user_text(c) for c in backend.asked)
    for text, shown_a, shown_b in (
        (first, "ANSWER-ONE", "ANSWER-TWO"),
        (swapped, "ANSWER-TWO", "ANSWER-ONE"),
    ):
        assert "Name a colour." in text
        assert (
            text.index("Assistant A's Answer]")
            < text.index(shown_a)
            < text.index("Assistant B's Answer]")
            < text.index(shown_b)
        )
    assert all("[[A]]" in c[0]["content"] and "[[C]]" in c[0]["content"] for c in backend.asked)


@pytest.mark.parametrize(
    "first, swapped, p_a",
    [
        ("[[A]]", "[[B]]", 1.0),  # a wins in both orders
        ("[[B]]", "[[A]]", 0.0),  # b wins in both orders
        ("[[A]]", "[[A]]", 0.5),  # position bias: whichever is shown first wins
        ("[[C]]", "[[C]]", 0.5),
        ("[[A]]", "[[C]]", 0.75),
        ("[[C]]", "[[A]]", 0.25),
        ("[[A]]", "no verdict", 1.0),  # one order unparsed: the other decides
        ("garbled", "[[A]]", 0.0),
        ("garbled", "no verdict", None),
    ],
)
def test_prefer_maps_verdicts_to_p_a(first, swapped, p_a):
    judge = LLMJudge(Scripted(first, swapped))
    assert judge.prefer([("q", "a", "b")]) == [p_a]
    assert judge.calls == 2
    assert judge.unparsed == sum(parse_verdict(r) is None for r in (first, swapped))


def test_prefer_keeps_item_order_and_counts():
    judge = LLMJudge(Scripted("[[A]]", "[[B]]", "x", "y", "[[B]]", "[[A]]"))
    assert judge.prefer([("q1", "a", "b"), ("q2", "a", "b"), ("q3", "a", "b")]) == [1.0, None, 0.0]
    assert (judge.calls, judge.unparsed) == (6, 2)


def test_rate_prompt_holds_conversation_answer_and_reference():
    backend = Scripted("Rating: [[7]]", "Fine. Rating: [[8.5]]", "no rating here")
    conv = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "ANSWER-4"},
    ]
    two_turns = [
        *conv,
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "ANSWER-6"},
    ]
    judge = LLMJudge(backend)
    refs = ["REFERENCE-4", "REFERENCE-6"]
    assert judge.rate([(conv, None), (two_turns, refs), (conv, None)]) == [7.0, 8.5, None]
    assert (judge.calls, judge.unparsed) == (3, 1)
    plain, referenced = user_text(backend.asked[0]), user_text(backend.asked[1])
    assert "What is 2+2?" in plain and "ANSWER-4" in plain and "Reference" not in plain
    assert "Rating: [[5]]" in backend.asked[0][0]["content"]
    assert "reference" in backend.asked[1][0]["content"]
    # the earlier turns are context; the last answer is what is graded
    assert (
        referenced.index("ANSWER-4")
        < referenced.index("And 3+3?")
        < referenced.index("Reference Answer to Turn 1")
        < referenced.index("REFERENCE-4")
        < referenced.index("REFERENCE-6")
        < referenced.index("Assistant's Answer]")
        < referenced.index("ANSWER-6")
    )


def test_rate_asks_with_the_given_prompt_and_budget():
    backend = Scripted("Rating: [[3]]")
    conv = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]

    def prompt(conversation, references):
        return [{"role": "user", "content": f"grade {conversation[-1]['content']} {references}"}]

    assert LLMJudge(backend).rate([(conv, ["R"])], prompt, 2048) == [3.0]
    assert backend.asked == [[{"role": "user", "content": "grade A ['R']"}]]
    assert backend.budgets == [2048]


def test_rate_needs_an_assistant_answer_last():
    with pytest.raises(ValueError, match="assistant"):
        LLMJudge(Scripted()).rate([([{"role": "user", "content": "hi"}], None)])


def test_backend_returning_wrong_count_is_an_error():
    class Short(Scripted):
        def complete(self, conversations, max_new_tokens=None):
            return []

    with pytest.raises(JudgeError, match="0 replies for 2"):
        LLMJudge(Short()).prefer([("q", "a", "b")])


def prefers_good(messages: Conv) -> str:
    """A fake remote judge: prefers the answer saying GOOD, rates every answer 6."""
    text = user_text(messages)
    if "Assistant A's Answer" not in text:
        return "Reasonable.\nRating: [[6]]"
    a_part = text.split("Assistant B's Answer")[0]
    return "A is better. [[A]]" if "GOOD" in a_part else "B is better. [[B]]"


def test_end_to_end_over_http():
    with FakeOpenAI(prefers_good) as server:
        judge = LLMJudge(server.backend())
        assert judge.prefer([("q", "GOOD", "bad"), ("q", "bad", "GOOD")]) == [1.0, 0.0]
        conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}]
        assert judge.rate([(conv, "ref")]) == [6.0]
    assert (judge.calls, judge.unparsed, len(server.requests)) == (5, 0, 5)
    assert server.requests[0]["body"]["messages"][0]["role"] == "system"


def test_policy_backend_smoke(tiny):
    model, tok = tiny
    backend = PolicyBackend(model, tok, max_new_tokens=4, batch_size=2)
    convs = [[{"role": "user", "content": f"Question {i}?" * (i + 1)}] for i in range(3)]
    replies = backend.complete(convs)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert backend.complete(convs) == replies  # greedy: reproducible
    judge = LLMJudge(backend)
    assert len(judge.prefer([("q", "a", "b")])) == 1 and judge.calls == 2


def test_reward_judge_prefers_by_reward_difference(tiny, tmp_path):
    import math

    from conftest import compose_cfg
    from sso_exp.evaluation.judges.reward import RewardJudge
    from sso_exp.models.loading import load_reward_model

    rm, tok = load_reward_model(compose_cfg(tmp_path, "model=tiny").model, seed=0)
    judge = RewardJudge(rm, tok, max_length=512, batch_size=4)
    items = [("Hi?", "Hello there.", "Go away."), ("2+2?", "4", "5")]
    p = judge.prefer(items)
    swapped = judge.prefer([(q, b, a) for q, a, b in items])
    assert all(0 < x < 1 for x in p) and all(
        math.isclose(x + y, 1, abs_tol=1e-5) for x, y in zip(p, swapped)
    )
    assert judge.prefer([("Hi?", "same", "same")]) == [0.5]
