"""One iteration's training on model=tiny: the reference is the policy at the start of the
iteration, and the loss learns the pairs it is given."""

from contextlib import nullcontext

import pytest
import torch

from conftest import compose_cfg
from sso_exp.data.encoding import encode_records
from sso_exp.data.records import make_record
from sso_exp.models.device import autocast
from sso_exp.models.loading import load_policy
from sso_exp.models.logprobs import score_named
from sso_exp.tracking.mlflow_run import start_run
from sso_exp.training.fit import FitSetup, ScoredPairs, fit
from sso_exp.training.objectives import generator_objective, policy_objective

RECORDS = [
    make_record(
        f"Question {i}?",
        "Be good.",
        "Be bad.",
        f"A fine answer number {i}.",
        f"zq xv {i} kk",
        f"Some answer {i}.",
    )
    for i in range(4)
]


def train(tmp_path, *overrides):
    cfg = compose_cfg(
        tmp_path,
        "model=tiny",
        "schedule.batch_size=2",
        "schedule.grad_accum=1",
        "schedule.lr_scheduler.warmup_ratio=0",
        *overrides,
    )
    model, tok = load_policy(cfg.model, seed=0)
    objective = policy_objective(cfg.loss, cfg.objective)
    encoded = encode_records(tok, RECORDS, objective.sequences(), 256)
    (tmp_path / "config.yaml").write_text("x: 1\n")
    logger = start_run(cfg, cfg.tracking, tmp_path / "config.yaml")
    with autocast(cfg.trainer):  # the reference under training's precision, as the pipeline does
        scores = score_named(
            model, {n: encoded[n] for n in objective.scored()}, tok.pad_token_id, 8
        )
    pairs = ScoredPairs(encoded, scores, tok.pad_token_id)
    setup = FitSetup(cfg.schedule, cfg.trainer, cfg.model.lora, logger, tmp_path)
    metrics, steps = fit(model, pairs, objective, setup, 1)
    logger.step_offset += steps  # as the pipeline does
    logger.close("FINISHED")
    return metrics, logger, model


def test_reference_is_the_starting_policy(tmp_path):
    metrics, _, _ = train(tmp_path, "loss=dpo", "schedule.optimizer.lr=0")
    # with lr 0 the policy stays the reference: zero rewards, DPO loss log 2 on all pairs
    for prefix in ("", "p_", "n_"):
        assert metrics[f"{prefix}rewards/chosen"] == 0
        assert metrics[f"{prefix}rewards/margins"] == 0
    w = metrics["w/mean"]
    assert metrics["loss"] == pytest.approx(0.6931472 * (1 + w * 0.1 * 2), rel=1e-5)


def test_training_learns_the_pairs(tmp_path):
    metrics, logger, _ = train(
        tmp_path, "loss=dpo", "schedule.optimizer.lr=3e-3", "schedule.epochs=6"
    )
    hist = logger.experiment.get_metric_history(logger.run_id, "rewards/margins")
    assert hist[-1].value > 0.5 > hist[0].value
    assert logger.step_offset == 12  # 6 epochs x 2 steps: the next iteration starts there


def test_no_gradients_outlive_training(tmp_path):
    # the last step's gradients, a copy of the weights' size, would be held through the next
    # iteration's sampling and scoring
    _, _, model = train(tmp_path, "loss=dpo")
    assert all(p.grad is None for p in model.parameters())


def scored(tmp_path, *overrides):
    cfg = compose_cfg(tmp_path, *overrides)
    return set(policy_objective(cfg.loss, cfg.objective).scored())


def test_what_is_scored_before_training(tmp_path):
    on_policy = {"main_chosen", "main_rejected", "raw"}
    assert scored(tmp_path, "loss=simpo") == on_policy  # reference-free
    assert scored(tmp_path, "loss=ipo", "loss.use_g=false") == on_policy
    assert scored(tmp_path, "loss=dpo") == on_policy | {
        "p_chosen",
        "p_rejected",
        "n_chosen",
        "n_rejected",
    }
    assert scored(tmp_path, "objective=v2", "loss=simpo") == on_policy  # v2 policy: main only


def test_v2_objectives(tmp_path):
    cfg = compose_cfg(tmp_path, "objective=v2", "loss=ipo")
    policy, gen = policy_objective(cfg.loss, cfg.objective), generator_objective(cfg.objective)
    assert policy.pairs == ["main"] and gen.pairs == ["p", "n"] and gen.needs_reference
    assert gen.lr == 5e-7 and gen.prefix == "generator/"


