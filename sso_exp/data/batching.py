"""Batch orders. Sampling, scoring and answering sort their inputs by length so a batch
wastes little compute on padding, and show progress per item; training shuffles per epoch
and deals the order across data-parallel ranks."""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

import torch
from torch.utils.data import Sampler
from tqdm.auto import tqdm

from ..distributed import is_main, rank, world


def length_batches(
    lengths: Sequence[int],
    batch_size: int,
    desc: Optional[str] = None,
    sizes: Optional[Sequence[int]] = None,
) -> Iterator[List[int]]:
    """Input indices, shortest first, `batch_size` at a time; a progress bar when `desc`
    (rank 0's only: the ranks' shares are about equal) counting the inputs' `sizes`
    (sequences per input; 1 each when None)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = sizes or [1] * len(order)
    quiet = desc is None or not is_main()
    with tqdm(total=sum(sizes), desc=desc, unit="seq", disable=quiet) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield idx
            bar.update(sum(sizes[i] for i in idx))


class RankShards(Sampler):
    """Training order: a seeded shuffle per epoch, dealt across DDP ranks (rank r of n takes
    items r, r + n, ...; the order is padded by wrapping so every rank gets as many). Thus n
    ranks of batch b see the same global batches as one process of batch n x b; Lightning's
    own distributed sampler is turned off (`use_distributed_sampler=False`)."""

    def __init__(self, size: int, shuffle: bool, seed: int):
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it at each epoch start
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // world())

    def __iter__(self) -> Iterator[int]:
        r, w = rank(), world()
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = (
            torch.randperm(self.size, generator=gen) if self.shuffle else torch.arange(self.size)
        )
        order = order.repeat(-(-len(self) * w // max(self.size, 1)))[: len(self) * w]
        return iter(order[r::w].tolist())
