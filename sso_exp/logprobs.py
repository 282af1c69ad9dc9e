"""Chat prompts to token ids, and response log-probs under a causal LM.

Only response tokens count: prompt and padding are masked. Position ids follow the
attention mask, so left- and right-padded batches give the same values."""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .batching import length_batches
from .losses import SeqLogps


class Encoded(NamedTuple):
    """One prompt + response as token ids; the first `n_prompt` are the prompt."""
    ids: List[int]
    n_prompt: int


def chat_prompt(tok: PreTrainedTokenizerBase, system: Optional[str], user: str,
                history: Sequence[Sequence[str]] = ()) -> str:
    """The model's own chat template; no system message when `system` is empty; `history`
    holds earlier [user, assistant] turns, as in the authors' records."""
    messages = ([{"role": "system", "content": system}] if system else [])
    for u, a in history:
        messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": user})
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(tok: PreTrainedTokenizerBase, prompt: str, response: str, max_length: int) -> Encoded:
    """Prompt and response tokenized apart (no merge across the boundary), response ended
    with EOS; over `max_length` the response is cut first, then the prompt's start."""
    p = tok(prompt, add_special_tokens=False).input_ids
    r = tok(response, add_special_tokens=False).input_ids + [tok.eos_token_id]
    r = r[:max(1, max_length - len(p))]
    p = p[max(0, len(p) + len(r) - max_length):]
    return Encoded(p + r, len(p))


def pad(seqs: Sequence[Encoded], pad_id: int, left: bool = False) -> Dict[str, Tensor]:
    """A padded batch: input_ids, attention_mask and the response-token loss_mask."""
    width = max(len(s.ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    loss = torch.zeros_like(ids)
    for row, s in enumerate(seqs):
        n = len(s.ids)
        cols = slice(width - n, width) if left else slice(0, n)
        ids[row, cols] = torch.tensor(s.ids)
        attn[row, cols] = 1
        loss[row, cols] = torch.tensor([0] * s.n_prompt + [1] * (n - s.n_prompt))
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss}


def sequence_logps(model: PreTrainedModel, batch: Dict[str, Tensor]) -> SeqLogps:
    """Summed log-probs of the masked tokens per row, computed in float32."""
    attn = batch["attention_mask"]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=batch["input_ids"], attention_mask=attn,
                   position_ids=positions, use_cache=False).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    mask = batch["loss_mask"][:, 1:].to(logits.dtype)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    token_logps = (picked - torch.logsumexp(logits, dim=-1)) * mask
    return SeqLogps(token_logps.sum(-1), mask.sum(-1))


@torch.no_grad()
def score(model: PreTrainedModel, seqs: Sequence[Encoded], pad_id: int,
          batch_size: int, desc: Optional[str] = None) -> SeqLogps:
    """Log-probs of many sequences without gradient, batched by length to cut padding."""
    sums, counts = torch.zeros(len(seqs)), torch.zeros(len(seqs))
    was_training = model.training
    model.eval()
    for idx in length_batches([len(s.ids) for s in seqs], batch_size, desc):
        batch = {k: v.to(model.device) for k, v in pad([seqs[i] for i in idx], pad_id).items()}
        out = sequence_logps(model, batch)
        sums[idx], counts[idx] = out.sum.float().cpu(), out.count.float().cpu()
    model.train(was_training)
    return SeqLogps(sums, counts)
