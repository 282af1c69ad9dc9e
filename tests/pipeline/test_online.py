"""`python -m sso_exp` on model=tiny: what a run leaves behind, and how bad input fails."""

import json
import math
from pathlib import Path

import mlflow
import pytest
from safetensors import safe_open

from conftest import TINY_ARGS, run_cli, tracked_runs
from sso_exp.data.records import RECORD_FIELDS

STEP_METRICS = [
    f"{p}rewards/{k}"
    for p in ("", "p_", "n_")
    for k in ("chosen", "rejected", "accuracies", "margins")
]
STEP_METRICS += ["loss", "logps/chosen", "logps/rejected", "w/mean"]
ITER_METRICS = [
    "pairs/generated",
    "pairs/kept",
    "pairs/drop_rate",
    "pairs/dropped/short",
    "length/chosen",
    "length/rejected",
    "length/raw",
    "onpolicy/chosen",
    "onpolicy/rejected",
    "onpolicy/raw",
]


def out(proc):
    """What the user sees: Hydra logs to stdout, Python errors to stderr."""
    return proc.stdout + proc.stderr


def only_run(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.fixture(scope="module")
def online_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("online")
    proc = run_cli(tmp, *TINY_ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc


def test_each_iteration_leaves_pairs_and_a_checkpoint(online_run):
    tmp, _ = online_run
    for it in (1, 2):
        rows = [
            json.loads(line)
            for line in (tmp / f"run/iter_{it}/pairs.jsonl").read_text().splitlines()
        ]
        assert rows and all(tuple(r) == RECORD_FIELDS for r in rows)
        assert all(r["p_system"].startswith("Your response should be") for r in rows)
        ckpt = tmp / f"run/iter_{it}/policy"
        assert (ckpt / "model.safetensors").is_file() and not list(ckpt.glob("*.bin"))
    with (
        safe_open(tmp / "run/iter_1/policy/model.safetensors", "pt") as a,
        safe_open(tmp / "run/iter_2/policy/model.safetensors", "pt") as b,
    ):
        key = "model.layers.0.mlp.up_proj.weight"
        assert not (a.get_tensor(key) == b.get_tensor(key)).all(), "iteration 2 did not train"


def test_mlflow_run_holds_config_metrics_and_pairs(online_run):
    tmp, _ = online_run
    client, run = only_run(tmp)
    assert run.info.status == "FINISHED"
    assert run.data.params["loss.name"] == "ipo" and run.data.params["model.source"] == "tiny"
    for key in STEP_METRICS + ITER_METRICS:
        assert key in run.data.metrics, key
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert steps == sorted(set(steps)) and len(steps) == 4  # 2 iterations x 2 steps, no repeats
    onpol = client.get_metric_history(run.info.run_id, "onpolicy/chosen")
    assert [m.step for m in onpol] == [1, 2] and all(m.value < 0 for m in onpol)
    acc, se = (run.data.metrics[f"train/rewards/accuracies{s}"] for s in ("", "_se"))
    kept = run.data.metrics["pairs/kept"]  # the last iteration's pairs, trained once
    assert se == pytest.approx(math.sqrt(acc * (1 - acc) / kept))  # a binomial interval
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "iter_1", "iter_2", "summary.md"} <= arts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "iter_2")] == [
        "iter_2/pairs.json",
        "iter_2/pairs.jsonl",
    ]


