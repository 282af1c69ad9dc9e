"""mode=rm and mode=rm_score on model=tiny."""

import json

from test_online import only_run, out

from conftest import TINY_ARGS, run_cli

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


def test_rm_score_needs_a_checkpoint(tmp_path):
    proc = run_cli(tmp_path, "mode=rm_score", "model=tiny", "rm.score_input=x.jsonl")
    assert proc.returncode == 2 and "rm.checkpoint" in out(proc)
