"""The one generate loop: batched HF `generate` over chat-formatted prompts, left-padded,
the prompts sorted by length so a batch wastes little on padding, with a progress bar.
Sampling passes its nucleus sampler (built per batch, for the batch's rows) as a logits
processor; judges and answers decode greedily."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..data.batching import length_batches


@torch.no_grad()
def generate_texts(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    processor: Optional[Callable[[List[int]], LogitsProcessor]] = None,
    desc: Optional[str] = None,
) -> List[str]:
    """One completion per formatted prompt, in the prompts' order, stripped; `processor`
    builds a batch's logits processor from the indices of the prompts in it."""
    texts: List[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    for idx in length_batches([len(p) for p in prompts], batch_size, desc):
        enc = tok(
            [prompts[i] for i in idx],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        ).to(model.device)
        out = model.generate(
            **enc,
            do_sample=False,
            logits_processor=LogitsProcessorList([processor(idx)] if processor else []),
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        new = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(idx, new):
            texts[i] = text.strip()
    model.train(was_training)
    return texts
