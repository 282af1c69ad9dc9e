"""Chat prompts to token ids, and response log-probs under a causal LM.

Only response tokens count: prompt and padding are masked. Position ids follow the
attention mask, so left- and right-padded batches give the same values."""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint
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


def _token_logps(weight: Tensor, bias: Optional[Tensor], hidden: Tensor, targets: Tensor) -> Tensor:
    """log p(target) for each row of `hidden`: the picked logit minus the logsumexp, both
    in float32 whatever dtype the projection ran in."""
    logits = F.linear(hidden, weight, bias).float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)


def response_logps(head: torch.nn.Module, hidden: Tensor, targets: Tensor, chunk: int) -> Tensor:
    """Token log-probs through the vocabulary projection `chunk` rows at a time. Under
    gradient each chunk is recomputed in backward, so a [rows, vocab] float32 logits tensor
    never exists for more than one chunk (it would dwarf the model's activations)."""
    w, b = head.weight, head.bias
    if chunk <= 0 or len(hidden) <= chunk:
        return _token_logps(w, b, hidden, targets)
    parts = []
    for start in range(0, len(hidden), chunk):
        h, t = hidden[start:start + chunk], targets[start:start + chunk]
        if torch.is_grad_enabled():
            parts.append(checkpoint(_token_logps, w, b, h, t, use_reentrant=False))
        else:
            parts.append(_token_logps(w, b, h, t))
    return torch.cat(parts)


def causal_lm(model: torch.nn.Module) -> PreTrainedModel:
    """The HF model under a peft wrapper (its LoRA layers stay in place and active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def sequence_logps(model: torch.nn.Module, batch: Dict[str, Tensor], chunk: int = 256) -> SeqLogps:
    """Summed log-probs of the masked tokens per row. The decoder runs once; only response
    positions go through the vocabulary projection, in chunks of `chunk` positions."""
    lm = causal_lm(model)
    if getattr(lm.config, "final_logit_softcapping", None) or getattr(lm.config, "logit_scale", None):
        raise NotImplementedError(f"{type(lm).__name__}: scaled/capped logits are not supported")
    attn = batch["attention_mask"]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    hidden = lm.base_model(input_ids=batch["input_ids"], attention_mask=attn,
                           position_ids=positions, use_cache=False).last_hidden_state
    mask = batch["loss_mask"][:, 1:].bool()
    token_logps = response_logps(lm.get_output_embeddings(), hidden[:, :-1][mask],
                                 batch["input_ids"][:, 1:][mask], chunk)
    rows = mask.nonzero()[:, 0]
    sums = torch.zeros(len(mask), dtype=torch.float32, device=hidden.device)
    return SeqLogps(sums.index_add(0, rows, token_logps), mask.sum(-1).float())


@torch.no_grad()
def score(model: PreTrainedModel, seqs: Sequence[Encoded], pad_id: int,
          batch_size: int, desc: Optional[str] = None, chunk: int = 256) -> SeqLogps:
    """Log-probs of many sequences without gradient, batched by length to cut padding."""
    sums, counts = torch.zeros(len(seqs)), torch.zeros(len(seqs))
    was_training = model.training
    model.eval()
    for idx in length_batches([len(s.ids) for s in seqs], batch_size, desc):
        batch = {k: v.to(model.device) for k, v in pad([seqs[i] for i in idx], pad_id).items()}
        out = sequence_logps(model, batch, chunk)
        sums[idx], counts[idx] = out.sum.float().cpu(), out.count.float().cpu()
    model.train(was_training)
    return SeqLogps(sums, counts)


def score_named(model: PreTrainedModel, encoded: Dict[str, List[Encoded]], pad_id: int,
                batch_size: int, chunk: int = 256) -> Dict[str, SeqLogps]:
    """`score` for each named list of sequences (a record set's chosen, rejected, ...)."""
    return {name: score(model, seqs, pad_id, batch_size, f"scoring {name}", chunk)
            for name, seqs in encoded.items()}
