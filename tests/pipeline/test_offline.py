"""mode=offline on model=tiny: train on the authors' file, or on pairs a generator writes."""

import json

from test_online import only_run, out

from conftest import FIXTURES, TINY_ARGS, run_cli, tracked_runs

ARGS = [a for a in TINY_ARGS if not a.startswith("schedule.iterations")]


def test_trains_on_the_authors_file(tmp_path):
    proc = run_cli(tmp_path, "mode=offline", *ARGS, f"data.pairs={FIXTURES / 'sso_records.json'}")
    assert proc.returncode == 0, out(proc)[-3000:]
    assert (tmp_path / "run/iter_1/policy/model.safetensors").is_file()
    client, run = only_run(tmp_path)
    assert run.info.status == "FINISHED" and run.data.metrics["pairs/kept"] == 1
    assert "rewards/accuracies" in run.data.metrics and "p_rewards/margins" in run.data.metrics
    assert [a.path for a in client.list_artifacts(run.info.run_id, "iter_1")] == [
        "iter_1/sso_records.json"
    ]


def test_generator_writes_pairs_with_generated_principles(tmp_path):
    proc = run_cli(
        tmp_path,
        "mode=offline",
        *ARGS,
        "generator=tiny",
        "principle=generated",
        "principle.generate_max_new_tokens=16",
    )
    assert proc.returncode == 0, out(proc)[-3000:]
    rows = [
        json.loads(line) for line in (tmp_path / "run/iter_1/pairs.jsonl").read_text().splitlines()
    ]
    assert rows and all(r["system"] == "" for r in rows)
    _, run = only_run(tmp_path)
    # a random tiny model never writes valid JSON: every principle falls back, and is counted
    assert run.data.metrics["principles/fallback_rate"] == 1.0
    assert run.data.metrics["principles/generated"] >= 8


def test_logprob_filter_drops_are_logged(tmp_path):
    proc = run_cli(tmp_path, "mode=offline", *ARGS, "filter=logprob")
    _, run = only_run(tmp_path)
    dropped = sum(
        run.data.metrics[f"pairs/dropped/logprob_{r}"] for r in ("order", "offpolicy", "gap")
    )
    assert dropped == 4 - run.data.metrics["pairs/kept"] - run.data.metrics["pairs/dropped/short"]
    assert proc.returncode == (0 if run.data.metrics["pairs/kept"] else 2)


def test_bad_pairs_file_fails_before_any_work(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"instruction": "q"}\n')
    proc = run_cli(tmp_path, "mode=offline", *ARGS, f"data.pairs={bad}")
    assert proc.returncode == 2 and "p.jsonl:1: not a preference pair (no field 'chosen')" in out(
        proc
    )
    assert not tracked_runs(tmp_path)
