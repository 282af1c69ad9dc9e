"""The nucleus sampler keeps exactly the tokens HF's top-p warper keeps, draws them in
proportion to their probabilities, and lets `generate` pick the drawn token greedily."""

import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from sso_exp.config import GenerationConfig
from sso_exp.steering.sampling import HFSampler, NucleusSampler


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
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 50, generator=gen) * torch.tensor(
        [[3.0], [1.0], [0.05]]
    )  # peaked .. flat
    want = hf_nucleus(scores, 0.7, 0.8)
    sampler = NucleusSampler(0.7, 0.8, candidates=8)  # the flat row's nucleus is wider than 8
    assert (want[2] > 0).sum() > 8
    got = frequencies(sampler, scores, 4000)
    assert torch.equal(got > 0, (want > 0) & (got > 0))  # never outside HF's nucleus
    assert torch.allclose(got, want, atol=0.03)


def test_hf_sampler_samples_with_it_by_the_global_seed(tiny):
    model, tok = tiny
    sampler = HFSampler(model, tok, GenerationConfig(backend="hf", batch_size=2))
    chats = [(None, "Hi"), ("Be brief.", "Why?"), (None, "2+2")]

    def sample(seed):
        with torch.random.fork_rng():  # the global stream is left as it was
            torch.manual_seed(seed)
            return sampler.sample(chats, 6, "test")

    a, b, c = sample(1), sample(1), sample(2)
    assert a == b and a != c and all(a)
