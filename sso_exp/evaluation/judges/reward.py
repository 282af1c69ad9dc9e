"""A trained Bradley-Terry reward model as a pairwise judge: P(a better than b) is
sigmoid(r(a) - r(b)), the model's own likelihood of that preference. It never fails to
parse, and it cannot grade 1-10 (so it judges pairs, not MT-Bench)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from ...data.encoding import encode_answer
from ...models.rewards import score_conversations


class RewardJudge:
    def __init__(self, rm, tok, max_length: int, batch_size: int):
        self.rm, self.tok, self.max_length, self.batch_size = rm, tok, max_length, batch_size
        self.calls = 0
        self.unparsed = 0

    def prefer(self, items: Sequence[Tuple[str, str, str]]) -> List[Optional[float]]:
        seqs = [
            encode_answer(self.tok, q, answer, self.max_length)
            for q, a, b in items
            for answer in (a, b)
        ]
        self.calls += len(items)
        r = score_conversations(self.rm, seqs, self.tok.pad_token_id, self.batch_size)
        return torch.sigmoid(r[0::2] - r[1::2]).tolist()
