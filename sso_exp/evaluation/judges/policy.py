"""A `ChatBackend` on a local Hugging Face causal LM, e.g. the policy judging itself.

Decoding is greedy, so the same conversation always gets the same judgement (the one
generate loop, without the sampler's nucleus step); answers may be sampled at a temperature
instead (MT-Bench's categories), each from its own seeded stream. With several ranks each
replies to its share of the conversations."""

from __future__ import annotations

from functools import partial
from typing import List, Optional, Sequence, Tuple

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...config import GenerationConfig
from ...distributed import shard_map
from ...models.generate import Answers, generate_texts, prompt_batches
from ...steering.sampling import NucleusSampler
from .llm import Message

CANDIDATES = GenerationConfig.nucleus_candidates  # where the sampler looks first (exact)


class PolicyBackend:
    """Greedy replies in length-sorted batches of `batch_size`, at most `max_new_tokens`."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_new_tokens: int,
        batch_size: int,
        desc: Optional[str] = None,
    ):
        self.model, self.tokenizer, self.desc = model, tokenizer, desc
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def complete(
        self, conversations: Sequence[List[Message]], max_new_tokens: Optional[int] = None
    ) -> List[str]:
        return self.answers(conversations, max_new_tokens=max_new_tokens).texts

    def answers(
        self,
        conversations: Sequence[List[Message]],
        temperature: float = 0.0,
        seeds: Optional[Sequence[int]] = None,
        max_new_tokens: Optional[int] = None,
    ) -> Answers:
        """The replies and which of them the token budget cut short: greedy, or sampled at
        `temperature` (top-p 1), reply i from the stream seeded by seeds[i]."""
        budget = max_new_tokens or self.max_new_tokens
        seeds = list(seeds) if seeds is not None else [0] * len(conversations)
        return shard_map(partial(self._answers, temperature, budget), conversations, seeds)

    def _answers(
        self, temperature: float, budget: int, conversations: List[List[Message]], seeds: List
    ) -> Answers:
        tok = self.tokenizer
        prompts = [
            tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            for conv in conversations
        ]
        sampled = None
        if temperature > 0:

            def sampled(rows):
                return NucleusSampler(temperature, 1.0, CANDIDATES, [seeds[i] for i in rows])

        return generate_texts(
            self.model,
            tok,
            prompts,
            max_new_tokens=budget,
            batch_size=self.batch_size,
            processor=sampled,
            desc=self.desc,
        )

    def first_token_share(
        self, conversations: Sequence[List[Message]], tokens: Tuple[str, str]
    ) -> List[Optional[float]]:
        """The two tokens' share of the next-token distribution after each conversation's
        generation prompt, from one forward pass (no decoding: it always answers)."""
        return shard_map(lambda convs: self._shares(convs, tokens), conversations)

    @torch.no_grad()
    def _shares(self, conversations: List[List[Message]], tokens: Tuple[str, str]) -> List[float]:
        tok, model = self.tokenizer, self.model
        ids = [tok.encode(t, add_special_tokens=False)[0] for t in tokens]
        prompts = [
            tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            for conv in conversations
        ]
        shares = [0.0] * len(prompts)
        for idx, enc in prompt_batches(model, tok, prompts, self.batch_size, self.desc):
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as if unpadded
            last = model(**enc, position_ids=positions).logits[:, -1, ids].float()
            for i, share in zip(idx, torch.softmax(last, dim=-1)[:, 0].tolist()):
                shares[i] = share
        return shares
