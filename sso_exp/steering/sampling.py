"""Sampling from the writer model (docs/algorithm.md §2) behind one interface, `Sampler`,
which the HF backend here and the vLLM backend (steering/vllm.py) implement. In the HF
backend temperature and nucleus sampling happen in one logits processor that looks at each
row's top candidates only (HF sorts and samples over the whole 49k vocabulary: a third of
a CPU decoding step)."""

from __future__ import annotations

from functools import partial
from typing import List, Optional, Protocol, Sequence, Tuple

import torch
from torch import Tensor
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from ..config import GenerationConfig
from ..data.encoding import chat_prompt
from ..distributed import shard_map
from ..models.generate import generate_texts

Chat = Tuple[Optional[str], str]  # (system prompt or None, user message)


MASK32 = 0xFFFFFFFF


def mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (lowbias32) on int64 tensors holding values < 2**32: the low 32
    bits of each product are exact even where the int64 product wraps."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def uniforms(keys: Tensor, ids: Tensor) -> Tensor:
    """A uniform in (0, 1) per (row key, token id): counter-based, so a row's noise for a
    token is the same whatever other tokens are looked at, and only the looked-at ones cost."""
    h = mix32(mix32(keys.unsqueeze(-1) ^ ids))
    return (h.double() + 0.5) / 2.0**32


class NucleusSampler(LogitsProcessor):
    """Exact temperature + top-p sampling as a logits step: each row's token is drawn from
    its nucleus (the most probable tokens whose mass before them is < top_p, as HF's
    TopPLogitsWarper keeps), searched among the top `candidates` tokens and over the whole
    vocabulary for a row whose nucleus is wider. The draw is a Gumbel-max race whose noise
    is a hash of (row seed, step, token id): a sequence's tokens do not depend on the rows
    beside it, the batch size or the rank that samples it, and tiny differences in the
    logits (another batch's padding) change a draw only when two tokens nearly tie in the
    race. Hashing only the candidates keeps the noise off the step's cost (a generator
    stream per row had to draw a value for every vocabulary id). The returned row lets only
    the drawn token win, so `generate` runs greedily and never samples the full vocabulary."""

    def __init__(self, temperature: float, top_p: float, candidates: int, seeds: Sequence[int]):
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates
        s = torch.tensor(list(seeds), dtype=torch.long)  # 63-bit stream seeds, folded to 32
        self.seeds = mix32(s & MASK32) ^ (s >> 32)
        self.step = 0

    def draw(self, top: Tensor, idx: Tensor, keys: Tensor) -> Tensor:
        """A token id per row from the nucleus of its probabilities sorted descending."""
        keep = (top.cumsum(-1) - top) < self.top_p
        gumbel = -(-uniforms(keys, idx).log()).log()
        race = torch.where(keep, top.double().log() + gumbel, float("-inf"))
        return idx.gather(1, race.argmax(-1, keepdim=True)).squeeze(1)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        keys = mix32(self.seeds.to(scores.device) ^ self.step)
        self.step += 1
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        top, idx = probs.topk(min(self.candidates, scores.shape[-1]), dim=-1)
        tokens = self.draw(top, idx, keys)
        wide = top.sum(-1) < self.top_p  # the nucleus reaches past the candidates
        if wide.any():
            tokens[wide] = self.draw(*probs[wide].sort(dim=-1, descending=True), keys[wide])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens.unsqueeze(1), 0.0)


class Sampler(Protocol):
    """Samples one completion per chat from a model as it is now, chat i from the random
    stream seeded by seeds[i]. With several ranks each samples its share of the chats and
    every rank gets all completions; `sampled` counts the chats this rank sampled."""

    sampled: int

    def sample(
        self, chats: Sequence[Chat], max_new_tokens: int, desc: str, seeds: Sequence[int]
    ) -> List[str]: ...


class HFSampler:
    """HF `generate` through the one generate loop, with the exact nucleus sampler."""

    def __init__(self, model: PreTrainedModel, tok: PreTrainedTokenizerBase, cfg: GenerationConfig):
        self.model, self.tok, self.cfg = model, tok, cfg
        self.sampled = 0

    def sample(
        self, chats: Sequence[Chat], max_new_tokens: int, desc: str, seeds: Sequence[int]
    ) -> List[str]:
        return shard_map(partial(self._sample, max_new_tokens, desc), chats, seeds)

    def _sample(self, max_new_tokens: int, desc: str, chats: List[Chat], seeds: List[int]):
        c = self.cfg
        self.sampled += len(chats)
        return generate_texts(
            self.model,
            self.tok,
            [chat_prompt(self.tok, *chat) for chat in chats],
            max_new_tokens=max_new_tokens,
            batch_size=c.batch_size,
            processor=lambda rows: NucleusSampler(
                c.temperature, c.top_p, c.nucleus_candidates, [seeds[i] for i in rows]
            ),
            desc=desc,
        ).texts


def make_sampler(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, cfg: GenerationConfig, seed: int
) -> Sampler:
    """The configured backend's sampler over `model`."""
    if cfg.backend == "vllm":
        from .vllm import VLLMSampler  # vLLM is imported only when chosen

        return VLLMSampler(model, tok, cfg, seed)
    return HFSampler(model, tok, cfg)
