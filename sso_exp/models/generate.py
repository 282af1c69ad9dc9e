"""The one generate loop: batched HF `generate` over chat-formatted prompts, left-padded,
the prompts sorted by length so a batch wastes little on padding, with a progress bar.
Sampling passes its nucleus sampler (built per batch, for the batch's rows) as a logits
processor; judges and answers decode greedily. The KV cache is HF's static one, allocated
once per batch: the default cache concatenates every layer's keys and values at every step,
a large share of a CPU decoding step with principle-long prompts. It is not compiled: on a
CPU compiling it cost more than it gained in a stage. A start that all of a batch's prompts
share (the features prompt's few-shot menu, ~325 of its ~347 tokens) is prefilled once and
repeated into every row's cache.

Under a bf16 autocast the model generates with bf16 copies of its float32 weights
(models/device.py): autocast would otherwise keep a float32 static cache and cast its keys
and values, and every step's activations, afresh at every step."""

from __future__ import annotations

from typing import Callable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

import torch
from transformers import (
    BatchEncoding,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StaticCache,
)

from ..data.batching import length_batches
from ..data.packing import common_prefix
from .device import autocast_weights

# prompts of a batch sharing this many first tokens have them prefilled once (the features
# prompt's few-shot menu: ~325 of its ~347 tokens)
SHARED_START_MIN = 64


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


def shared_start(enc: BatchEncoding, pad_id: int) -> Tuple[int, BatchEncoding]:
    """The tokens every prompt of a left-padded batch begins with, and the batch laid out
    as [that start | padding | each prompt's rest] (positions follow the mask, so each
    token keeps its own). (0, the batch) when the start is under SHARED_START_MIN tokens."""
    rows = [ids[m.bool()].tolist() for ids, m in zip(enc["input_ids"], enc["attention_mask"])]
    start = min(common_prefix(rows), min(map(len, rows)) - 1)  # every row keeps a token
    if len(rows) < 2 or start < SHARED_START_MIN:
        return 0, enc
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        gap = width - len(row)
        ids[r, :start], ids[r, start + gap :] = torch.tensor(row[:start]), torch.tensor(row[start:])
        mask[r, :start] = mask[r, start + gap :] = 1
    device = enc["input_ids"].device
    return start, BatchEncoding({"input_ids": ids.to(device), "attention_mask": mask.to(device)})


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
    with autocast_weights(model):
        for idx, enc in prompt_batches(model, tok, prompts, batch_size, desc):
            out = _generate(model, tok, enc, processor(idx) if processor else None, max_new_tokens)
            new = out[:, enc["input_ids"].shape[1] :].cpu()
            ended = torch.isin(new, stops).any(-1) | (new.shape[1] < max_new_tokens)
            decoded = tok.batch_decode(new, skip_special_tokens=True)
            for i, text, done in zip(idx, decoded, ended):
                texts[i], cut[i] = text.strip(), not bool(done)
    return Answers(texts, cut)


def _generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    enc: BatchEncoding,
    processor: Optional[LogitsProcessor],
    max_new_tokens: int,
) -> torch.Tensor:
    """`generate` over the batch; a start all its prompts share (a few-shot menu) is
    prefilled once, in HF's dynamic cache repeated for every row, else a static cache of
    the batch's own length. (HF's `cache_implementation="static"` keeps the longest length
    the model ever met, for compiled decoding: a short batch after a long one would attend
    over the long one's length, and a run's samples would depend on what it ran before.)"""
    start, enc = shared_start(enc, tok.pad_token_id)
    if start:
        cache = DynamicCache(config=model.config)
        model(input_ids=enc["input_ids"][:1, :start], cache=cache, logits_to_keep=1)
        cache.batch_repeat_interleave(len(enc["input_ids"]))
    else:
        cache = StaticCache(model.config, enc["input_ids"].shape[1] + max_new_tokens)
    return model.generate(
        **enc,
        do_sample=False,
        logits_processor=LogitsProcessorList([processor] if processor else []),
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
        disable_compile=True,
        cache=cache,
    )
