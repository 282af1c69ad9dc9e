"""Sequences that begin alike share a row: the common tokens once, each remainder after,
positions going on from the common part, a remainder seeing only the common part and
itself, and every counted token read from the hidden state that predicts it alone."""

import torch

from sso_exp.data.encoding import Encoded
from sso_exp.data.packing import pack, prompt_groups

PAD = 0


def _flat(batch, key, row):
    return batch[key][row].tolist()


def test_a_pair_shares_its_common_tokens_and_positions_go_on_from_them():
    chosen, rejected = Encoded([5, 6, 7, 8], 2), Encoded([5, 6, 9], 2)
    batch = pack([chosen, rejected], [[0, 1]], PAD)
    assert _flat(batch, "input_ids", 0) == [5, 6, 7, 8, 9]
    assert _flat(batch, "position_ids", 0) == [0, 1, 2, 3, 2]
    # chosen's 7, 8 from columns 1, 2; rejected's 9 from column 1 (the shared 6)
    assert batch["predictors"].tolist() == [1, 2, 1]
    assert batch["targets"].tolist() == [7, 8, 9]
    assert batch["owners"].tolist() == [0, 0, 1]
    assert batch["counts"].tolist() == [2, 1]


def test_a_remainder_sees_the_common_part_and_itself_only():
    batch = pack([Encoded([5, 6, 7, 8], 2), Encoded([5, 6, 9, 10], 2)], [[0, 1]], PAD)
    seen = batch["attention_mask"][0, 0]
    assert seen[2].tolist() == [True, True, True, False, False, False]  # chosen's 7
    assert seen[4].tolist() == [True, True, False, False, True, False]  # rejected's 9
    assert seen[5].tolist() == [True, True, False, False, True, True]


def test_padding_columns_see_only_themselves_and_rows_of_one_get_a_plain_mask():
    short, long = Encoded([1, 2], 1), Encoded([3, 4, 5, 6], 1)
    tree = pack([short, long, long], [[0], [1, 2]], PAD)
    assert tree["input_ids"].shape == (2, 4)
    assert tree["attention_mask"][0, 0, 3].tolist() == [False, False, False, True]
    plain = pack([short, long], [[0], [1]], PAD)
    assert plain["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert plain["counts"].tolist() == [1, 3]


def test_a_prediction_from_the_prompts_end_counts_for_every_response():
    """Responses that differ from their first token are both predicted by the prompt's
    last hidden state."""
    batch = pack([Encoded([1, 2, 3], 2), Encoded([1, 2, 4], 2)], [[0, 1]], PAD)
    assert batch["predictors"].tolist() == [1, 1]
    assert batch["targets"].tolist() == [3, 4]


def test_prompt_groups_join_a_records_sequences_under_the_same_prompt():
    x, p = [1, 2], [9, 2]
    first = [Encoded(x + [3], 2), Encoded(p + [3], 2)]  # record 0, record 1
    second = [Encoded(x + [4], 2), Encoded(x + [5], 2)]
    assert prompt_groups([first, second]) == [[0, 2], [1], [3]]


def test_no_token_is_lost_or_counted_twice():
    seqs = [Encoded(list(range(1, n)), 3) for n in (6, 9, 7)]
    batch = pack(seqs, [[0, 1, 2]], PAD)
    assert batch["counts"].tolist() == [len(s.ids) - s.n_prompt for s in seqs]
    flat = batch["input_ids"].reshape(-1)
    for owner, seq in enumerate(seqs):
        mine = batch["owners"] == owner
        assert batch["targets"][mine].tolist() == seq.ids[seq.n_prompt :]
        # the token before each target sits in the predicting column
        before = flat[batch["predictors"][mine]]
        assert before.tolist() == seq.ids[seq.n_prompt - 1 : -1]
    assert torch.all(batch["position_ids"][0, : len(seqs[1].ids)] == torch.arange(8))
