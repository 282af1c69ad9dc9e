"""AlpacaEval-style win rates of one model against one reference answer per item. The
length-controlled win rate is AlpacaEval 2.0's own (`alpaca_eval_lc`, the package's
computation) when AlpacaEval's instruction difficulties are at hand; otherwise the
approximation below, reported under its own name (`lc_win_rate_approx`).

`prefs[i]` in [0, 1] is the judged probability that the model's answer beats the reference
(1 win, 0 loss, 0.5 tie; a judge asked in both orders gives the average). Rates are percentages.

Length control follows AlpacaEval 2.0 (Dubois et al. 2024, "Length-Controlled AlpacaEval",
arXiv 2404.04475; `alpaca_eval/metrics/glm_winrate.py`), which fits the logistic GLM

    logit P(model beats reference on i) = theta + phi * tanh(d_i / std(d)) + psi * gamma_i

and reports 100 * mean_i sigmoid(theta + psi * gamma_i): the predicted win rate had the two
answers been equally long. Here, for a single model against a single reference:

    logit P_i = b0 + b1 * tanh(d_i / std(d)),    LC = 100 * sigmoid(b0)

The same as AlpacaEval:
  * d_i is the difference in character length, divided by its sample standard deviation
    (ddof=1) over the model's items and not centred; tanh bounds the effect of outliers.
  * Soft targets enter the cross-entropy directly (AlpacaEval duplicates each row with weights
    p_i and 1 - p_i, which gives the same objective).
  * LC is the mean prediction with the length term set to zero; the raw win rate and its
    standard error are 100 * mean and 100 * sample std / sqrt(n), like AlpacaEval's `sem()`.

Not the same:
  * No instruction-difficulty term gamma_i. AlpacaEval fits it once, across many models, on
    its 805 instructions. With one model against one reference it cannot be told apart from
    the intercept, so the mean over items reduces to sigmoid(b0).
  * Different regularisation. AlpacaEval fits with an L1 penalty whose strength is picked by
    5-fold cross-validation (liblinear, no separate intercept). It also mixes in judgments of
    the baseline against verbose- and concise-prompted copies of itself (weight 0.2) to pin
    the length slope. Here the intercept is not penalised, so the mean fitted preference equals
    the raw win rate. The length slope gets a weak L2 penalty (`SLOPE_L2`, a N(0, 10^2) prior)
    that keeps the fit finite when length perfectly separates wins from losses. The fit uses
    Newton's method.
  * No variance in d (for example, all lengths equal): the length effect cannot be
    identified, so the feature is zero and LC equals the raw win rate. AlpacaEval would
    divide by zero here.
  * Sign: d = model - reference (AlpacaEval uses baseline - model). Only the sign of b1 changes.
  * Standard error: AlpacaEval reports none for LC. Here it is a seeded bootstrap over items
    (`BOOTSTRAP_RESAMPLES` resamples, `numpy.random.default_rng(0)`) that refits the whole
    pipeline, std normalisation included, on each resample.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence, Tuple
from unittest.mock import patch

import numpy as np

SLOPE_L2 = 0.01
BOOTSTRAP_RESAMPLES = 200
_MAX_NEWTON_STEPS = 100


def _prefs(prefs: Sequence[float]) -> np.ndarray:
    """Preferences as a float array, rejecting what would silently give a meaningless rate."""
    p = np.asarray(prefs, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("need a non-empty 1-D sequence of preferences, one per item")
    if not np.all((p >= 0.0) & (p <= 1.0)):  # also rejects NaN
        raise ValueError("preferences must lie in [0, 1] (1 = model wins, 0.5 = tie)")
    return p


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function that stays finite (and exact at +-inf) for any z."""
    return np.exp(-np.logaddexp(0.0, -z))


def win_rate(prefs: Sequence[float]) -> Tuple[float, float]:
    """(100 * mean preference, 100 * its standard error); the error is NaN for a single item."""
    p = _prefs(prefs)
    se = p.std(ddof=1) / math.sqrt(p.size) if p.size > 1 else math.nan
    return 100.0 * float(p.mean()), 100.0 * float(se)


