"""One iteration's training on model=tiny: the reference is the policy at the start of the
iteration, and the loss learns the pairs it is given."""
import pytest

from conftest import compose_cfg
from sso_exp.data import make_record
from sso_exp.dataset import encode_records
from sso_exp.models import load_policy
from sso_exp.tracking import start_run
from sso_exp.objectives import generator_objective, policy_objective
from sso_exp.train import fit, score_sequences

RECORDS = [make_record(f"Question {i}?", "Be good.", "Be bad.", f"A fine answer number {i}.",
                       f"zq xv {i} kk", f"Some answer {i}.") for i in range(4)]


def train(tmp_path, *overrides):
    cfg = compose_cfg(tmp_path, "model=tiny", "schedule.batch_size=2", "schedule.grad_accum=1",
                      "schedule.warmup_ratio=0", *overrides)
    model, tok = load_policy(cfg.model, seed=0)
    objective = policy_objective(cfg)
    encoded = encode_records(tok, RECORDS, objective.sequences(), 256)
    scores = score_sequences(model, {n: encoded[n] for n in objective.scored()},
                             tok.pad_token_id, 8)
    (tmp_path / "config.yaml").write_text("x: 1\n")
    logger = start_run(cfg, cfg.tracking, tmp_path / "config.yaml")
    metrics = fit(model, tok, encoded, scores, objective, cfg, logger, 1, tmp_path)
    logger.close("FINISHED")
    return metrics, logger


def test_reference_is_the_starting_policy(tmp_path):
    metrics, _ = train(tmp_path, "loss=dpo", "schedule.lr=0")
    # with lr 0 the policy stays the reference: zero rewards, DPO loss log 2 on all pairs
    for prefix in ("", "p_", "n_"):
        assert metrics[f"{prefix}rewards/chosen"] == 0
        assert metrics[f"{prefix}rewards/margins"] == 0
    w = metrics["w/mean"]
    assert metrics["loss"] == pytest.approx(0.6931472 * (1 + w * 0.1 * 2), rel=1e-5)


def test_training_learns_the_pairs(tmp_path):
    metrics, logger = train(tmp_path, "loss=dpo", "schedule.lr=3e-3", "schedule.epochs=6")
    hist = logger.experiment.get_metric_history(logger.run_id, "rewards/margins")
    assert hist[-1].value > 0.5 > hist[0].value
    assert logger.step_offset == 12  # 6 epochs x 2 steps: the next iteration starts there


def scored(tmp_path, *overrides):
    return set(policy_objective(compose_cfg(tmp_path, *overrides)).scored())


def test_what_is_scored_before_training(tmp_path):
    on_policy = {"main_chosen", "main_rejected", "raw"}
    assert scored(tmp_path, "loss=simpo") == on_policy  # reference-free
    assert scored(tmp_path, "loss=ipo", "loss.use_g=false") == on_policy
    assert scored(tmp_path, "loss=dpo") == on_policy | {"p_chosen", "p_rejected", "n_chosen",
                                                        "n_rejected"}
    assert scored(tmp_path, "objective=v2", "loss=simpo") == on_policy  # v2 policy: main only


def test_v2_objectives(tmp_path):
    cfg = compose_cfg(tmp_path, "objective=v2", "loss=ipo")
    policy, gen = policy_objective(cfg), generator_objective(cfg)
    assert policy.pairs == ["main"] and gen.pairs == ["p", "n"] and gen.needs_reference
    assert gen.lr == 5e-7 and gen.prefix == "generator/"
