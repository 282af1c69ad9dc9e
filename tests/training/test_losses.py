"""Each term of the SSO objective against numbers worked out by hand."""

import math

import pytest
import torch

from sso_exp.config import LossConfig
from sso_exp.data.pairs import Pair, SeqLogps
from sso_exp.training.losses import preference_loss, sso_loss


def sig(x):
    return 1 / (1 + math.exp(-x))


def seq(total, count):
    return SeqLogps(torch.tensor([float(total)], requires_grad=True), torch.tensor([float(count)]))


def pair(c, cn, r, rn):
    return Pair(seq(c, cn), seq(r, rn))


# policy / reference summed log-probs and token counts, one example
POLICY = {"main": pair(-10, 5, -12, 4), "p": pair(-8, 5, -14, 4), "n": pair(-9, 6, -11, 5)}
REF = {"main": pair(-11, 5, -11, 4), "p": pair(-9, 5, -13, 4), "n": pair(-10, 6, -10, 5)}


def cfg(name="dpo", **kw):
    return LossConfig(name=name, **kw)


def test_dpo_uses_sums_and_reference():
    out = preference_loss(cfg("dpo", beta=0.1), POLICY["main"], REF["main"])
    # logits = (-10 - -12) - (-11 - -11) = 2
    assert out.losses.item() == pytest.approx(-math.log(sig(0.1 * 2)))
    assert out.chosen_rewards.item() == pytest.approx(0.1 * (-10 + 11))
    assert out.rejected_rewards.item() == pytest.approx(0.1 * (-12 + 11))


def test_ipo_uses_means():
    out = preference_loss(cfg("ipo", beta=0.1), POLICY["main"], REF["main"])
    logits = (-10 / 5 - -12 / 4) - (-11 / 5 - -11 / 4)  # 1.0 - 0.55 = 0.45
    assert out.losses.item() == pytest.approx((logits - 1 / 0.2) ** 2)
    assert out.chosen_rewards.item() == pytest.approx(0.1 * (-2 + 2.2))


def test_simpo_is_reference_free_with_margin():
    out = preference_loss(cfg("simpo", beta=2.0, simpo_gamma=0.5), POLICY["main"], None)
    assert out.losses.item() == pytest.approx(-math.log(sig(2.0 * (-2 + 3) - 0.5)))
    assert out.chosen_rewards.item() == pytest.approx(2.0 * -2)


def test_orpo_adds_nll_and_odds_ratio():
    out = preference_loss(cfg("orpo", beta=0.1), POLICY["main"], None)
    pc, pr = -2.0, -3.0
    log_odds = (pc - pr) - (math.log(1 - math.exp(pc)) - math.log(1 - math.exp(pr)))
    assert out.losses.item() == pytest.approx(-pc - 0.1 * math.log(sig(log_odds)))


def test_reference_losses_refuse_without_reference():
    with pytest.raises(ValueError, match="reference"):
        preference_loss(cfg("ipo"), POLICY["main"], None)


def dpo(p, r, beta=0.1):
    logits = (p.chosen.sum.item() - p.rejected.sum.item()) - (
        r.chosen.sum.item() - r.rejected.sum.item()
    )
    return -math.log(sig(beta * logits))


W = sig(-(0.5 * -10 / 5 + 0.5 * -12 / 4))  # sigmoid(2.5)
NLL = {"main": 10 / 5, "p": 8 / 5, "n": 9 / 6}  # token-averaged NLL of each pair's chosen


@pytest.mark.parametrize(
    "use_g,use_w,ftx",
    [
        (True, True, 0.0),
        (True, True, 0.5),
        (True, False, 0.0),
        (False, True, 0.0),
        (False, True, 0.5),
        (False, False, 0.0),
        (False, False, 0.5),
        (True, False, 0.5),
    ],
)
def test_sso_loss_and_every_ablation(use_g, use_w, ftx):
    c = cfg("dpo", beta=0.1, g_beta=0.1, w_alpha=0.5, use_g=use_g, use_w=use_w, ftx=ftx)
    loss, metrics = sso_loss(c, POLICY, REF)
    w = W if use_w else 1.0
    lm, lp, ln = (dpo(POLICY[k], REF[k]) for k in ("main", "p", "n"))
    if use_g:
        want = lm + w * 0.1 * (lp + ln) + ftx * (NLL["main"] + 0.1 * NLL["p"] + 0.1 * NLL["n"])
    else:
        want = w * (lm + ftx * NLL["main"])
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert metrics["w/mean"].item() == pytest.approx(w)
    assert ("p_rewards/accuracies" in metrics) == use_g


def test_w_alpha_weights_chosen_and_rejected():
    c = cfg("dpo", w_alpha=0.66, use_g=False)
    _, metrics = sso_loss(c, POLICY, REF)
    assert metrics["w/mean"].item() == pytest.approx(sig(-(0.66 * -2 + 0.34 * -3)))


