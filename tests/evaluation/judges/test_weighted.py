"""AlpacaEval 2.0's weighted annotator: the package's own prompt with the answers named m
and M, one random order per item, the preference read from the two tokens' probabilities:
from a local model's next-token logits (it always answers) or an endpoint's top log-probs."""

from __future__ import annotations

import math

import pytest
import torch
from fake_openai import FakeOpenAI

from sso_exp.evaluation.judges import LLMJudge, PolicyBackend
from sso_exp.evaluation.judges.llm import ALPACA_TOKENS, alpaca_prompt
from sso_exp.evaluation.judges.openai import token_share


class Shares:
    """A backend whose share for "m" is 0.9 when the answer shown first is 'good'."""

    def __init__(self):
        self.seen = []

    def first_token_share(self, conversations, tokens):
        assert tokens == ALPACA_TOKENS
        self.seen += conversations
        return [
            0.9 if '"output": """good"""' in c[1]["content"].split('"M"')[0] else 0.1
            for c in conversations
        ]


def test_the_prompt_is_alpaca_evals_with_the_answers_as_m_and_M():
    conv = alpaca_prompt("Why is the sky blue?", "first answer", "second answer")
    assert [m["role"] for m in conv] == ["system", "user"]
    user = conv[1]["content"]
    assert '"instruction": """Why is the sky blue?"""' in user
    assert user.index('"model_identifier": "m"') < user.index("first answer")
    assert user.index('"model_identifier": "M"') < user.index("second answer")
    assert "{output_1}" not in user and "{instruction}" not in user


def test_one_random_order_per_item_and_the_share_read_for_answer_a():
    backend = Shares()
    items = [(f"q{i}", "good", "bad") for i in range(40)]
    prefs = LLMJudge(backend).prefer_weighted(items, seed=3)
    assert len(backend.seen) == 40  # once per item, not in both orders
    assert prefs == pytest.approx([0.9] * 40)  # a is good whichever way it was shown
    shown_first = ['"""good"""' in c[1]["content"].split('"M"')[0] for c in backend.seen]
    assert 10 < sum(shown_first) < 30  # both orders occur
    assert LLMJudge(Shares()).prefer_weighted(items, seed=3) == prefs  # seeded


def test_a_local_model_always_answers_with_the_two_tokens_share(tiny):
    model, tok = tiny
    backend = PolicyBackend(model, tok, max_new_tokens=4, batch_size=2)
    convs = [alpaca_prompt("Short?", "a", "b"), alpaca_prompt("A longer question " * 5, "aa", "b")]
    shares = backend.first_token_share(convs, ALPACA_TOKENS)
    ids = [tok.encode(t, add_special_tokens=False)[0] for t in ALPACA_TOKENS]
    for conv, share in zip(convs, shares):
        text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            logits = model(**enc).logits[0, -1, ids].float()
        want = torch.softmax(logits, -1)[0].item()
        assert share == pytest.approx(want, abs=1e-4)  # padding in the batch changes nothing
    judge = LLMJudge(backend)
    prefs = judge.prefer_weighted([("q", "a", "b"), ("r", "c", "d")])
    assert all(0 < p < 1 for p in prefs) and judge.unparsed == 0


def test_an_endpoints_top_logprobs_give_the_share_and_neither_token_is_unparsed():
    logprobs = {"m": math.log(0.6), "M": math.log(0.2), "The": math.log(0.1)}
    with FakeOpenAI(reply=lambda m: "m", top_logprobs=lambda m: logprobs) as server:
        backend = server.backend()
        assert backend.first_token_share([alpaca_prompt("q", "a", "b")], ALPACA_TOKENS) == [
            pytest.approx(0.75)
        ]
        request = server.requests[-1]["body"]
        assert (request["max_tokens"], request["logprobs"], request["top_logprobs"]) == (1, True, 5)
    top = b'[{"token": "x", "logprob": 0}]'
    body = b'{"choices": [{"logprobs": {"content": [{"top_logprobs": ' + top + b"}]}}]}"
    assert token_share(body, ALPACA_TOKENS) is None
