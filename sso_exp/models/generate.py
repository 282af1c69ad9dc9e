"""The one generate loop: batched HF `generate` over chat-formatted prompts, left-padded,
the prompts sorted by length so a batch wastes little on padding, with a progress bar.
Sampling passes its nucleus sampler (built per batch, for the batch's rows) as a logits
processor; judges and answers decode greedily. The KV cache is HF's static one, allocated
once per batch: the default cache concatenates every layer's keys and values at every
step, a fifth of a CPU decoding step with principle-long prompts (the sampling stage is
~15% faster without it). It is not compiled: on CPU compiling it cost ~32 s and gained
~4% a step."""

from __future__ import annotations

from typing import Callable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

import torch
from transformers import (
    BatchEncoding,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..data.batching import length_batches


class Answers(NamedTuple):
    """Completions in the prompts' order, and which of them the token budget cut short."""

    texts: List[str]
    cut: List[bool]


def stop_ids(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> Set[int]:
    """The tokens that end a completion: the model's end-of-turn ids, the tokenizer's, pad."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [] if ids is None else [ids])
    return ids | {i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None}


def prompt_batches(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    batch_size: int,
    desc: Optional[str],
) -> Iterator[Tuple[List[int], BatchEncoding]]:
    """(indices, left-padded encoding on the model's device) per length-sorted batch of
    formatted prompts, the model in eval mode meanwhile (its mode restored after)."""
    was_training = model.training
    model.eval()
    try:
        for idx in length_batches([len(p) for p in prompts], batch_size, desc):
            enc = tok(
                [prompts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                padding_side="left",
                add_special_tokens=False,
            )
            yield idx, enc.to(model.device)
    finally:
        model.train(was_training)


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
) -> Answers:
    """One completion per formatted prompt, in the prompts' order, stripped; `processor`
    builds a batch's logits processor from the indices of the prompts in it."""
    texts: List[str] = [""] * len(prompts)
    cut = [False] * len(prompts)
    stops = torch.tensor(sorted(stop_ids(model, tok)))
    for idx, enc in prompt_batches(model, tok, prompts, batch_size, desc):
        out = model.generate(
            **enc,
            do_sample=False,
            logits_processor=LogitsProcessorList([processor(idx)] if processor else []),
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
            cache_implementation="static",
            disable_compile=True,
        )
        new = out[:, enc["input_ids"].shape[1] :].cpu()
        ended = torch.isin(new, stops).any(-1) | (new.shape[1] < max_new_tokens)
        for i, text, done in zip(idx, tok.batch_decode(new, skip_special_tokens=True), ended):
            texts[i], cut[i] = text.strip(), not bool(done)
    return Answers(texts, cut)