@pytest.mark.parametrize("detach", [False, True])
def test_gradient_through_w_only_when_not_detached(detach):
    policy = {
        k: pair(*v)
        for k, v in {"main": (-10, 5, -12, 4), "p": (-8, 5, -14, 4), "n": (-9, 6, -11, 5)}.items()
    }
    loss, _ = sso_loss(cfg("dpo", w_detach=detach), policy, REF)
    loss.backward()
    x = policy["main"].chosen.sum
    # d l_main / d pc = -beta * (1 - sig(beta * logits)); W's own slope adds
    # dW/dpc * g_beta * (l_p + l_n), with dW/dpc = -W (1 - W) * alpha / count
    want = -0.1 * (1 - sig(0.1 * 2))
    if not detach:
        lp, ln = dpo(policy["p"], REF["p"]), dpo(policy["n"], REF["n"])
        want += -W * (1 - W) * 0.5 / 5 * 0.1 * (lp + ln)
    assert x.grad.item() == pytest.approx(want, rel=1e-5)


def test_metrics_accuracy_and_margin():
    _, m = sso_loss(cfg("dpo"), POLICY, REF)
    assert m["rewards/accuracies"].item() == 1.0  # 0.1 > -0.1
    assert m["rewards/margins"].item() == pytest.approx(0.2)
    assert m["logps/chosen"].item() == pytest.approx(-10)
    # n pair: chosen y0 reward 0.1*(−9+10)=0.1, rejected y+ 0.1*(−11+10)=−0.1
    assert m["n_rewards/accuracies"].item() == 1.0


def test_bradley_terry_by_hand():
    from sso_exp.training.losses import bradley_terry_loss

    loss, m = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx((-math.log(sig(1.0)) - math.log(sig(-1.0))) / 2)
    assert m["rm/accuracy"].item() == 0.5 and m["rm/margin"].item() == pytest.approx(0.0)


def test_v2_generator_loss_by_hand():
    from sso_exp.training.losses import generator_loss

    loss, m = generator_loss(cfg("dpo", beta=0.1), 0.1, POLICY, REF)
    want = (dpo(POLICY["p"], REF["p"]) + 0.1 * NLL["p"]) + (
        dpo(POLICY["n"], REF["n"]) + 0.1 * NLL["n"]
    )
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert "p_rewards/accuracies" in m and "rewards/accuracies" not in m


def batch_pair(chosen, chosen_n, rejected, rejected_n):
    """A pair over a batch: summed log-probs (leaves, so gradients can be read) and counts."""

    def side(total, count):
        return SeqLogps(
            torch.tensor(total, requires_grad=True), torch.tensor(count, dtype=torch.float32)
        )

    return Pair(side(chosen, chosen_n), side(rejected, rejected_n))


@pytest.mark.parametrize("name", ["ipo", "dpo"])
@pytest.mark.parametrize("ftx", [0.0, 0.7])
def test_released_no_w_is_the_authors_trainer(name, ftx):
    """G on, W off, released: the authors' trainer keeps l_main and every NLL term under ftx
    (G's on the p and n chosen answers too) and drops l_p + l_n, which sit in W's branch."""
    policy = {
        "main": batch_pair([-10.0, -20.0, -7.0], [5.0, 8.0, 7.0], [-12.0, -18.0, -9.0], [4, 6, 3]),
        "p": batch_pair([-8.0, -15.0, -6.0], [5.0, 8.0, 7.0], [-14.0, -22.0, -8.0], [4, 6, 3]),
        "n": batch_pair([-9.0, -16.0, -5.0], [6.0, 9.0, 4.0], [-11.0, -17.0, -6.0], [5, 8, 7]),
    }
    ref = {
        "main": batch_pair([-11.0, -19.0, -8.0], [5.0, 8.0, 7.0], [-11.0, -19.0, -8.0], [4, 6, 3]),
        "p": batch_pair([-9.0, -16.0, -6.5], [5.0, 8.0, 7.0], [-13.0, -21.0, -8.5], [4, 6, 3]),
        "n": batch_pair([-10.0, -15.0, -5.5], [6.0, 9.0, 4.0], [-10.0, -18.0, -6.5], [5, 8, 7]),
    }
    beta, g_beta = 0.2, 0.1
    c = cfg(name, beta=beta, g_beta=g_beta, use_g=True, use_w=False, released_no_w=True, ftx=ftx)
    loss, metrics = sso_loss(c, policy, ref)

    def score(s):  # DPO reads summed log-probs, IPO token-averaged ones
        return s.sum if name == "dpo" else s.sum / s.count

    pm, rm = policy["main"], ref["main"]
    h = (score(pm.chosen) - score(pm.rejected)) - (score(rm.chosen) - score(rm.rejected))
    l_main = -torch.log(torch.sigmoid(beta * h)) if name == "dpo" else (h - 1 / (2 * beta)) ** 2
    nll = {k: -policy[k].chosen.sum / policy[k].chosen.count for k in policy}
    want = (l_main + ftx * (nll["main"] + g_beta * nll["p"] + g_beta * nll["n"])).mean()
    torch.testing.assert_close(loss, want)
    assert metrics["w/mean"].item() == 1.0 and "p_rewards/accuracies" in metrics
    # l_p and l_n are out of the loss: the p and n rejected answers get no gradient at all
    loss.backward()
    assert all(policy[k].rejected.sum.grad is None for k in ("p", "n"))


def test_released_no_w_changes_nothing_else():
    """The switch acts only with G on and W off: W on, or G off, is the usual loss."""
    for use_g, use_w in ((True, True), (False, False), (False, True)):
        kw = dict(use_g=use_g, use_w=use_w, ftx=0.5)
        plain, _ = sso_loss(cfg("dpo", **kw), POLICY, REF)
        released, _ = sso_loss(cfg("dpo", released_no_w=True, **kw), POLICY, REF)
        assert released.item() == plain.item()