def _history(logger, key):
    return [m.value for m in logger.experiment.get_metric_history(logger.run_id, key)]


@pytest.mark.slow
def test_bf16_learns_what_fp32_learns(tmp_path):
    """bf16 changes the matmuls only: log-softmax, log-probs and loss stay float32, so a
    few steps from the same start give the same losses and rewards within a small
    tolerance, under autocast (bf16-mixed) and with bf16 weights (bf16-true)."""
    runs = {}
    for precision in ("32-true", "bf16-mixed", "bf16-true"):
        (tmp_path / precision).mkdir()
        _, logger, _ = train(
            tmp_path / precision,
            "loss=dpo",
            "schedule.optimizer.lr=2e-3",
            "schedule.epochs=3",
            f"trainer.precision={precision}",
        )
        runs[precision] = {
            key: _history(logger, key) for key in ("loss", "rewards/margins", "rewards/chosen")
        }
    fp32 = runs["32-true"]
    assert len(fp32["loss"]) == 6
    assert fp32["rewards/margins"][-1] > 0.1  # it learned something to compare
    for precision in ("bf16-mixed", "bf16-true"):
        for key in fp32:
            assert runs[precision][key] == pytest.approx(fp32[key], abs=0.01), (precision, key)


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_a_run_long_autocast_serves_no_stale_weights(tmp_path, precision):
    """Inside one autocast kept open across scoring and training, as the pipeline runs,
    training learns as it does outside it, and scoring after it sees the trained weights,
    not bf16 casts cached before."""
    cfg = compose_cfg(tmp_path, "model=tiny", f"trainer.precision={precision}")
    runs = []
    for inside in (False, True):
        (tmp_path / str(inside)).mkdir()
        with autocast(cfg.trainer) if inside else nullcontext():
            _, logger, model = train(
                tmp_path / str(inside),
                "loss=dpo",
                "schedule.optimizer.lr=2e-3",
                "schedule.epochs=2",
                f"trainer.precision={precision}",
            )
            tok = load_policy(cfg.model)[1]
            seqs = encode_records(tok, RECORDS, ["main_chosen"], 256)
            after = score_named(model, seqs, tok.pad_token_id, 8)["main_chosen"].sum
        runs.append(_history(logger, "loss"))
    assert len(runs[0]) == 4 and runs[1] == pytest.approx(runs[0], abs=1e-3)
    with autocast(cfg.trainer):
        fresh = score_named(model, seqs, tok.pad_token_id, 8)["main_chosen"].sum
    assert torch.allclose(after, fresh, atol=1e-4)


def test_bf16_true_accumulates_micro_batches_like_fp32(tmp_path):
    runs = {}
    for precision in ("32-true", "bf16-true"):
        (tmp_path / precision).mkdir()
        _, logger, _ = train(
            tmp_path / precision,
            "loss=dpo",
            "schedule.optimizer.lr=2e-3",
            "schedule.epochs=3",
            "schedule.batch_size=1",
            "schedule.grad_accum=2",
            f"trainer.precision={precision}",
        )
        runs[precision] = _history(logger, "loss")
    assert len(runs["32-true"]) == 6 and runs["32-true"][-1] < runs["32-true"][0] - 0.3
    assert runs["bf16-true"] == pytest.approx(runs["32-true"], abs=0.01)


def test_bf16_true_keeps_updates_too_small_for_bf16(tmp_path):
    """Steps of ~1e-5 vanish when added to bf16 weights; the float32 masters keep them, and
    the model comes back in float32 having moved as the fp32 run moved."""
    moved = {}
    for precision in ("32-true", "bf16-true"):
        (tmp_path / precision).mkdir()
        start, _ = load_policy(compose_cfg(tmp_path, "model=tiny").model, seed=0)
        _, _, model = train(
            tmp_path / precision,
            "loss=dpo",
            "schedule.optimizer.lr=1e-5",
            f"trainer.precision={precision}",
        )
        assert all(p.dtype == torch.float32 for p in model.parameters())
        moved[precision] = torch.cat(
            [(p - q).flatten() for p, q in zip(model.parameters(), start.parameters())]
        )
    fp32, bf16 = moved["32-true"], moved["bf16-true"]
    assert (bf16 != 0).float().mean() > 0.9
    assert torch.nn.functional.cosine_similarity(fp32, bf16, dim=0) > 0.95


