"""Sequences that begin alike, computed once. A group of sequences (an SSO pair's chosen and
rejected after one prompt; every sequence of a record under one system prompt) becomes one
row: the tokens they all begin with, then each one's remainder. A tree mask lets each
remainder see the common part and itself only, and its position ids go on from where the
common part ends, so every token gets the hidden state it would get alone. The prompt's
forward (and in training its backward) runs once instead of once per response: SSO's
principle prompts are long, and the default job's pairs are 28% prompt tokens counted twice.

Written here because the libraries pack whole sequences side by side (TRL's padding-free
batches, flash-attention's varlen), never one prefix under several continuations."""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import Tensor

from .encoding import Encoded


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all of `seqs` share."""
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        if any(s[i] != first[i] for s in seqs[1:]):
            return i
    return n


def prompt_groups(lists: Sequence[Sequence[Encoded]]) -> List[List[int]]:
    """Indices into the lists' concatenation, grouped: item i of every list whose prompt
    tokens equal (the same record under the same system prompt) in one group."""
    groups: Dict[tuple, List[int]] = {}
    start = 0
    for seqs in lists:
        for i, s in enumerate(seqs):
            groups.setdefault((i, tuple(s.ids[: s.n_prompt])), []).append(start + i)
        start += len(seqs)
    return list(groups.values())


def _row(seqs: Sequence[Encoded]):
    """One group's tokens, positions, branch per column (0: the common part, j: sequence
    j's remainder) and each sequence's counted tokens as (column of the hidden state that
    predicts it, token)."""
    ids = [s.ids for s in seqs]
    shared = common_prefix(ids) if len(seqs) > 1 else len(ids[0])
    tokens, positions, branch = list(ids[0][:shared]), list(range(shared)), [0] * shared
    counted = []
    for j, s in enumerate(seqs, start=1):
        start = len(tokens)
        tokens += s.ids[shared:]
        positions += range(shared, len(s.ids))
        branch += [j] * (len(s.ids) - shared)
        column = [q if q < shared else start + q - shared for q in range(len(s.ids))]
        counted.append([(column[t - 1], s.ids[t]) for t in range(max(s.n_prompt, 1), len(s.ids))])
    return tokens, positions, branch, counted


def tree_mask(branch: Tensor) -> Tensor:
    """[rows, 1, W, W] boolean attention (True: attend) from each column's branch (-1:
    padding): causal, and a remainder sees the common part (branch 0) and itself only.
    A padding column sees itself, so no attention row is empty."""
    b = branch[:, None, :, None], branch[:, None, None, :]
    width = branch.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    seen = causal & ((b[1] == 0) | (b[1] == b[0])) & (b[1] >= 0) & (b[0] >= 0)
    return seen | (torch.eye(width, dtype=torch.bool) & (b[0] < 0))


def alone(seqs: Sequence[Encoded], pad_id: int) -> Dict[str, Tensor]:
    """`pack` with every sequence on a row of its own: a plain right-padded batch."""
    return pack(seqs, [[i] for i in range(len(seqs))], pad_id)


def pack(
    seqs: Sequence[Encoded], groups: Sequence[Sequence[int]], pad_id: int
) -> Dict[str, Tensor]:
    """A right-padded batch, a row per group of `seqs` indices. `predictors` (flat row x
    column indices of the hidden states that predict the counted tokens), `targets` and
    `owners` (the index in `seqs` of each) name the response tokens to score; `counts` has
    each sequence's number. The attention mask is [rows, W] when every group is one
    sequence (what any attention kernel takes), else the tree mask."""
    rows = [_row([seqs[k] for k in g]) for g in groups]
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros_like(ids)
    branch = torch.full_like(ids, -1)
    predictors, targets, owners = [], [], []
    counts = torch.zeros(len(seqs))
    for r, ((tokens, positions, br, counted), group) in enumerate(zip(rows, groups)):
        n = len(tokens)
        ids[r, :n], pos[r, :n], branch[r, :n] = (torch.tensor(x) for x in (tokens, positions, br))
        for k, pairs in zip(group, counted):
            predictors += [r * width + c for c, _ in pairs]
            targets += [t for _, t in pairs]
            owners += [k] * len(pairs)
            counts[k] = len(pairs)
    single = all(len(g) == 1 for g in groups)
    return {
        "input_ids": ids,
        "position_ids": pos,
        "attention_mask": (branch >= 0).long() if single else tree_mask(branch),
        "predictors": torch.tensor(predictors, dtype=torch.long),
        "targets": torch.tensor(targets, dtype=torch.long),
        "owners": torch.tensor(owners, dtype=torch.long),
        "counts": counts,
    }
