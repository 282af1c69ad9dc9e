"""mode=rm and mode=rm_score on model=tiny."""

import json

import pytest
from test_online import only_run, out

from conftest import TINY_ARGS, run_cli
from sso_exp.evaluation.rewardbench import SECTIONS

ARGS = [a for a in TINY_ARGS if not a.startswith("schedule.iterations")]


def test_rm_on_sso_and_human_pairs_then_scoring(tmp_path, data_dir):
    mix = tmp_path / "mix.jsonl"
    mix.write_text(
        "".join(
            (data_dir / "hh_helpful_online_rs_test.jsonl")
            .read_text()
            .splitlines(keepends=True)[:12]
        )
    )
    proc = run_cli(
        tmp_path,
        "mode=rm",
        *ARGS,
        f"rm.mix={mix}",
        "rm.eval_limit=10",
        f"rm.eval={data_dir / 'hh_helpful_test.jsonl'}",
    )
    assert proc.returncode == 0, out(proc)[-3000:]
    client, run = only_run(tmp_path)
    m = run.data.metrics
    assert m["rm/pairs/human"] == 12 and m["rm/pairs/sso"] + m["rm/skipped"] == m["pairs/kept"]
    assert m["rm/eval/n"] == 10 and 0 <= m["rm/eval/accuracy_ci_low"] <= m["rm/eval/accuracy"]
    assert "rm/loss" in m and (tmp_path / "run/reward_model/model.safetensors").is_file()
    assert len((tmp_path / "run/rm_eval.jsonl").read_text().splitlines()) == 10
    assert "| pairs sso | pairs human |" in proc.stdout

    rows = tmp_path / "score.jsonl"
    rows.write_text(
        '{"prompt": "Hi", "response": "Hello!"}\n{"instruction": "2+2?", "output": "4"}\n'
    )
    scored = tmp_path / "scored"
    scored.mkdir()
    proc = run_cli(
        scored,
        "mode=rm_score",
        "model=tiny",
        f"rm.score_input={rows}",
        f"rm.checkpoint={tmp_path / 'run/reward_model'}",
    )
    assert proc.returncode == 0, out(proc)[-3000:]
    result = [json.loads(line) for line in (scored / "run/scores.jsonl").read_text().splitlines()]
    assert [r["response"] for r in result] == ["Hello!", "4"]
    assert all(isinstance(r["reward"], float) for r in result)


def test_rm_on_a_rewardbench_file_reports_its_sections(tmp_path):
    """A file in RewardBench's schema (prompt, chosen, rejected, subset), one pair per
    subset, made here: the four sections are the weighted means of the rows' hits."""
    rows = [
        {
            "prompt": f"Question {i}?",
            "chosen": f"A good answer {i}.",
            "rejected": "No.",
            "subset": s,
        }
        for i, s in enumerate(s for weights in SECTIONS.values() for s in weights)
    ]
    bench = tmp_path / "rewardbench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli(
        tmp_path, "mode=rm", *ARGS, "rm.sso=false", f"rm.mix={bench}", f"rm.eval={bench}"
    )
    assert proc.returncode == 0, out(proc)[-3000:]
    _, run = only_run(tmp_path)
    scored = [json.loads(x) for x in (tmp_path / "run/rm_eval.jsonl").read_text().splitlines()]
    hit = {r["subset"]: float(r["reward_chosen"] > r["reward_rejected"]) for r in scored}
    for section, weights in SECTIONS.items():
        want = sum(hit[s] * w for s, w in weights.items()) / sum(weights.values())
        assert run.data.metrics[f"rm/eval/rewardbench/{section}"] == pytest.approx(want)
    assert "| RB chat |" in proc.stdout


def test_rm_score_needs_a_checkpoint(tmp_path):
    proc = run_cli(tmp_path, "mode=rm_score", "model=tiny", "rm.score_input=x.jsonl")
    assert proc.returncode == 2 and "rm.checkpoint" in out(proc)
