"""Bradley-Terry reward models: conversations to token ids, the reward of each (the head's
output at the last real token, located by the attention mask: chat models often pad with
their end-of-turn token, so the pad id cannot mark where a sequence ends), and the
LightningModule that trains one."""
from __future__ import annotations

from functools import partial
from typing import Dict, List, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .batching import RankShards, length_batches
from .config import ScheduleConfig
from .logprobs import Encoded, pad
from .losses import bradley_terry_loss
from .optim import adamw_cosine
from .preferences import Messages, PrefPair


def encode_conversation(tok: PreTrainedTokenizerBase, messages: Messages, max_length: int) -> Encoded:
    """The chat-formatted conversation; over `max_length` its start is cut (the answer
    being judged is at the end)."""
    ids = tok(tok.apply_chat_template(messages, tokenize=False),
              add_special_tokens=False).input_ids
    return Encoded(ids[-max_length:], 0)


def encode_pair(tok: PreTrainedTokenizerBase, pair: PrefPair, max_length: int) -> Dict[str, Encoded]:
    def conv(answer: str) -> Encoded:
        return encode_conversation(tok, pair.prompt + [{"role": "assistant", "content": answer}],
                                   max_length)
    return {"chosen": conv(pair.chosen), "rejected": conv(pair.rejected)}


def rewards(rm: PreTrainedModel, batch: Dict[str, Tensor]) -> Tensor:
    """One scalar per right-padded row, in float32."""
    attn = batch["attention_mask"]
    hidden = rm.base_model(input_ids=batch["input_ids"], attention_mask=attn,
                           position_ids=(attn.cumsum(-1) - 1).clamp(min=0)).last_hidden_state
    last = attn.sum(-1) - 1
    return rm.score(hidden[torch.arange(len(last), device=last.device), last]).squeeze(-1).float()


def collate_pairs(items: List[Dict[str, Encoded]], pad_id: int) -> Dict[str, Tensor]:
    """Chosen then rejected rows in one batch, so one forward scores both."""
    return pad([it["chosen"] for it in items] + [it["rejected"] for it in items], pad_id)


def pair_loader(encoded: List[Dict[str, Encoded]], batch_size: int, pad_id: int,
                shuffle: bool, seed: int = 0) -> DataLoader:
    return DataLoader(encoded, batch_size=batch_size, sampler=RankShards(len(encoded), shuffle, seed),
                      collate_fn=partial(collate_pairs, pad_id=pad_id))


@torch.no_grad()
def score_conversations(rm: PreTrainedModel, seqs: Sequence[Encoded], pad_id: int,
                        batch_size: int) -> Tensor:
    """The reward of each encoded conversation, batched by length."""
    out = torch.zeros(len(seqs))
    rm.eval()
    for idx in length_batches([len(s.ids) for s in seqs], batch_size, "rewards"):
        batch = {k: v.to(rm.device) for k, v in pad([seqs[i] for i in idx], pad_id).items()}
        out[idx] = rewards(rm, batch).cpu()
    return out


def score_pairs(rm: PreTrainedModel, encoded: Sequence[Dict[str, Encoded]], pad_id: int,
                batch_size: int) -> Tensor:
    """[n, 2] rewards of (chosen, rejected) for each pair."""
    flat = [e["chosen"] for e in encoded] + [e["rejected"] for e in encoded]
    return torch.stack(score_conversations(rm, flat, pad_id, batch_size).chunk(2), dim=-1)


class RewardModule(pl.LightningModule):
    def __init__(self, rm: PreTrainedModel, schedule: ScheduleConfig, lr: float):
        super().__init__()
        self.rm, self.schedule, self.lr = rm, schedule, lr

    def on_fit_start(self) -> None:
        self.rm.train()  # from_pretrained and scoring leave it in eval mode

    def training_step(self, batch: Dict[str, Tensor], batch_idx: int) -> Tensor:
        chosen, rejected = rewards(self.rm, batch).chunk(2)
        loss, metrics = bradley_terry_loss(chosen, rejected)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=len(chosen), sync_dist=True)
        self.log("rm_loss", loss, prog_bar=True, logger=False)
        return loss

    def configure_optimizers(self):
        return adamw_cosine(self.rm.parameters(), self.schedule, self.lr, self.trainer)
