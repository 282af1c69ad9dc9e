"""Training orders: seeded per epoch, and dealt across ranks like one big batch."""

import pytest

from sso_exp.data import batching
from sso_exp.data.batching import RankShards, length_batches


def test_length_batches_go_shortest_first():
    assert list(length_batches([5, 1, 3, 2], 3)) == [[1, 3, 2], [0]]


def dealt(size, world, epoch=0, shuffle=True):
    shards = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batching, "world", lambda: world)
        for rank in range(world):
            mp.setattr(batching, "rank", lambda rank=rank: rank)
            sampler = RankShards(size, shuffle, seed=7)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
    return shards


@pytest.mark.parametrize("size", [4, 5])
def test_ranks_interleave_the_single_process_order(size):
    (single,) = dealt(size, 1)
    r0, r1 = dealt(size, 2)
    assert sorted(single) == list(range(size))
    assert len(r0) == len(r1) == -(-size // 2)  # padded by wrapping: equal step counts
    assert [i for pair in zip(r0, r1) for i in pair][:size] == single


def test_each_epoch_has_its_own_seeded_order():
    assert dealt(50, 1, epoch=0) == dealt(50, 1, epoch=0) != dealt(50, 1, epoch=1)
    assert dealt(5, 1, shuffle=False) == [[0, 1, 2, 3, 4]]
