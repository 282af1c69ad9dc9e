"""What the trained policy prefers on its own pairs after an iteration's training, and the
iteration's signal figures per query."""

import pytest
import torch

from conftest import compose_cfg
from sso_exp.data.encoding import encode_records
from sso_exp.data.packing import alone
from sso_exp.data.pairs import SeqLogps
from sso_exp.data.records import make_record
from sso_exp.models.logprobs import score_named, sequence_logps
from sso_exp.pipeline.context import RunContext
from sso_exp.pipeline.stages import preference_after, signal_stats
from sso_exp.training.fit import ScoredPairs

NAMES = ["main_chosen", "main_rejected"]


def test_the_preference_after_training_is_the_margin_against_the_model_before(tiny, tmp_path):
    model, tok = tiny
    cfg = compose_cfg(tmp_path, "model=tiny")
    records = [
        make_record(f"Question {i}?", "Be good.", "Be bad.", f"Answer {i}.", f"zq {i} kk", "")
        for i in range(4)
    ]
    encoded = encode_records(tok, records, NAMES, 256)
    before = score_named(model, encoded, tok.pad_token_id, 4)
    ctx = RunContext(cfg, tok, logger=None, run_dir=tmp_path)
    unchanged = preference_after(ctx, model, ScoredPairs(encoded, before, tok.pad_token_id), "")
    assert unchanged["after/margin"] == 0 and unchanged["after/accuracy"] == 0  # no tie wins

    chosen, rejected = (alone(encoded[n], tok.pad_token_id) for n in NAMES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(5):  # raise every chosen answer against its rejected one
        gap = sequence_logps(model, chosen).sum - sequence_logps(model, rejected).sum
        optimizer.zero_grad()
        (-gap.sum()).backward()
        optimizer.step()
    after = score_named(model, encoded, tok.pad_token_id, 4)
    margin = (after["main_chosen"].sum - before["main_chosen"].sum) - (
        after["main_rejected"].sum - before["main_rejected"].sum
    )
    pairs = ScoredPairs(encoded, before, tok.pad_token_id)
    learnt = preference_after(ctx, model, pairs, "generator/")
    assert learnt["generator/after/accuracy"] == (margin > 0).double().mean().item() == 1.0
    assert abs(learnt["generator/after/margin"] - margin.double().mean().item()) < 1e-3
    assert learnt["generator/after/margin_se"] > 0


def test_signal_stats_pair_each_query_with_its_own_y0():
    counts = torch.tensor([2.0, 4.0, 5.0])
    scored = {  # mean log-probs: y+ (-1, -2, -3), y- (-2, -2, -5), y0 (-1.5, -2.5, -3.5)
        "main_chosen": SeqLogps(torch.tensor([-2.0, -8.0, -15.0]), counts),
        "main_rejected": SeqLogps(torch.tensor([-4.0, -8.0, -25.0]), counts),
        "raw": SeqLogps(torch.tensor([-3.0, -10.0, -17.5]), counts),
    }
    stats = signal_stats(scored, prefix="gen/")
    assert stats["gen/onpolicy/chosen"] == pytest.approx(-2.0)
    assert stats["gen/onpolicy/chosen_minus_raw"] == pytest.approx(0.5)
    assert stats["gen/onpolicy/chosen_minus_raw_se"] == pytest.approx(0.0, abs=1e-12)
    diffs = torch.tensor([-0.5, 0.5, -1.5], dtype=torch.float64)  # y- minus y0, per query
    assert stats["gen/onpolicy/rejected_minus_raw"] == pytest.approx(-0.5)
    assert stats["gen/onpolicy/rejected_minus_raw_se"] == pytest.approx(diffs.std() / 3**0.5)
    assert stats["gen/length/raw"] == pytest.approx(11 / 3)


def test_a_pool_smaller_than_an_iteration_is_used_saying_so(tiny, tmp_path, caplog):
    from types import SimpleNamespace

    from sso_exp.pipeline.stages import usable_prompts

    model, tok = tiny
    prompts = tmp_path / "one.jsonl"
    prompts.write_text('{"prompt": "The only question?"}\n')
    cfg = compose_cfg(tmp_path, "model=tiny", f"data.prompts={prompts}")
    logger = SimpleNamespace(log_iteration=lambda step, metrics: None)
    assert usable_prompts(RunContext(cfg, tok, logger, tmp_path), model) == ["The only question?"]
    assert "holds 1 usable prompts for schedule.queries_per_iteration=8" in caplog.text