def test_compiled_layers_train_alike_and_are_undone(tmp_path):
    """Compiled (with eager attention under the tree mask, auto's choice on a CPU) as
    uncompiled sdpa; the model is its uncompiled sdpa self again after, and dynamo's
    config and inductor's what they were."""
    floats, isa_ok = torch._dynamo.config.specialize_float, torch._inductor.config.cpp.vec_isa_ok
    runs = []
    for compiled in (False, True):
        (tmp_path / str(compiled)).mkdir()
        _, logger, model = train(
            tmp_path / str(compiled),
            "loss=dpo",
            "schedule.optimizer.lr=2e-3",
            f"trainer.compile={compiled}",
        )
        runs.append(_history(logger, "loss"))
    assert len(runs[0]) == 2 and runs[1] == pytest.approx(runs[0], abs=1e-4)
    assert all(layer._compiled_call_impl is None for layer in model.model.layers)
    assert model.config._attn_implementation == "sdpa"
    assert torch._dynamo.config.specialize_float is floats is False  # the fit's patches undone
    assert torch._inductor.config.cpp.vec_isa_ok is isa_ok


def test_gradient_checkpointing_and_chunking_do_not_change_training(tmp_path):
    runs = []
    for i, args in enumerate(
        [
            ("trainer.gradient_checkpointing=false", "trainer.logps_chunk=0"),
            ("trainer.gradient_checkpointing=true", "trainer.logps_chunk=7"),
        ]
    ):
        (tmp_path / str(i)).mkdir()
        _, logger, _ = train(tmp_path / str(i), "loss=dpo", "schedule.optimizer.lr=2e-3", *args)
        runs.append(_history(logger, "loss"))
    assert len(runs[0]) == 2 and runs[1] == pytest.approx(runs[0], abs=1e-5)


def test_lora_trains_adapters_and_merges_them_back(tmp_path):
    cfg = compose_cfg(tmp_path, "model=tiny")
    start, _ = load_policy(cfg.model, seed=0)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    metrics, _, trained = train(
        tmp_path,
        "loss=dpo",
        "schedule.optimizer.lr=1e-2",
        "schedule.epochs=3",
        "model.lora.enabled=true",
        "model.lora.r=4",
        "model.lora.target_modules=[q_proj,v_proj]",
    )
    assert metrics["rewards/margins"] > 0  # the adapters learned the pairs
    after = trained.state_dict()
    assert set(after) == set(before) and type(trained) is type(start)  # merged, plain model
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
    assert all(p.requires_grad for p in trained.parameters())


@pytest.mark.slow
def test_ddp_spawn_on_two_cpu_processes_matches_one_process(tmp_path):
    """Same global batch (2 x 1 vs 1 x 2), same data order: the same losses step by step,
    logged by rank 0 into the main process's run, and the trained weights back in it."""
    runs, weights = {}, {}
    for name, args in {
        "single": ("schedule.batch_size=2",),
        "ddp": ("trainer=ddp_spawn", "schedule.batch_size=1"),
    }.items():
        (tmp_path / name).mkdir()
        _, logger, model = train(
            tmp_path / name, "loss=dpo", "schedule.optimizer.lr=2e-3", "schedule.epochs=2", *args
        )
        assert logger.step_offset == 4  # the next iteration's steps continue after these
        weights[name] = model.state_dict()
        runs[name] = {
            key: [m.value for m in logger.experiment.get_metric_history(logger.run_id, key)]
            for key in ("loss", "rewards/margins")
        }
    assert len(runs["single"]["loss"]) == len(runs["ddp"]["loss"]) == 4
    for key in runs["single"]:
        assert runs["ddp"][key] == pytest.approx(runs["single"][key], abs=1e-4), key
    start, _ = load_policy(compose_cfg(tmp_path, "model=tiny").model, seed=0)
    for key, value in start.state_dict().items():  # Adam's update, up to float rounding
        moved = (weights["single"][key] - value).norm()
        assert (weights["ddp"][key] - weights["single"][key]).norm() <= 1e-3 * moved, key
    assert any(
        not torch.equal(value, weights["ddp"][key]) for key, value in start.state_dict().items()
    )
