"""A `ChatBackend` on a local Hugging Face causal LM, e.g. the policy judging itself.

Decoding is greedy, so the same conversation always gets the same judgement; this is why
`sso_exp.generation.sample` (nucleus sampling) is not reused."""
from __future__ import annotations

from typing import List, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .llm import Message


class PolicyBackend:
    """Greedy replies in batches of `batch_size`, left-padded, at most `max_new_tokens`."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 max_new_tokens: int = 256, batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    @torch.no_grad()
    def complete(self, conversations: Sequence[List[Message]]) -> List[str]:
        tok, model = self.tokenizer, self.model
        prompts = [tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
                   for conv in conversations]
        was_training = model.training
        model.eval()
        replies: List[str] = []
        for start in range(0, len(prompts), self.batch_size):
            enc = tok(prompts[start:start + self.batch_size], return_tensors="pt", padding=True,
                      padding_side="left", add_special_tokens=False).to(model.device)
            out = model.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens,
                                 pad_token_id=tok.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            replies += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        model.train(was_training)
        return replies
