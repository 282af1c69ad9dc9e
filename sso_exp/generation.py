"""Sampling from the current policy: batched HF `generate` with left padding, prompts
sorted by length so a batch wastes little on padding, and a progress bar. Temperature and
nucleus sampling happen in one logits processor that looks at each row's top candidates
only (HF sorts and samples over the whole 49k vocabulary: a third of a CPU decoding step)."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from .batching import length_batches


class NucleusSampler(LogitsProcessor):
    """Exact temperature + top-p sampling as a logits step: each row's token is drawn from
    its nucleus (the most probable tokens whose mass before them is < top_p, as HF's
    TopPLogitsWarper keeps), searched among the top `candidates` tokens and over the whole
    vocabulary for a row whose nucleus is wider. The returned row lets only the drawn token
    win, so `generate` runs greedily and never sorts or samples the full vocabulary."""

    def __init__(self, temperature: float, top_p: float, candidates: int):
        self.temperature, self.top_p, self.candidates = temperature, top_p, candidates

    def draw(self, top: Tensor, idx: Tensor) -> Tensor:
        """A token id per row from the nucleus of its probabilities sorted descending."""
        keep = (top.cumsum(-1) - top) < self.top_p
        return idx.gather(1, torch.multinomial(top * keep, 1)).squeeze(1)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        top, idx = probs.topk(min(self.candidates, probs.shape[-1]), dim=-1)
        tokens = self.draw(top, idx)
        wide = top.sum(-1) < self.top_p  # the nucleus reaches past the candidates
        if wide.any():
            tokens[wide] = self.draw(*probs[wide].sort(dim=-1, descending=True))
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens.unsqueeze(1), 0.0)


@torch.no_grad()
def sample(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: Sequence[str], *,
           max_new_tokens: int, temperature: float, top_p: float, batch_size: int,
           candidates: int, desc: str = "sampling") -> List[str]:
    """One sampled completion per chat-formatted prompt, in the prompts' order."""
    texts: List[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    tok.padding_side = "left"
    for idx in length_batches([len(p) for p in prompts], batch_size, desc):
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(model.device)
        sampler = NucleusSampler(temperature, top_p, candidates)  # nucleus only, as the authors
        out = model.generate(**enc, do_sample=False, logits_processor=LogitsProcessorList([sampler]),
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        new = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, text in zip(idx, new):
            texts[i] = text.strip()
    model.train(was_training)
    return texts
