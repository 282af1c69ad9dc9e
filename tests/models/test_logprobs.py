"""Log-probs count response tokens only, and neither padding nor sharing a row with
sequences of the same prompt changes them or their gradients."""

import copy

import pytest
import torch
import torch.nn.functional as F

from conftest import close
from sso_exp.config import TrainerConfig
from sso_exp.data.encoding import chat_prompt, encode
from sso_exp.data.packing import alone, pack
from sso_exp.models import logprobs
from sso_exp.models.device import trained_weights
from sso_exp.models.logprobs import HeadLogps, score, score_named, sequence_logps


def _seqs(tok):
    prompts = [chat_prompt(tok, None, "Hi"), chat_prompt(tok, "Be brief.", "Name a colour.")]
    return [
        encode(tok, prompts[0], "Hello there, how can I help?", 512),
        encode(tok, prompts[1], "Blue.", 512),
    ]


def _pairs(tok):
    """Two records' chosen then rejected: each pair shares its prompt (and, in the first,
    the response's first word), the pairs' lengths differ."""
    prompts = [chat_prompt(tok, "Be kind.", "Hi"), chat_prompt(tok, None, "Name a colour.")]
    chosen = ["Hello there, how can I help?", "Blue."]
    rejected = ["Hello. Go away.", "I will not name one, as colours are a matter of taste."]
    return [encode(tok, p, r, 512) for p, r in zip(prompts * 2, chosen + rejected)]


def test_logps_equal_manual_sum_over_response_tokens(tiny):
    model, tok = tiny
    s = _seqs(tok)[0]
    ids = torch.tensor([s.ids])
    with torch.no_grad():
        logp = model(ids).logits.float().log_softmax(-1)[0]
        want = sum(logp[t - 1, ids[0, t]].item() for t in range(s.n_prompt, len(s.ids)))
        got = sequence_logps(model, alone([s], tok.pad_token_id))
    assert got.count.item() == len(s.ids) - s.n_prompt
    assert close(got.sum, torch.tensor([want]))


def test_padding_changes_no_sequence(tiny):
    model, tok = tiny
    seqs = _seqs(tok)
    with torch.no_grad():
        batch = sequence_logps(model, alone(seqs, tok.pad_token_id))
        each = [sequence_logps(model, alone([s], tok.pad_token_id)).sum.item() for s in seqs]
    assert close(batch.sum, torch.tensor(each))


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
def test_a_shared_row_gives_each_sequence_its_own_values_and_gradients(tiny, kernel):
    """A pair's prompt computed once under a tree mask: the log-probs, counts and weight
    gradients of one row per sequence, for both attention kernels that take the mask."""
    model, tok = tiny
    model.set_attn_implementation(kernel)
    seqs = _pairs(tok)
    shared = pack(seqs, [[0, 2], [1, 3]], tok.pad_token_id)
    assert shared["input_ids"].shape[1] < max(len(s.ids) for s in seqs) * 2  # prompt once
    want, g_want = _grads(model, alone(seqs, tok.pad_token_id), chunk=0)
    got, g_got = _grads(model, shared, chunk=0)
    model.zero_grad()
    assert close(got, want)
    assert shared["counts"].tolist() == [len(s.ids) - s.n_prompt for s in seqs]
    assert all(close(b, a) for a, b in zip(g_want, g_got))


def test_score_named_shares_a_records_prompt_and_keeps_each_names_order(tiny):
    model, tok = tiny
    seqs = _pairs(tok)
    named = {"chosen": seqs[:2], "rejected": seqs[2:], "other": _seqs(tok)}
    out = score_named(model, named, tok.pad_token_id, batch_size=3)
    for name, listed in named.items():
        single = [score(model, [s], tok.pad_token_id, 1).sum.item() for s in listed]
        assert close(out[name].sum, torch.tensor(single))


def test_score_keeps_input_order(tiny):
    model, tok = tiny
    seqs = _seqs(tok)[::-1] * 2
    out = score(model, seqs, tok.pad_token_id, batch_size=3)
    single = [score(model, [s], tok.pad_token_id, 1).sum.item() for s in seqs]
    assert close(out.sum, torch.tensor(single))


