"""Rewards of a Bradley-Terry reward model: the head's output at the last real token,
located by the attention mask (chat models often pad with their end-of-turn token, so the
pad id cannot mark where a sequence ends)."""

from __future__ import annotations

from functools import partial
from typing import Dict, List, Sequence

import torch
from torch import Tensor
from transformers import PreTrainedModel

from ..data.batching import length_batches
from ..data.encoding import Encoded
from ..data.packing import alone
from ..distributed import shard_map


def rewards(rm: PreTrainedModel, batch: Dict[str, Tensor]) -> Tensor:
    """One scalar per row of a batch from data.packing.alone, in float32."""
    attn = batch["attention_mask"]
    hidden = rm.base_model(
        input_ids=batch["input_ids"],
        attention_mask=attn,
        position_ids=batch["position_ids"],
    ).last_hidden_state
    last = attn.sum(-1) - 1
    return rm.score(hidden[torch.arange(len(last), device=last.device), last]).squeeze(-1).float()


def score_conversations(
    rm: PreTrainedModel, seqs: Sequence[Encoded], pad_id: int, batch_size: int
) -> Tensor:
    """The reward of each encoded conversation, batched by length; with several ranks each
    scores its share."""
    return shard_map(partial(_rewards, rm, pad_id, batch_size), seqs)


@torch.no_grad()
def _rewards(rm: PreTrainedModel, pad_id: int, batch_size: int, seqs: List[Encoded]) -> Tensor:
    out = torch.zeros(len(seqs))
    rm.eval()
    for idx in length_batches([len(s.ids) for s in seqs], batch_size, "rewards"):
        batch = {k: v.to(rm.device) for k, v in alone([seqs[i] for i in idx], pad_id).items()}
        out[idx] = rewards(rm, batch).cpu()
    return out


def score_pairs(
    rm: PreTrainedModel, encoded: Sequence[Dict[str, Encoded]], pad_id: int, batch_size: int
) -> Tensor:
    """[n, 2] rewards of (chosen, rejected) for each pair."""
    flat = [e["chosen"] for e in encoded] + [e["rejected"] for e in encoded]
    return torch.stack(score_conversations(rm, flat, pad_id, batch_size).chunk(2), dim=-1)
