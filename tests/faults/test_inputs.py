"""Inputs that once cost memory or minutes: a 200,000-character query is dropped (or cut)
before any stage batches it, counted and logged; when every query is over the budget the
run stops naming the file and the key."""

import json

from conftest import TINY_ARGS, run_cli, run_module


def prompts_file(tmp_path, *texts):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    return path


def test_a_huge_query_is_dropped_counted_and_the_run_goes_on(tmp_path):
    import mlflow

    path = prompts_file(tmp_path, "What is 2+2?", "x" * 200_000, "Name a color.")
    proc = run_cli(tmp_path, *TINY_ARGS, f"data.prompts={path}", "schedule.iterations=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])[0]
    assert run.data.metrics["prompts/dropped_too_long"] == 1
    queries = [
        json.loads(line)["instruction"] for line in (tmp_path / "run/iter_1/generated.jsonl").open()
    ]
    assert queries and all(len(q) < 100 for q in queries)


def test_every_query_over_the_budget_stops_naming_the_key(tmp_path):
    path = prompts_file(tmp_path, "a long question " * 50)
    proc = run_cli(
        tmp_path,
        *TINY_ARGS,
        f"data.prompts={path}",
        "data.max_prompt_tokens=16",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out
    assert "q.jsonl: all 1 prompts are over 16 tokens" in out and "data.max_prompt_tokens" in out


def test_a_run_folder_that_cannot_be_made_is_bad_input(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_module("sso_exp", "model=tiny", f"hydra.run.dir={blocker}/run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"config key 'hydra.run.dir': {blocker}/run cannot be made" in proc.stderr
