import math

import pytest
import torch

from sso_exp.evaluation.accuracy import accuracy_metrics, mean_and_se, wilson_interval


def test_wilson_interval_by_hand():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71683,
    # half 1.96 / 1.38416 * sqrt(0.016 + 0.0096040) = 0.22657
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def test_accuracy_metrics():
    m = accuracy_metrics("rm/eval", [True, True, False, True])
    assert m["rm/eval/accuracy"] == 0.75 and m["rm/eval/n"] == 4
    assert m["rm/eval/accuracy_ci_low"] < 0.75 < m["rm/eval/accuracy_ci_high"]
    with pytest.raises(ValueError):
        accuracy_metrics("x", [])


def test_mean_and_standard_error_over_items():
    mean, se = mean_and_se(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert mean == 3.0 and se == pytest.approx(math.sqrt(14 / 3) / 2)
    assert math.isnan(mean_and_se(torch.tensor([2.0]))[1])
