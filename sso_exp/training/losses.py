"""The SSO objective as pure functions of sequence log-probs (docs/algorithm.md §4).

    W = sigmoid(-(a * avglogp(y+|x) + (1 - a) * avglogp(y-|x)))
    L = l_main + W * g_beta * (l_p + l_n)
        + ftx * (NLL(y+|x) + g_beta * NLL(y+|p+,x) + g_beta * NLL(y0|p-,x))

with the ablations: no G -> W * (l_main + ftx * NLL(y+|x)); no W -> W = 1, or with
`released_no_w` the authors' trainer's no W (G's l_p + l_n dropped, its NLL terms kept);
neither -> plain. Every tensor here is per example, shape [B]; nothing touches a model."""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import LossConfig
from ..data.pairs import Pair

NEEDS_REFERENCE = {"dpo", "ipo"}
SUMMED = {"dpo"}  # the others use length-averaged log-probs


class PrefOut(NamedTuple):
    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    chosen_logps: Tensor
    rejected_logps: Tensor


def preference_loss(cfg: LossConfig, policy: Pair, reference: Optional[Pair]) -> PrefOut:
    """One base loss (DPO sigmoid, IPO, SimPO or ORPO) on one preference pair."""
    pick = (lambda s: s.sum) if cfg.name in SUMMED else (lambda s: s.mean)
    pc, pr = pick(policy.chosen), pick(policy.rejected)
    if cfg.name in NEEDS_REFERENCE:
        if reference is None:
            raise ValueError(f"loss '{cfg.name}' needs reference log-probs")
        rc, rr = pick(reference.chosen), pick(reference.rejected)
        logits = (pc - pr) - (rc - rr)
        if cfg.name == "dpo":
            losses = -F.logsigmoid(cfg.beta * logits)
        else:  # ipo
            losses = (logits - 1.0 / (2.0 * cfg.beta)) ** 2
        return PrefOut(losses, cfg.beta * (pc - rc).detach(), cfg.beta * (pr - rr).detach(), pc, pr)
    if cfg.name == "simpo":
        losses = -F.logsigmoid(cfg.beta * (pc - pr) - cfg.simpo_gamma)
    else:  # orpo: NLL of the chosen plus beta * odds-ratio term
        log_odds = (pc - pr) - (_log1m_exp(pc) - _log1m_exp(pr))
        losses = -pc - cfg.beta * F.logsigmoid(log_odds)
    return PrefOut(losses, cfg.beta * pc.detach(), cfg.beta * pr.detach(), pc, pr)


def _log1m_exp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for log-probs x < 0, kept finite at x = 0."""
    return torch.log1p(-torch.exp(x.clamp(max=-1e-6)))


def steering_weight(cfg: LossConfig, main: Pair) -> Tensor:
    """W: larger when y+ and y- are unlikely under the plain prompt (off-policy)."""
    if not cfg.use_w:
        return torch.ones_like(main.chosen.sum)
    w = torch.sigmoid(-(cfg.w_alpha * main.chosen.mean + (1 - cfg.w_alpha) * main.rejected.mean))
    return w.detach() if cfg.w_detach else w


def _pair_metrics(prefix: str, out: PrefOut) -> Dict[str, Tensor]:
    r, lp = f"{prefix}rewards/", f"{prefix}logps/"
    return {
        f"{r}chosen": out.chosen_rewards.mean(),
        f"{r}rejected": out.rejected_rewards.mean(),
        f"{r}accuracies": (out.chosen_rewards > out.rejected_rewards).float().mean(),
        f"{r}margins": (out.chosen_rewards - out.rejected_rewards).mean(),
        f"{lp}chosen": out.chosen_logps.detach().mean(),
        f"{lp}rejected": out.rejected_logps.detach().mean(),
    }


def sso_loss(
    cfg: LossConfig, policy: Dict[str, Pair], reference: Optional[Dict[str, Pair]] = None
) -> Tuple[Tensor, Dict[str, Tensor]]:
    """The SSO loss (mean over the batch) and its metrics.

    `policy`/`reference` map "main" (x: y+ > y-), "p" (p+,x: y+ > y-) and "n"
    (p-,x: y0 > y+) to log-probs; "p" and "n" are needed only when G is on.

    With G on and W off, `released_no_w` reproduces the authors' released trainer, where
    G's preference terms are added only inside the W branch but its NLL terms are not:
        L = l_main + ftx * (NLL(y+|x) + g_beta * (NLL(y+|p+,x) + NLL(y0|p-,x)))
    (the p and n pairs' losses are still computed, for their metrics, as the authors log
    them); without it W = 1, the paper's reading."""
    ref = reference or {}
    main = preference_loss(cfg, policy["main"], ref.get("main"))
    w = steering_weight(cfg, policy["main"])
    nll_main = -policy["main"].chosen.mean
    metrics = _pair_metrics("", main)
    if cfg.use_g:
        p = preference_loss(cfg, policy["p"], ref.get("p"))
        n = preference_loss(cfg, policy["n"], ref.get("n"))
        nll = nll_main + cfg.g_beta * (-policy["p"].chosen.mean - policy["n"].chosen.mean)
        dropped = cfg.released_no_w and not cfg.use_w  # the authors' W branch, and G's terms in it
        steer = 0.0 if dropped else w * cfg.g_beta * (p.losses + n.losses)
        losses = main.losses + steer + cfg.ftx * nll
        metrics.update(_pair_metrics("p_", p))
        metrics.update(_pair_metrics("n_", n))
    else:
        losses = w * (main.losses + cfg.ftx * nll_main)
    loss = losses.mean()
    metrics["w/mean"] = w.detach().mean()
    metrics["loss"] = loss.detach()
    return loss, metrics


def generator_loss(
    cfg: LossConfig,
    gamma: float,
    policy: Dict[str, Pair],
    reference: Optional[Dict[str, Pair]] = None,
) -> Tuple[Tensor, Dict[str, Tensor]]:
    """The later paper's generator objective (docs/algorithm.md §5), mean over the batch:
    L+ = l(p+,x: y+ > y-) + gamma NLL(y+|p+,x),  L- = l(p-,x: y0 > y+) + gamma NLL(y0|p-,x)."""
    ref = reference or {}
    p = preference_loss(cfg, policy["p"], ref.get("p"))
    n = preference_loss(cfg, policy["n"], ref.get("n"))
    losses = (p.losses + gamma * -policy["p"].chosen.mean) + (
        n.losses + gamma * -policy["n"].chosen.mean
    )
    loss = losses.mean()
    return loss, {**_pair_metrics("p_", p), **_pair_metrics("n_", n), "loss": loss.detach()}


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Reward-model loss -log sigmoid(r+ - r-), mean over the batch, and its metrics."""
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, {
        "rm/loss": loss.detach(),
        "rm/accuracy": (chosen > rejected).float().mean(),
        "rm/margin": (chosen - rejected).detach().mean(),
    }
