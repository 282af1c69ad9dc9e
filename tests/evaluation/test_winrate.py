"""Win rates and the length-controlled win rate against numbers worked out by hand, and
AlpacaEval's own LC win rate through the `alpaca_eval` package on a difficulty file made here."""

import math
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from alpaca_eval.metrics import glm_winrate

from sso_exp.evaluation.winrate import (
    alpaca_eval_lc,
    fit_length_glm,
    length_controlled_win_rate,
    length_feature,
    win_rate,
)

# Two groups of four items. The model is 200 characters longer in the first group and as long
# as the reference in the second. It mostly wins when longer and mostly loses otherwise, with ties.
TWO_GROUP_PREFS = [1, 1, 1, 0.5, 0.5, 0, 0, 0.5]  # group means 3.5/4 = 0.875 and 1/4 = 0.25
TWO_GROUP_MODEL = [300] * 4 + [100] * 4
TWO_GROUP_REF = [100] * 8
# d = [200]*4 + [0]*4: mean 100, sample variance 8 * 100^2 / 7, so d / std(d) = 2 * sqrt(7/8)
T_LONGER = math.tanh(math.sqrt(3.5))


def test_win_rate_and_standard_error():
    rate, se = win_rate([1, 0, 0.5, 1])
    # mean 0.625; squared deviations .140625 + .390625 + .015625 + .140625 = .6875
    assert rate == pytest.approx(62.5)
    assert se == pytest.approx(100 * math.sqrt(0.6875 / 3) / 2)


def test_single_item_has_no_standard_error():
    rate, se = win_rate([0.5])
    assert rate == 50.0 and math.isnan(se)


@pytest.mark.parametrize(
    "call",
    [
        lambda: win_rate([]),
        lambda: win_rate([1.5, 0]),
        lambda: length_controlled_win_rate([], [], []),
        lambda: length_controlled_win_rate([1, 0], [10, 20], [10]),
        lambda: length_controlled_win_rate([1, 0], [10], [10, 20]),
        lambda: fit_length_glm([1, 0], [0.3]),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_length_feature_is_tanh_of_std_normalised_difference():
    assert length_feature(TWO_GROUP_MODEL, TWO_GROUP_REF).tolist() == pytest.approx(
        [T_LONGER] * 4 + [0.0] * 4
    )


@pytest.mark.parametrize("model_lengths", [[50] * 5, [60] * 5])  # equal, constant shift
def test_lc_equals_raw_rate_when_length_difference_has_no_variance(model_lengths):
    rate, se = length_controlled_win_rate([1, 0, 0.5, 1, 1], model_lengths, [50] * 5)
    assert rate == pytest.approx(70.0, abs=1e-9)
    assert se > 0


def test_two_group_fit_reproduces_group_means():
    # With an intercept and a feature that takes two values, the unpenalised MLE fits each group's
    # mean exactly. At t = 0: sigmoid(b0) = 0.25, so b0 = -ln 3. At t = T_LONGER:
    # b0 + b1 * T_LONGER = logit(0.875) = ln 7, so b1 = (ln 7 + ln 3) / T_LONGER.
    b0, b1 = fit_length_glm(TWO_GROUP_PREFS, [T_LONGER] * 4 + [0.0] * 4, slope_l2=0.0)
    assert b0 == pytest.approx(-math.log(3), abs=1e-9)
    assert b1 == pytest.approx(math.log(21) / T_LONGER, abs=1e-9)


def test_lc_removes_the_advantage_of_longer_answers():
    raw, _ = win_rate(TWO_GROUP_PREFS)
    lc, se = length_controlled_win_rate(TWO_GROUP_PREFS, TWO_GROUP_MODEL, TWO_GROUP_REF)
    assert raw == pytest.approx(56.25)  # 4.5 / 8
    # exact without the slope penalty: 100 * sigmoid(-ln 3) = 25. The default penalty moves the
    # equal-length group's fit by about slope_l2 * b1 / (4 * T_LONGER) = 0.01 * 3.19 / 3.81, i.e.
    # 0.8 points.
    assert lc == pytest.approx(25.0, abs=1.0)
    assert 0 < se < 100


def test_lc_stays_finite_when_length_separates_wins_from_losses():
    # Wins only when longer (half the items), loses the rest. Without the slope penalty this
    # would diverge; with it, the rate at equal length is close to 0.
    lc, se = length_controlled_win_rate([1] * 4 + [0] * 4, TWO_GROUP_MODEL, TWO_GROUP_REF)
    assert 0 < lc < 5 and math.isfinite(se)


def test_ties_only_give_fifty_percent_whatever_the_lengths():
    # p = 0.5 everywhere: b0 = b1 = 0 zeroes the gradient and the penalty, so LC = 50.
    lc, _ = length_controlled_win_rate([0.5] * 4, [10, 200, 35, 80], [50, 60, 70, 80])
    assert lc == pytest.approx(50.0, abs=1e-9)


def test_unanimous_outcome_is_left_as_is():
    assert length_controlled_win_rate([1, 1, 1], [10, 200, 35], [50, 60, 70]) == (100.0, 0.0)
    assert length_controlled_win_rate([0, 0, 0], [10, 200, 35], [50, 60, 70]) == (0.0, 0.0)


def test_bootstrap_standard_error_is_deterministic():
    args = ([1, 0, 0.5, 1, 0, 1], [120, 80, 100, 300, 90, 150], [100] * 6)
    assert length_controlled_win_rate(*args) == length_controlled_win_rate(*args)


def _gamed_file(tmp_path, n):
    """A file in the schema of AlpacaEval's df_gamed.csv: per instruction its difficulty, and
    the judgements of two gamed (verbose, concise) copies of the baseline against it."""
    rng = np.random.default_rng(1)
    difficulty = rng.normal(0, 1, n)
    rows = [
        {
            "model": model,
            "index": i,
            "instruction_difficulty": difficulty[i],
            "preference": float(rng.uniform()),
            "std_delta_len": float(sign * abs(rng.normal(1, 0.3))),
            "not_gamed_baseline": False,
        }
        for model, sign in (("gamed_verbose", -1), ("gamed_concise", 1))
        for i in range(n)
    ]
    path = tmp_path / "df_gamed.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_lc_win_rate_is_alpaca_evals_own_given_the_difficulties(tmp_path):
    n = 16
    path = _gamed_file(tmp_path, n)
    rng = np.random.default_rng(2)
    prefs = rng.uniform(0, 1, n).round(1)
    outputs = ["x" * int(k) for k in rng.integers(20, 800, n)]
    references = ["y" * int(k) for k in rng.integers(20, 800, n)]
    lc, se = alpaca_eval_lc(prefs, outputs, references, range(n), path)
    annotations = pd.DataFrame(  # AlpacaEval's own format: 2 when the model's output wins
        {
            "preference": 1 + prefs,
            "output_1": references,
            "output_2": outputs,
            "index": range(n),
            "generator_1": "baseline",
            "generator_2": "model",
            "annotator": "judge",
        }
    )
    with patch.object(glm_winrate, "hf_hub_download", lambda **_: str(path)):
        want = glm_winrate.get_length_controlled_winrate(annotations, save_weights_dir=None)
    assert lc == pytest.approx(want["length_controlled_winrate"], abs=0.01)
    assert se == pytest.approx(want["lc_standard_error"], abs=0.01)
    wins = alpaca_eval_lc(np.ones(n), outputs, references, range(n), path)[0]
    losses = alpaca_eval_lc(np.zeros(n), outputs, references, range(n), path)[0]
    assert losses < lc < wins  # the model's side is output_2
