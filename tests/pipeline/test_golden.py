"""A small seeded online run on model=tiny is pinned: its pairs files byte for byte and its
whole metric history, so a change meant to keep behaviour (a refactor) can show it did."""

import json
import math
from pathlib import Path

import mlflow

from conftest import TINY_ARGS, run_cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "tiny_online.json"
# float32 training over a few steps: values agree to ~1e3 float32 ulps of their magnitude
RTOL = 1000 * 2.0**-23


def capture(tmp_path: Path) -> dict:
    """The run's pairs files (text) and every metric's (step, value) history."""
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("sso-exp").experiment_id])[0]
    metrics = {
        key: sorted([m.step, m.value] for m in client.get_metric_history(run.info.run_id, key))
        for key in sorted(run.data.metrics)
        if not key.startswith("time/")  # wall times differ from run to run
    }
    pairs = {
        p.parent.name: p.read_text(encoding="utf-8")
        for p in sorted((tmp_path / "run").glob("iter_*/pairs.jsonl"))
    }
    return {"pairs": pairs, "metrics": metrics}


def test_seeded_tiny_run_matches_the_pinned_one(tmp_path):
    proc = run_cli(tmp_path, *TINY_ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, want = capture(tmp_path), json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got["pairs"] == want["pairs"]
    assert sorted(got["metrics"]) == sorted(want["metrics"])
    for key, history in want["metrics"].items():
        assert [s for s, _ in got["metrics"][key]] == [s for s, _ in history], key
        for (_, value), (_, pinned) in zip(got["metrics"][key], history):
            assert math.isclose(value, pinned, rel_tol=RTOL, abs_tol=RTOL), (key, value, pinned)


if __name__ == "__main__":  # re-pin after a change meant to alter behaviour; say why in the commit
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = run_cli(Path(tmp), *TINY_ARGS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        GOLDEN.write_text(json.dumps(capture(Path(tmp)), indent=1) + "\n", encoding="utf-8")
