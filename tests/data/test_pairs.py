from sso_exp.data.encoding import Encoded
from sso_exp.data.pairs import PairDataset, forwards, loader


def _dataset(n: int) -> PairDataset:
    prompt = [5, 6, 7, 8]
    return PairDataset(
        {
            "main_chosen": [Encoded(prompt + [10 + i, 2], 4) for i in range(n)],
            "main_rejected": [Encoded(prompt + [20 + i, 21, 2], 4) for i in range(n)],
        },
        ["main"],
    )


def _rows(batch_size: int, n: int) -> list:
    data = loader(_dataset(n), batch_size, pad_id=0, shuffle=False, seed=0, share=True)
    return [len(batch["forwards"][0][1]["input_ids"]) for batch in data]


def test_a_records_pair_shares_one_row_but_a_short_last_batch_of_one_record_does_not():
    # a compiled layer graph, specialized at one row, would recompile for the last batch
    assert _rows(batch_size=2, n=3) == [2, 2]
    assert _rows(batch_size=2, n=4) == [2, 2]


def test_batches_of_one_record_share_their_row():
    assert _rows(batch_size=1, n=2) == [1, 1]


def test_pairs_under_a_principle_share_a_forward_apart_from_the_bare_query():
    assert forwards(["main", "p", "n"]) == [["main"], ["p", "n"]]
    assert forwards(["p", "n"]) == [["p", "n"]]
    assert forwards(["main"]) == [["main"]]
