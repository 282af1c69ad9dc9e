"""The nucleus sampler keeps exactly the tokens HF's top-p warper keeps, draws them in
proportion to their probabilities, and lets `generate` pick the drawn token greedily."""
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from sso_exp.generation import NucleusSampler, sample


def hf_nucleus(scores, temperature, top_p):
    """HF's own temperature + top-p: the probabilities it samples from."""
    ids = torch.zeros(scores.shape[0], 1, dtype=torch.long)
    warped = TopPLogitsWarper(top_p)(ids, TemperatureLogitsWarper(temperature)(ids, scores))
    return torch.softmax(warped, dim=-1)


def frequencies(sampler, scores, draws):
    counts = torch.zeros_like(scores)
    for _ in range(draws):
        out = sampler(None, scores)
        assert (torch.isfinite(out).sum(-1) == 1).all()  # one token per row can win
        counts += torch.isfinite(out)
    return counts / draws


def test_draws_follow_hfs_nucleus_including_rows_wider_than_the_candidates():
    torch.manual_seed(0)
    scores = torch.randn(3, 50) * torch.tensor([[3.0], [1.0], [0.05]])  # peaked .. flat
    want = hf_nucleus(scores, 0.7, 0.8)
    sampler = NucleusSampler(0.7, 0.8, candidates=8)  # the flat row's nucleus is wider than 8
    assert (want[2] > 0).sum() > 8
    got = frequencies(sampler, scores, 4000)
    assert torch.equal(got > 0, (want > 0) & (got > 0))  # never outside HF's nucleus
    assert torch.allclose(got, want, atol=0.03)


def test_generate_samples_with_it(tiny):
    model, tok = tiny
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                       add_generation_prompt=True) for q in ("Hi", "Why?", "2+2")]
    torch.manual_seed(1)
    a = sample(model, tok, prompts, max_new_tokens=6, temperature=0.7, top_p=0.8, batch_size=2,
               candidates=256)
    torch.manual_seed(1)
    b = sample(model, tok, prompts, max_new_tokens=6, temperature=0.7, top_p=0.8, batch_size=2,
               candidates=256)
    torch.manual_seed(2)
    c = sample(model, tok, prompts, max_new_tokens=6, temperature=0.7, top_p=0.8, batch_size=2,
               candidates=256)
    assert a == b and a != c and all(a)
