"""The string filter's rules and the log-prob filter against hand-made scores."""

import torch

from sso_exp.data.pairs import SeqLogps
from sso_exp.data.records import make_record
from sso_exp.steering.filters import logprob_filter, string_filter, strip_label


def test_strip_label():
    assert strip_label("Response: Hello") == "Hello"
    assert strip_label("### Assistant Response:\nHi there") == "Hi there"
    assert strip_label("The response: is fine") == "is fine"
    assert strip_label("No label here") == "No label here"


def test_filter_rules_count_each_drop():
    rec = lambda c, r, y0: make_record("q", "p", "n", c, r, y0)
    kept, drops = string_filter(
        [
            rec("good answer", "bad answer", "raw answer"),
            rec("same text", "same text", "raw answer"),
            rec("good answer", "raw answer", "raw answer"),
            rec("Response: raw answer", "bad answer", "raw answer"),
            rec("ok", "bad answer", "raw answer"),
        ],
        min_chars=8,
    )
    assert [r["chosen"] for r in kept] == ["good answer"]
    assert drops == {"chosen_eq_rejected": 1, "rejected_eq_raw": 1, "chosen_eq_raw": 1, "short": 1}


def _scores(**means):
    """Token-averaged log-probs per sequence, one value per record (count 1)."""
    return {
        k: SeqLogps(torch.tensor(v, dtype=torch.float), torch.ones(len(v)))
        for k, v in means.items()
    }


def test_logprob_filter_rules():
    # record 0 passes; 1 breaks the order (p_c < o_c); 2 is off-policy (o_c below the mean);
    # 3 passes order and on-policyness but its gaps are small
    scores = _scores(
        main_chosen=[-1.0, -1.0, -3.0, -0.9],
        main_rejected=[-1.0, -1.0, -1.2, -0.9],
        p_chosen=[-0.2, -1.5, -2.0, -0.8],
        p_rejected=[-2.5, -2.0, -2.0, -1.0],
        n_rejected=[-2.5, -2.0, -4.0, -1.0],
        pminus_yminus=[-0.2, -0.5, -0.5, -0.8],
    )
    # in order: 0, 2, 3; their means o_c -1.633, o_r -1.033; on-policy: 0, 3, whose gaps
    # p_c - n_c = [2.3, .2] and n_r - p_r = [2.3, .2] have means 1.25
    keep, drops = logprob_filter(scores)
    assert keep.tolist() == [True, False, False, False]
    assert drops == {"logprob_order": 1, "logprob_offpolicy": 1, "logprob_gap": 1}


def test_thresholds_are_means_over_the_records_that_passed_the_rules_before():
    """The authors' thresholds: a record far off (0) fails the order and does not pull the
    on-policy mean down, so record 1 is off-policy; the gap means are over records 2 and 3
    alone. Means over the whole batch would keep records 2 and 3 instead of 2."""
    scores = _scores(
        main_chosen=[-10.0, -2.0, -1.0, -1.0],
        main_rejected=[-1.0, -1.0, -1.0, -1.0],
        p_chosen=[-12.0, -1.0, 0.0, -0.5],
        n_rejected=[-1.0, -3.0, -3.0, -3.0],
        pminus_yminus=[-1.0, -0.5, -0.2, -0.5],
        p_rejected=[-1.0, -2.0, -3.0, -3.0],
    )
    keep, drops = logprob_filter(scores)
    assert keep.tolist() == [False, False, True, False]
    assert drops == {"logprob_order": 1, "logprob_offpolicy": 1, "logprob_gap": 1}
