"""The callbacks' own behaviour (which ones a run gets: test_callbacks_config.py)."""

from types import SimpleNamespace

import pytest
import torch

from sso_exp.training.callbacks import MasterWeights, TrainingAttention


def test_master_weights_step_in_float32_and_free_those_gradients_after_the_step():
    module = torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in module.parameters()]
    weights = MasterWeights()
    weights.setup(None, module, "fit")
    opt = torch.optim.SGD(list(module.parameters()), lr=0.5)
    trainer = SimpleNamespace(optimizers=[opt])
    weights.on_fit_start(trainer, module)
    module(torch.ones(1, 3, dtype=torch.bfloat16)).sum().backward()
    weights.on_before_optimizer_step(trainer, module, opt)
    assert all(m.grad.dtype == torch.float32 for m in weights.masters.values())
    opt.step()
    weights.on_train_batch_end(trainer, module, None, None, 0)
    # the float32 gradients go with the step, before the next window's first forward
    assert all(m.grad is None and p.grad is None for p, m in weights.masters.items())
    weights.teardown(trainer, module, "fit")
    moved = [p.detach() - s for p, s in zip(module.parameters(), start)]
    assert [p.dtype for p in module.parameters()] == [torch.float32] * 2
    assert torch.allclose(moved[0], torch.full((2, 3), -0.5)) and torch.allclose(
        moved[1], -0.5 * torch.ones(2)
    )


@pytest.mark.parametrize("fails", [False, True])
def test_training_attention_is_the_models_own_again_after_the_fit(tiny, fails):
    model, _ = tiny
    module = SimpleNamespace(model=model)
    kernel = TrainingAttention("eager")
    kernel.on_fit_start(None, module)
    assert model.config._attn_implementation == "eager"
    if fails:
        kernel.on_exception(None, module, RuntimeError("a step failed"))
    else:
        kernel.on_fit_end(None, module)
    assert model.config._attn_implementation == "sdpa"
