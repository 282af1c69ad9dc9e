import pytest

from conftest import close
from sso_exp.data.encoding import encode_records, sequence_names
from sso_exp.data.packing import alone
from sso_exp.data.pairs import PairDataset, loader
from sso_exp.data.records import make_record
from sso_exp.models.logprobs import sequence_logps
from sso_exp.training.policy_module import split_pairs

PAIRS = ["main", "p", "n"]


@pytest.mark.parametrize("share", [True, False])
def test_each_pair_of_a_shared_forward_gets_the_log_probs_of_its_own_sequences(tiny, share):
    model, tok = tiny
    records = [
        make_record(f"Q{i}?", "Be good.", "Be very bad.", f"Fine {i}.", f"zq {i} kk", f"So {i}.")
        for i in range(2)
    ]
    encoded = encode_records(tok, records, sequence_names(PAIRS), 256)
    data = loader(PairDataset(encoded, PAIRS), 2, tok.pad_token_id, False, 0, share=share)
    (batch,) = list(data)
    got = {}
    for names, packed in batch["forwards"]:
        got.update(split_pairs(sequence_logps(model, packed, chunk=7), names))
    assert sorted(got) == sorted(PAIRS)
    for pair in PAIRS:
        for side in ("chosen", "rejected"):
            own = sequence_logps(model, alone(encoded[f"{pair}_{side}"], tok.pad_token_id))
            assert close(getattr(got[pair], side).sum, own.sum)
            assert getattr(got[pair], side).count.tolist() == own.count.tolist()
