"""RewardBench's sections: example-count-weighted means of their subsets' accuracies, only
for sections whose subsets are all at hand; the score is the mean of the four."""

import pytest

from sso_exp.evaluation.rewardbench import SECTIONS, section_scores


def test_sections_weight_subsets_by_their_example_counts():
    accuracy = {s: 1.0 for weights in SECTIONS.values() for s in weights}
    accuracy["math-prm"] = 0.0  # as heavy as the six coding subsets together
    accuracy["alpacaeval-easy"] = 0.5
    got = section_scores(accuracy, "rb")
    assert got["rb/reasoning"] == pytest.approx(0.5)
    assert got["rb/chat"] == pytest.approx(1 - 0.5 * 100 / 358)
    assert got["rb/safety"] == got["rb/chat_hard"] == 1.0 and got["rb/sections"] == 4
    expected = (got["rb/chat"] + 1.0 + 1.0 + 0.5) / 4
    assert got["rb/score"] == pytest.approx(expected)


def test_a_section_missing_a_subset_is_not_scored():
    accuracy = {s: 1.0 for s in SECTIONS["safety"]}
    accuracy.pop("donotanswer")
    accuracy.update({s: 0.5 for s in SECTIONS["chat"]})
    assert section_scores(accuracy, "rb") == {"rb/chat": 0.5, "rb/sections": 1}
