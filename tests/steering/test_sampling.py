"""The nucleus sampler keeps exactly the tokens HF's top-p warper keeps, draws them in
proportion to their probabilities, each row from its own stream, and lets `generate` pick
the drawn token greedily."""

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
    sampler = NucleusSampler(0.7, 0.8, 8, seeds=[0, 1, 2])  # row 2's nucleus is wider than 8
    assert (want[2] > 0).sum() > 8
    got = frequencies(sampler, scores, 4000)
    assert torch.equal(got > 0, (want > 0) & (got > 0))  # never outside HF's nucleus
    assert torch.allclose(got, want, atol=0.03)


def test_a_row_draws_the_same_token_whatever_rows_are_beside_it():
    scores = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    together = NucleusSampler(0.7, 0.9, 8, seeds=[5, 6, 7, 8])(None, scores)
    alone = NucleusSampler(0.7, 0.9, 8, seeds=[7])(None, scores[2:3])
    assert torch.equal(together[2:3], alone)


def test_hf_sampler_samples_each_chat_from_its_own_stream(tiny):
    model, tok = tiny
    chats = [(None, "Hi"), ("Be brief.", "Why?"), (None, "2+2"), (None, "A longer question?")]

    def sample(batch_size, chats, seeds, global_seed):
        sampler = HFSampler(model, tok, GenerationConfig(backend="hf", batch_size=batch_size))
        torch.manual_seed(global_seed)  # the global stream plays no part
        return sampler.sample(chats, 6, "test", seeds), sampler.sampled

    (a, n), (b, _) = sample(4, chats, [1, 2, 3, 4], 0), sample(1, chats, [1, 2, 3, 4], 9)
    assert a == b and n == 4 and all(a)
    alone, _ = sample(2, chats[2:3], [3], 5)
    assert alone == a[2:3]
    other, _ = sample(4, chats, [11, 12, 13, 14], 0)
    assert other != a
