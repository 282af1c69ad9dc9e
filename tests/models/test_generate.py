"""The one generate loop says which completions the token budget cut short: those that
ended on an end-of-turn token are not cut, whatever the rows beside them did; under a bf16
autocast it decodes with bf16 weights and gives the float32 ones back untouched; a start
that a batch's prompts share, prefilled once, changes no completion; each batch decodes in
a cache of its own length."""

import torch
from transformers import LogitsProcessor

from sso_exp.data.encoding import chat_prompt
from sso_exp.models import generate
from sso_exp.models.generate import generate_texts, shared_start, stop_ids


class EndRow(LogitsProcessor):
    """Forces the end-of-turn token in the rows given, from the first step."""

    def __init__(self, rows, eos):
        self.rows, self.eos = rows, eos

    def __call__(self, input_ids, scores):
        for r in self.rows:
            scores[r] = float("-inf")
            scores[r, self.eos] = 0.0
        return scores


def test_cut_marks_the_answers_that_ran_out_of_tokens(tiny):
    model, tok = tiny
    prompts = [chat_prompt(tok, None, q) for q in ("Hi", "Why is the sky blue?", "2+2")]
    first = prompts.index(min(prompts, key=len))  # rows are sorted by length in a batch
    out = generate_texts(
        model,
        tok,
        prompts,
        max_new_tokens=5,
        batch_size=3,
        processor=lambda idx: EndRow([idx.index(first)], tok.eos_token_id),
    )
    assert tok.eos_token_id in stop_ids(model, tok)
    assert out.texts[first] == ""  # it ended at once
    assert out.cut == [i != first for i in range(3)]


class SeesDtype(LogitsProcessor):
    """Records the dtypes of the model's weights at each step."""

    def __init__(self, model):
        self.model, self.dtypes = model, set()

    def __call__(self, input_ids, scores):
        self.dtypes |= {p.dtype for p in self.model.parameters()}
        return scores


def test_a_bf16_autocast_generates_with_bf16_weights_and_gives_the_float32_ones_back(tiny):
    model, tok = tiny
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    storage = {n: p.data_ptr() for n, p in model.named_parameters()}
    seen = SeesDtype(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        generate_texts(
            model,
            tok,
            [chat_prompt(tok, None, "Hi")],
            max_new_tokens=3,
            batch_size=1,
            processor=lambda idx: seen,
        )
    assert seen.dtypes == {torch.bfloat16}
    for n, p in model.named_parameters():
        assert p.dtype == torch.float32 and p.data_ptr() == storage[n]
        assert torch.equal(p, before[n])


def _menu_prompts(tok):
    menu = "Here is a long menu of things a reply can do. " * 12
    return [chat_prompt(tok, None, menu + q) for q in ("Hi", "Why is the sky blue?", "2+2")]


def test_a_shared_start_is_prefilled_once_and_changes_no_completion(tiny, monkeypatch):
    model, tok = tiny
    prompts = _menu_prompts(tok)
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
    start, laid = shared_start(enc, tok.pad_token_id)
    assert start >= generate.SHARED_START_MIN
    assert torch.equal(laid["attention_mask"].sum(-1), enc["attention_mask"].sum(-1))
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(k) or forward(*a, **k))
    run = lambda: generate_texts(model, tok, prompts, max_new_tokens=8, batch_size=3)  # noqa: E731
    shared = run()
    assert calls[0]["input_ids"].shape == (1, start)  # the start alone, once
    monkeypatch.setattr(generate, "SHARED_START_MIN", 10**6)
    calls.clear()
    assert run() == shared
    assert calls[0]["input_ids"].shape[0] == 3


def test_a_batch_decodes_in_a_cache_of_its_own_length_whatever_ran_before(tiny):
    """A short batch after a long one attends over its own prompts and new tokens only (HF's
    static cache would keep the longest length the model met: slower, and a run's samples
    would depend on what it generated before)."""
    model, tok = tiny
    long = [chat_prompt(tok, "Answer at length. " * 40, "Why is the sky blue?")]
    short = [chat_prompt(tok, None, q) for q in ("Hi", "2+2")]
    lengths = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: lengths.append(kwargs["cache"].get_max_length()),
        with_kwargs=True,
    )
    try:
        for prompts in (long, short):
            generate_texts(model, tok, prompts, max_new_tokens=4, batch_size=2)
    finally:
        hook.remove()
    width = max(len(tok(p, add_special_tokens=False).input_ids) for p in short)
    assert lengths[-1] == width + 4 < lengths[0]
