"""A `ChatBackend` on a local Hugging Face causal LM, e.g. the policy judging itself.

Decoding is greedy, so the same conversation always gets the same judgement (the one
generate loop, without the sampler's nucleus step). With several ranks each replies to its
share of the conversations."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ...distributed import shard_map
from ...models.generate import Answers, generate_texts, prompt_batches
from .llm import Message


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

    def complete(self, conversations: Sequence[List[Message]]) -> List[str]:
        return self.answers(conversations).texts

    def answers(self, conversations: Sequence[List[Message]]) -> Answers:
        """The replies and which of them the token budget cut short."""
        return shard_map(self._answers, conversations)

    def _answers(self, conversations: List[List[Message]]) -> Answers:
        tok = self.tokenizer
        prompts = [
            tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            for conv in conversations
        ]
        return generate_texts(
            self.model,
            tok,
            prompts,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
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
