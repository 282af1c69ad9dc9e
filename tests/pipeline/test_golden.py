"""A small seeded online run on model=tiny is pinned: its pairs files byte for byte and its
whole metric history, so a change meant to keep behaviour (a refactor) can show it did.

The pins hold on any x86-64 CPU: float metrics agree to a tolerance at their magnitude, and
a thresholded metric (the share of pairs whose margin is positive) is compared as a count
of pairs within one: its margins are ~1e-4 here, so a sign can flip with the CPU's kernels
(AVX2 against AVX-512) while everything else agrees. The pin names the machine it was
made on (`machine`)."""

import json
import math
from pathlib import Path

import mlflow
import pytest

from conftest import TINY_ARGS, run_cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "tiny_online.json"
# float32 training over a few steps: values agree to ~1e3 float32 ulps of their magnitude
RTOL = 1000 * 2.0**-23
BATCH = int(next(a for a in TINY_ARGS if a.startswith("schedule.batch_size=")).split("=")[1])


def capture(tmp_path: Path) -> dict:
    """The run's pairs files (text) and every metric's (step, value) history."""
    from sso_exp.runtime.host import describe_machine

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])[0]
    metrics = {
        key: sorted([m.step, m.value] for m in client.get_metric_history(run.info.run_id, key))
        for key in sorted(run.data.metrics)
        if not key.startswith(("time/", "system/"))  # wall times, machine load: run to run
    }
    pairs = {
        p.parent.name: p.read_text(encoding="utf-8")
        for p in sorted((tmp_path / "run").glob("iter_*/pairs.jsonl"))
    }
    return {"machine": describe_machine(), "pairs": pairs, "metrics": metrics}


def pairs_behind(key: str, step: int, metrics: dict) -> int:
    """How many pairs a thresholded metric's value counts, 0 for any other metric: a
    training step's batch, or an iteration's kept pairs (its means and the model after)."""
    name = key.removesuffix("_se")
    if not name.endswith(("accuracies", "accuracy")) or name.startswith("signal/"):
        return 0
    if name.startswith(("train/", "after/")):
        return int(dict(metrics["pairs/kept"])[step])
    return BATCH


def check_history(key: str, got: list, want: list, metrics: dict, pinned_metrics: dict) -> None:
    """`got` against `want`, a metric's (step, value) history; `metrics` and
    `pinned_metrics` are the whole runs', for the pair counts and shares behind a value."""
    assert [s for s, _ in got] == [s for s, _ in want], key
    for (step, value), (_, pinned) in zip(got, want):
        n = pairs_behind(key, step, metrics)
        if key.endswith("_se") and n:  # a share's interval: as pinned where the share is
            share = key.removesuffix("_se")
            if dict(metrics[share])[step] != dict(pinned_metrics[share])[step]:
                continue  # a flipped pair moves it; the share's own check bounds that
        if n and not key.endswith("_se"):
            assert abs(value - pinned) * n <= 1 + RTOL, (key, step, value, pinned, n)
        else:
            assert math.isclose(value, pinned, rel_tol=RTOL, abs_tol=RTOL), (key, value, pinned)


def test_seeded_tiny_run_matches_the_pinned_one(tmp_path):
    proc = run_cli(tmp_path, *TINY_ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, want = capture(tmp_path), json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got["pairs"] == want["pairs"], f"pinned on {want['machine']}"
    assert sorted(got["metrics"]) == sorted(want["metrics"])
    for key, history in want["metrics"].items():
        check_history(key, got["metrics"][key], history, got["metrics"], want["metrics"])


def test_a_flipped_pair_is_within_the_count_and_two_are_not():
    def check(key, got, want, shares=(0.5, 0.5)):
        """`key` at step 1, in two runs of 4 kept pairs whose share behind an `_se` is given."""
        share = "train/rewards/accuracies"
        runs = [{"pairs/kept": [[1, 4.0]], share: [[1, v]]} for v in shares]
        check_history(key, [[1, got]], [[1, want]], *runs)

    check("rewards/accuracies", 0.5, 0.0)  # a step's batch of 2: one pair flipped
    check("train/rewards/accuracies", 0.5, 0.25)  # an iteration's 4 kept pairs
    check("train/rewards/accuracies_se", 0.25, 0.22, (0.5, 0.25))  # its share moved: not pinned
    for key, got, want in (
        ("rewards/accuracies", 1.0, 0.0),
        ("train/rewards/accuracies", 0.75, 0.25),
        ("train/rewards/accuracies_se", 0.25, 0.22),  # the same share: pinned
        ("loss", 30.0, 30.1),
    ):
        with pytest.raises(AssertionError):
            check(key, got, want)


# Re-pin after a change meant to alter behaviour (say why in the commit):
#   PYTHONPATH=tests .venv/bin/python tests/pipeline/test_golden.py
if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = run_cli(Path(tmp), *TINY_ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        GOLDEN.write_text(json.dumps(capture(Path(tmp)), indent=1) + "\n", encoding="utf-8")