def test_the_mlflow_run_reads_like_a_lab_notebook(online_run):
    """Filed as model training, named from its choices, described by its summary, its pairs
    a table the UI shows, the data it read as dataset inputs."""
    tmp, proc = online_run
    client, run = only_run(tmp)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.run_name == "online-ipo-tiny"
    summary = (tmp / "run/summary.md").read_text().strip()
    assert run.data.tags["mlflow.note.content"] == summary and summary in proc.stdout
    tables = json.loads(run.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "iter_1/pairs.json", "type": "table"} in tables
    table = json.loads(
        Path(client.download_artifacts(run.info.run_id, "iter_1/pairs.json", str(tmp))).read_text()
    )
    chosen = [row[table["columns"].index("chosen")] for row in table["data"]]
    kept = (tmp / "run/iter_1/pairs.jsonl").read_text().splitlines()
    assert chosen == [json.loads(line)["chosen"] for line in kept]
    inputs = {d.dataset.name: d.tags[0].value for d in run.inputs.dataset_inputs}
    assert inputs == {"demo_queries.jsonl": "data.prompts"}


def test_console_prints_the_summary_table(online_run):
    _, proc = online_run
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| iter | generated | kept | drop %")
    assert [line.split("|")[1].strip() for line in table[1:]] == ["1", "2"]


def test_missing_prompts_file_fails_before_any_work(tmp_path):
    proc = run_cli(tmp_path, *TINY_ARGS, f"data.prompts={tmp_path}/none.jsonl")
    assert proc.returncode == 2
    assert "config key 'data.prompts'" in out(proc) and "none.jsonl not found" in out(proc)
    assert not tracked_runs(tmp_path) and not list(tmp_path.glob("run/iter_*"))


def test_malformed_prompt_line_names_file_and_line(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "broken"\n')
    proc = run_cli(tmp_path, *TINY_ARGS, f"data.prompts={bad}")
    assert proc.returncode == 2 and f"{bad}:2: invalid JSON" in out(proc)


@pytest.mark.parametrize(
    "override, named", [("loss.gbeta=1", "loss.gbeta"), ("schedule.iterations=lots", "lots")]
)
def test_a_command_line_that_does_not_compose_is_bad_input(tmp_path, override, named):
    proc = run_cli(tmp_path, *TINY_ARGS, override)
    assert proc.returncode == 2 and named in out(proc) and "Traceback" not in out(proc)
    assert not tracked_runs(tmp_path)


def test_unavailable_model_fails_with_one_message(tmp_path):
    proc = run_cli(tmp_path, "model=qwen2", f"model.path={tmp_path}/missing/Qwen2-7B-Instruct")
    assert proc.returncode == 2
    assert "not available offline" in out(proc) and "model.path=" in out(proc)


def test_empty_iteration_stops_and_keeps_what_was_written(tmp_path):
    proc = run_cli(tmp_path, *TINY_ARGS, "filter.min_chars=100000")
    assert proc.returncode == 2 and "dropped all 4 pairs" in out(proc)
    assert len((tmp_path / "run/iter_1/generated.jsonl").read_text().splitlines()) == 4
    _, run = only_run(tmp_path)
    assert run.info.status == "FAILED" and run.data.metrics["pairs/dropped/short"] == 4


def test_a_diverging_iteration_stops_before_anything_is_saved(tmp_path):
    """A learning rate of 1e30 is finite, but its first step makes the weights infinite:
    the next gradient is NaN, and the run stops there, its policy never saved."""
    proc = run_cli(tmp_path, *TINY_ARGS, "schedule.optimizer.lr=1e30")
    assert proc.returncode == 2 and "the gradient holds NaN or infinite values" in out(proc)
    assert "iteration 1: training stopped at optimizer step 2" in out(proc)
    assert "Traceback" not in out(proc)
    assert not (tmp_path / "run/iter_1/policy").exists()
    assert "iter_1/train" not in json.loads((tmp_path / "run/state.json").read_text())["stages"]
    _, run = only_run(tmp_path)
    assert run.info.status == "FAILED"


def test_empty_iteration_can_go_on(tmp_path):
    proc = run_cli(tmp_path, *TINY_ARGS, "filter.min_chars=100000", "mode.on_empty=continue")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "going on with the policy unchanged" in out(proc)
    _, run = only_run(tmp_path)
    assert run.info.status == "FINISHED" and run.data.metrics["pairs/kept"] == 0
