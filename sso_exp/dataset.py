"""SSO records as training batches: the three preference pairs of DESIGN.md section 3,
tokenized once, with the reference log-probs computed before training stored alongside."""
from __future__ import annotations

from functools import partial
from typing import Dict, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from .batching import RankShards
from .logprobs import Encoded, chat_prompt, encode, pad
from .losses import Pair, SeqLogps

# sequence name -> (system prompt field, or None for the plain query; response field)
SEQUENCES = {
    "main_chosen": (None, "chosen"), "main_rejected": (None, "rejected"),    # x: y+ > y-
    "p_chosen": ("p_system", "chosen"), "p_rejected": ("p_system", "rejected"),  # p+: y+ > y-
    "n_chosen": ("n_system", "raw"), "n_rejected": ("n_system", "chosen"),   # p-: y0 > y+
    "raw": (None, "raw"),  # y0 under x: on-policyness only
    "pminus_yminus": ("n_system", "rejected"),  # y- under p-: the log-prob filter only
}
ON_POLICY = ("main_chosen", "main_rejected", "raw")


def pair_names(use_g: bool) -> List[str]:
    """The pairs the loss needs: the G term adds p and n to main."""
    return ["main", "p", "n"] if use_g else ["main"]


def sequence_names(pairs: Sequence[str]) -> List[str]:
    return [f"{p}_{side}" for p in pairs for side in ("chosen", "rejected")]


def encode_records(tok: PreTrainedTokenizerBase, records: Sequence[Dict], names: Sequence[str],
                   max_length: int) -> Dict[str, List[Encoded]]:
    """The named sequences of every record, as token ids."""
    out: Dict[str, List[Encoded]] = {n: [] for n in names}
    for rec in records:
        prompts: Dict[Optional[str], str] = {}
        for name in names:
            system, response = SEQUENCES[name]
            if system not in prompts:
                prompts[system] = chat_prompt(tok, rec[system] if system else None,
                                              rec["instruction"], rec.get("history") or ())
            out[name].append(encode(tok, prompts[system], rec[response], max_length))
    return out


class PairDataset(Dataset):
    """Item i: record i's pair sequences and, for DPO/IPO, their reference log-probs."""

    def __init__(self, encoded: Dict[str, List[Encoded]], pairs: Sequence[str],
                 reference: Optional[Dict[str, SeqLogps]] = None):
        self.encoded, self.pairs, self.reference = encoded, list(pairs), reference

    def __len__(self) -> int:
        return len(self.encoded[f"{self.pairs[0]}_chosen"])

    def __getitem__(self, i: int) -> Dict:
        item = {n: self.encoded[n][i] for n in sequence_names(self.pairs)}
        if self.reference is not None:
            item["ref"] = {n: (self.reference[n].sum[i], self.reference[n].count[i])
                           for n in sequence_names(self.pairs)}
        return item


def collate(items: List[Dict], pairs: Sequence[str], pad_id: int) -> Dict:
    """Per pair, one right-padded batch of the B chosen then the B rejected sequences."""
    batch: Dict = {p: pad([it[f"{p}_chosen"] for it in items] +
                          [it[f"{p}_rejected"] for it in items], pad_id) for p in pairs}
    if "ref" in items[0]:
        def ref(name: str) -> SeqLogps:
            return SeqLogps(torch.stack([it["ref"][name][0] for it in items]),
                            torch.stack([it["ref"][name][1] for it in items]))
        batch["ref"] = {p: Pair(ref(f"{p}_chosen"), ref(f"{p}_rejected")) for p in pairs}
    return batch


def loader(dataset: PairDataset, batch_size: int, pad_id: int, shuffle: bool,
           seed: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=RankShards(len(dataset), shuffle, seed),
                      collate_fn=partial(collate, pairs=dataset.pairs, pad_id=pad_id))
