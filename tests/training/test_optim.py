"""The optimizer and learning-rate schedule are the components the config names, built by
Hydra as partials; the fused kernel is asked for only where Lightning can clip it."""

from types import SimpleNamespace

import pytest
import torch

from conftest import compose_cfg
from sso_exp.config import OptimizerConfig
from sso_exp.training.optim import build, optimizers


def made(tmp_path, precision="32-true", *overrides):
    s = compose_cfg(tmp_path, *overrides).schedule
    params = [torch.nn.Parameter(torch.zeros(3))]
    trainer = SimpleNamespace(precision=precision, estimated_stepping_batches=10)
    out = optimizers(params, build(s.optimizer), build(s.lr_scheduler), trainer)
    return out["optimizer"], out["lr_scheduler"]["scheduler"]


def test_the_default_is_adamw_with_warmup_then_cosine(tmp_path):
    opt, sched = made(tmp_path)
    want = OptimizerConfig()
    assert type(opt) is torch.optim.AdamW and opt.defaults["fused"] is True
    assert list(opt.defaults["betas"]) == want.betas
    assert opt.defaults["weight_decay"] == want.weight_decay
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0 and lrs[1] == pytest.approx(want.lr)  # 1 warmup step of 10
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))  # cosine decay after it


def test_another_optimizer_and_rate_from_the_config(tmp_path):
    opt, _ = made(
        tmp_path,
        "32-true",
        "schedule.optimizer._target_=torch.optim.Adam",
        "schedule.optimizer.lr=0.01",
    )
    assert type(opt) is torch.optim.Adam and opt.defaults["lr"] == 0.01


def test_no_fused_kernel_under_mixed_precision(tmp_path):
    opt, _ = made(tmp_path, "bf16-mixed")
    assert not opt.defaults["fused"]
