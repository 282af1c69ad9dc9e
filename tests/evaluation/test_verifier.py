"""The signal judged by the checker: each pair's verdicts, the shares with their intervals
overall and per family, and an LLM judge's agreement with the checker."""

import pytest

from sso_exp.errors import DataError
from sso_exp.evaluation.tasks import signal_accuracy
from sso_exp.evaluation.verifier import Verifier

NO_COMMA = {"id": "punctuation:no_comma", "kwargs": {}, "negate": False}
COMMAS = {**NO_COMMA, "negate": True}
QUOTED = {"id": "startend:quotation", "kwargs": {}, "negate": False}
UNQUOTED = {**QUOTED, "negate": True}


def record(chosen, rejected, raw, good=NO_COMMA, bad=COMMAS, family="Commas"):
    cons = [{"family": family, "good": good, "bad": bad}]
    return {"instruction": "q", "chosen": chosen, "rejected": rejected, "raw": raw,
            "constraints": cons}  # fmt: skip


RECORDS = [
    record("no commas here", "yes, commas", "plain, raw"),  # accurate; y0 follows bad
    record("no commas here", "none here either", "raw"),  # y- follows the good constraint
    record("a, b", "c, d", "e, f"),  # y+ fails
    record('"quoted"', "bare", "bare too", QUOTED, UNQUOTED, "Quotation"),  # accurate
]


def test_the_checker_judges_each_pair_and_each_answer():
    result = signal_accuracy(RECORDS, Verifier())
    m = result.metrics
    assert m["signal/verified_n"] == 4
    assert m["signal/verified_accuracy"] == pytest.approx(50.0)
    assert m["signal/chosen_follows"] == pytest.approx(75.0)
    assert m["signal/rejected_violates"] == pytest.approx(75.0)
    assert m["signal/raw_follows"] == pytest.approx(25.0)  # only "raw" has no comma
    # n pair (y0 over y+ under p-): y0 satisfies the bad constraint, y+ does not (1 and 4)
    assert m["signal/n_accuracy"] == pytest.approx(50.0)
    assert m["signal/family/Commas/n"] == 3
    assert m["signal/family/Commas/verified_accuracy"] == pytest.approx(100 / 3)
    assert m["signal/family/Quotation/verified_accuracy"] == pytest.approx(100.0)
    se = (0.5 * 0.5 / 4) ** 0.5 * 100
    assert m["signal/verified_accuracy_se"] == pytest.approx(se)
    assert m["signal/verified_accuracy_ci_low"] < 50 < m["signal/verified_accuracy_ci_high"]
    assert [r["outcomes"]["verified_accuracy"] for r in result.rows] == [1, 0, 0, 1]


class Fixed:
    """An LLM judge stand-in: prefers the first answer with these probabilities."""

    def __init__(self, prefs):
        self.prefs = prefs

    def prefer(self, items):
        return self.prefs[: len(items)]


def test_an_llm_judges_agreement_with_the_checker():
    # the checker orders pairs 1 and 4 (y+ follows, y- not); in 2 both follow, in 3 neither
    result = signal_accuracy(RECORDS, Fixed([0.9, 0.2, 0.7, 0.4]), annotator="pairwise")
    m = result.metrics
    assert m["signal/accuracy"] == pytest.approx(55.0)  # the LLM's own figure stays
    assert m["signal/judge_agreement_n"] == 2
    assert m["signal/judge_agreement"] == pytest.approx(65.0)  # (0.9 + 0.4) / 2
    assert m["signal/verified_accuracy"] == pytest.approx(50.0)
    assert all(r["preference"] is not None for r in result.rows)


def test_pairs_without_constraints_cannot_be_verified():
    bare = {k: v for k, v in RECORDS[0].items() if k != "constraints"}
    with pytest.raises(DataError, match="record 1: no 'constraints'"):
        signal_accuracy([bare], Verifier())
