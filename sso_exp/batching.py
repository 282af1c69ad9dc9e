"""Batches of similar length: sampling, scoring and answering all sort their inputs by
length so a batch wastes little compute on padding, and all show progress per item."""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

from tqdm.auto import tqdm


def length_batches(lengths: Sequence[int], batch_size: int,
                   desc: Optional[str] = None) -> Iterator[List[int]]:
    """Input indices, shortest first, `batch_size` at a time; a progress bar when `desc`."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    with tqdm(total=len(order), desc=desc, unit="seq", disable=desc is None) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield idx
            bar.update(len(idx))
