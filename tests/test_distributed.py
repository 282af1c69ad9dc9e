"""The ranks' helpers on two CPU processes over gloo: each rank works on its own contiguous
share, every rank gets all results in the items' order, and a rank that fails stops the
others instead of leaving them waiting."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import free_port
from sso_exp import distributed
from sso_exp.data.pairs import SeqLogps
from sso_exp.errors import SSOError


def test_shares_cover_the_items_once_in_order():
    for n in range(7):
        blocks = [distributed.share(n, r, 3) for r in range(3)]
        assert [i for b in blocks for i in range(n)[b]] == list(range(n))


def test_stream_seeds_are_stable_and_distinct():
    a = distributed.stream_seed(42, 1, "", 0, "y+")
    assert a == distributed.stream_seed(42, 1, "", 0, "y+") and 0 <= a < 2**63
    assert len({distributed.stream_seed(42, 1, "", i, r) for i in range(50) for r in "+-0"}) == 150


def _worker(rank: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        seen = []

        def square(xs):
            seen.extend(xs)
            return [x * x for x in xs]

        texts = distributed.shard_map(square, list(range(5)))
        scores = distributed.shard_map(
            lambda xs: SeqLogps(torch.tensor(xs, dtype=torch.float), torch.ones(len(xs))),
            [1, 2, 3],
        )
        chosen = distributed.on_main(lambda: f"decided by rank {distributed.rank()}")

        def fail_on_one(xs):
            if distributed.rank() == 1:
                raise ValueError("bad item")
            return xs

        try:
            distributed.shard_map(fail_on_one, [1, 2])
            failure = None
        except (SSOError, ValueError) as err:
            failure = f"{type(err).__name__}: {err}"
        out.put((rank, seen, texts, scores.sum.tolist(), chosen, failure))
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_the_work_and_all_get_every_result():
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict((r[0], r[1:]) for r in (out.get(timeout=100) for _ in procs))
    for p in procs:
        p.join(timeout=30)
    assert results[0][0] == [0, 1] and results[1][0] == [2, 3, 4]  # each item once
    for _, texts, scores, chosen, _ in results.values():
        assert texts == [0, 1, 4, 9, 16] and scores == [1.0, 2.0, 3.0]
        assert chosen == "decided by rank 0"
    assert results[1][4] == "ValueError: bad item"
    assert results[0][4] == "RankFailed: rank 1 failed: ValueError: bad item"
