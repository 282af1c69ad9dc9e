"""Preference pairs as training batches: SSO records' pairs (docs/algorithm.md §4),
tokenized once, with the reference log-probs computed before training stored alongside,
and reward-model pairs (chosen then rejected in one batch)."""

from __future__ import annotations

from functools import partial
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .batching import RankShards
from .encoding import SEQUENCES, Encoded, sequence_names
from .packing import alone, pack


class SeqLogps(NamedTuple):
    """Summed token log-probs of a response and its token count."""

    sum: Tensor
    count: Tensor

    @property
    def mean(self) -> Tensor:
        return self.sum / self.count.clamp(min=1)


class Pair(NamedTuple):
    chosen: SeqLogps
    rejected: SeqLogps


class PairDataset(Dataset):
    """Item i: record i's pair sequences and, for DPO/IPO, their reference log-probs."""

    def __init__(
        self,
        encoded: Dict[str, List[Encoded]],
        pairs: Sequence[str],
        reference: Optional[Dict[str, SeqLogps]] = None,
    ):
        self.encoded, self.pairs, self.reference = encoded, list(pairs), reference

    def __len__(self) -> int:
        return len(self.encoded[f"{self.pairs[0]}_chosen"])

    def __getitem__(self, i: int) -> Dict:
        item = {n: self.encoded[n][i] for n in sequence_names(self.pairs)}
        if self.reference is not None:
            item["ref"] = {
                n: (self.reference[n].sum[i], self.reference[n].count[i])
                for n in sequence_names(self.pairs)
            }
        return item


def forwards(pairs: Sequence[str]) -> List[List[str]]:
    """Which pairs share one forward: those under a principle (p, n) apart from those under
    the bare query (main). Their prompts are about as long (~200 tokens, against ~40), so
    their rows pad little together; one forward in place of two gives each weight two uses
    to sum gradients over instead of three, and larger matmuls."""
    bare = [p for p in pairs if SEQUENCES[f"{p}_chosen"][0] is None]
    steered = [p for p in pairs if p not in bare]
    return [group for group in (bare, steered) if group]


def collate(
    items: List[Dict], pairs: Sequence[str], pad_id: int, share: bool, batch_size: int
) -> Dict:
    """Per forward (`forwards`), its pairs' names and one packed batch (data/packing.py):
    each pair's B chosen then B rejected sequences, pair after pair; with `share`, a
    record's chosen and rejected in one row, their prompt once. A short last batch of one
    record keeps a row per sequence: torch.compile specializes a dynamic size at 1, so a
    one-row batch after wider ones recompiles the decoder layers (seconds), where two
    rows cost one prompt's forward and backward."""
    b = len(items)
    share = share and (b > 1 or batch_size == 1)
    batch: Dict = {"forwards": []}
    for names in forwards(pairs):
        seqs = [it[f"{p}_{side}"] for p in names for side in ("chosen", "rejected") for it in items]
        chosen = [c for k in range(len(names)) for c in range(2 * b * k, 2 * b * k + b)]
        groups = [[c, c + b] for c in chosen] if share else [[j] for j in range(len(seqs))]
        batch["forwards"].append((names, pack(seqs, groups, pad_id)))
    if "ref" in items[0]:

        def ref(name: str) -> SeqLogps:
            return SeqLogps(
                torch.stack([it["ref"][name][0] for it in items]),
                torch.stack([it["ref"][name][1] for it in items]),
            )

        batch["ref"] = {p: Pair(ref(f"{p}_chosen"), ref(f"{p}_rejected")) for p in pairs}
    return batch


def loader(
    dataset: PairDataset, batch_size: int, pad_id: int, shuffle: bool, seed: int, share: bool
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=RankShards(len(dataset), shuffle, seed),
        collate_fn=partial(
            collate, pairs=dataset.pairs, pad_id=pad_id, share=share, batch_size=batch_size
        ),
    )


def collate_conversations(items: List[Dict[str, Encoded]], pad_id: int) -> Dict[str, Tensor]:
    """A reward model's batch: chosen then rejected rows, so one forward scores both."""
    return alone([it["chosen"] for it in items] + [it["rejected"] for it in items], pad_id)


def conversation_loader(
    encoded: List[Dict[str, Encoded]], batch_size: int, pad_id: int, shuffle: bool, seed: int = 0
) -> DataLoader:
    return DataLoader(
        encoded,
        batch_size=batch_size,
        sampler=RankShards(len(encoded), shuffle, seed),
        collate_fn=partial(collate_conversations, pad_id=pad_id),
    )