def length_feature(
    model_lengths: Sequence[float], reference_lengths: Sequence[float]
) -> np.ndarray:
    """tanh(d / std(d)) with d = model - reference length; all zeros when d has no variance,
    because a constant shift cannot be told apart from the intercept."""
    d = np.asarray(model_lengths, dtype=float) - np.asarray(reference_lengths, dtype=float)
    sd = d.std(ddof=1) if d.size > 1 else 0.0
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def fit_length_glm(
    prefs: Sequence[float], features: Sequence[float], slope_l2: float = SLOPE_L2
) -> Tuple[float, float]:
    """(b0, b1) minimising soft-target cross-entropy of sigmoid(b0 + b1 * t) + slope_l2/2 * b1^2.

    A unanimous outcome is fitted exactly by an infinite intercept and leaves nothing to
    attribute to length, so it returns (+-inf, 0)."""
    p = _prefs(prefs)
    t = np.asarray(features, dtype=float)
    if t.shape != p.shape:
        raise ValueError(f"need one length feature per preference: got {t.size} for {p.size}")
    mean = float(p.mean())
    if mean in (0.0, 1.0):
        return (math.inf if mean == 1.0 else -math.inf), 0.0
    x = np.stack([np.ones_like(t), t], axis=1)
    penalty = np.array([0.0, slope_l2])

    def objective(b: np.ndarray) -> float:
        z = x @ b
        return float(np.sum(np.logaddexp(0.0, z) - p * z) + 0.5 * slope_l2 * b[1] ** 2)

    beta = np.array([math.log(mean / (1.0 - mean)), 0.0])
    for _ in range(_MAX_NEWTON_STEPS):
        q = _sigmoid(x @ beta)
        grad = x.T @ (q - p) + penalty * beta
        hess = (x * (q * (1.0 - q))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]  # min-norm: copes with t == 0
        scale, current = 1.0, objective(beta)
        while objective(beta - scale * step) > current and scale > 1e-8:
            scale /= 2.0  # full Newton steps can overshoot on the flat tails of the loss
        beta = beta - scale * step
        if np.max(np.abs(scale * step)) < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def _bootstrap_se(statistic: Callable[[np.ndarray], float], n: int) -> float:
    """Std of `statistic(item indices)` over seeded resamples of the items, so reruns agree."""
    rng = np.random.default_rng(0)
    draws = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    return float(np.std([statistic(idx) for idx in draws], ddof=1))


def length_controlled_win_rate(
    prefs: Sequence[float], model_lengths: Sequence[float], reference_lengths: Sequence[float]
) -> Tuple[float, float]:
    """(LC win rate, bootstrap standard error), both in percent; see the module docstring."""
    p = _prefs(prefs)
    m = np.asarray(model_lengths, dtype=float)
    r = np.asarray(reference_lengths, dtype=float)
    if m.shape != p.shape or r.shape != p.shape:
        raise ValueError(
            f"need one model and one reference length per preference: got "
            f"{p.size} preferences, {m.size} model and {r.size} reference lengths"
        )

    def lc(idx: np.ndarray) -> float:
        b0, _ = fit_length_glm(p[idx], length_feature(m[idx], r[idx]))
        return 100.0 * float(_sigmoid(np.float64(b0)))

    rate = lc(np.arange(p.size))
    return rate, (_bootstrap_se(lc, p.size) if p.size > 1 else math.nan)


def alpaca_eval_lc(
    prefs: Sequence[float],
    model_outputs: Sequence[str],
    references: Sequence[str],
    indexes: Sequence[int],
    difficulty_file: str,
) -> Tuple[float, float]:
    """(LC win rate, its standard error) in percent, computed by the `alpaca_eval` package's
    own `get_length_controlled_winrate` on these annotations: instruction difficulty (by the
    items' `indexes` in AlpacaEval's 805 instructions) and the regularisation toward the gamed
    baselines read from `difficulty_file` (AlpacaEval's df_gamed.csv). The package fetches
    that file from the Hugging Face Hub and has no setting for a local copy, so its download
    function is pointed at the local file for the duration of the call."""
    import pandas as pd
    from alpaca_eval.metrics import glm_winrate

    annotations = pd.DataFrame(
        {
            "preference": 1.0 + _prefs(prefs),  # AlpacaEval: 1 the reference wins, 2 the model
            "output_1": list(references),
            "output_2": list(model_outputs),
            "index": list(indexes),
            "generator_1": "reference",
            "generator_2": "policy",
            "annotator": "sso-exp",
        }
    )
    with patch.object(glm_winrate, "hf_hub_download", lambda **_: str(difficulty_file)):
        metrics = glm_winrate.get_length_controlled_winrate(
            annotations, save_weights_dir=None, is_add_glm_preference_inplace=False
        )
    return float(metrics["length_controlled_winrate"]), float(metrics["lc_standard_error"])