def _grads(model, batch, chunk):
    model.zero_grad()
    out = sequence_logps(model, batch, chunk)
    out.sum.sum().backward()
    return out.sum.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_chunked_projection_gives_the_same_values_and_gradients(tiny):
    model, tok = tiny
    batch = pack(_pairs(tok) * 2, [[0, 2, 4], [1, 3], [5], [6, 7]], tok.pad_token_id)
    whole, g_whole = _grads(model, batch, chunk=0)
    chunked, g_chunked = _grads(model, batch, chunk=5)  # many chunks, one ragged
    model.zero_grad()
    assert close(chunked, whole)
    assert len(g_whole) == len(g_chunked) > 0
    assert all(close(b, a) for a, b in zip(g_whole, g_chunked))


def _head_inputs(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(11, 16, generator=gen, dtype=dtype).requires_grad_()
    weight = torch.randn(50, 16, generator=gen).mul(0.5).requires_grad_()
    bias = torch.randn(50, generator=gen).requires_grad_()
    return hidden, weight, bias, torch.randint(0, 50, (11,), generator=gen)


def _with_grads(fn, inputs, upstream):
    hidden, weight, bias, targets = inputs
    for t in (hidden, weight, bias):
        t.grad = None
    out = fn(hidden, weight, bias, targets)
    (out * upstream).sum().backward()
    return [out.detach()] + [t.grad.clone() for t in (hidden, weight, bias)]


def _plain(hidden, weight, bias, targets):
    logits = F.linear(hidden, weight, bias).float()
    return logits.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)


@pytest.mark.parametrize("chunk,compiled", [(0, False), (4, False), (11, False), (4, True)])
def test_head_logps_backward_matches_autograd(chunk, compiled):
    """The hand-written backward (onehot - softmax per chunk), plain and compiled, against
    autograd's."""
    inputs = _head_inputs()
    upstream = torch.linspace(-1, 2, 11)
    want = _with_grads(_plain, inputs, upstream)
    got = _with_grads(lambda *a: HeadLogps.apply(*a, chunk, compiled), inputs, upstream)
    for a, b in zip(got, want):
        assert close(a, b)


def test_head_logps_plain_kernels_work_a_few_rows_at_a_time(monkeypatch):
    """The plain kernels' float32 temporaries cover ROW_BLOCK rows at a time (a ragged last
    block too): the log-probs and gradients are autograd's."""
    monkeypatch.setattr(logprobs, "ROW_BLOCK", 3)
    inputs = _head_inputs()
    upstream = torch.linspace(-1, 2, 11)
    want = _with_grads(_plain, inputs, upstream)
    got = _with_grads(lambda *a: HeadLogps.apply(*a, 5, False), inputs, upstream)
    for a, b in zip(got, want):
        assert close(a, b)


def test_head_logps_under_bf16_autocast_match_autograd():
    """Matmuls in bf16 on both sides, log-probs float32, gradients in fp32 parameters."""
    inputs = _head_inputs()
    upstream = torch.linspace(-1, 2, 11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = _with_grads(_plain, inputs, upstream)
        got = _with_grads(lambda *a: HeadLogps.apply(*a, 4), inputs, upstream)
    assert got[0].dtype == torch.float32 and got[2].dtype == torch.float32
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=2e-2, rtol=2e-2)


def test_logps_stay_float32_under_bf16_autocast(tiny):
    model, tok = tiny
    batch = pack(_pairs(tok), [[0, 2], [1, 3]], tok.pad_token_id)
    with torch.no_grad():
        fp32 = sequence_logps(model, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = sequence_logps(model, batch)
    assert bf16.sum.dtype == torch.float32
    assert torch.allclose(fp32.mean, bf16.mean, atol=0.05)


@pytest.mark.parametrize("precision", ["bf16-true", "bf16-mixed"])
def test_the_reference_is_scored_with_the_weights_training_computes_with(tiny, precision):
    """Under a bf16 autocast, bf16-true scores with bf16 weights as its training step does
    (a bf16 residual stream), bf16-mixed with its float32 weights under autocast; either way
    the float32 weights stay."""
    model, tok = tiny
    seqs = _pairs(tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trained_as = copy.deepcopy(model)  # what the training step computes with
    if precision == "bf16-true":  # MasterWeights: the parameters in bf16, buffers as loaded
        for q in trained_as.parameters():
            q.data = q.data.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with trained_weights(model, TrainerConfig(precision=precision)):
            got = score(model, seqs, tok.pad_token_id, batch_size=2)
        want = score(trained_as, seqs, tok.pad_token_id, batch_size=2)
    assert torch.equal(got.sum, want.sum)
    for n, p in model.named_parameters():
        assert p.dtype == torch.float32 and torch.equal(p, before[n])
