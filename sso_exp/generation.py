"""Sampling from the current policy: batched HF `generate` with left padding, prompts
sorted by length so a batch wastes little on padding, and a progress bar."""
from __future__ import annotations

from typing import List, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .batching import length_batches


@torch.no_grad()
def sample(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: Sequence[str], *,
           max_new_tokens: int, temperature: float, top_p: float, batch_size: int,
           desc: str = "sampling") -> List[str]:
    """One sampled completion per chat-formatted prompt, in the prompts' order."""
    texts: List[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    tok.padding_side = "left"
    for idx in length_batches([len(p) for p in prompts], batch_size, desc):
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(model.device)
        out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p,
                             top_k=0,  # nucleus sampling only, as the authors (vLLM)
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        new = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, text in zip(idx, new):
            texts[i] = text.strip()
    model.train(was_training)
    return texts
