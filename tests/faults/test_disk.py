"""A write the disk refuses (ENOSPC, injected at iteration 2's pairs file) ends the run in
one message naming the file, iteration 1's work intact, and the same command then finishes
the run like one that never failed."""

import json
from pathlib import Path

from conftest import ROOT, TINY_ARGS, run_cli, run_module, store

INJECT = Path(__file__).with_name("inject.py")


def test_a_full_disk_names_the_file_loses_nothing_and_the_run_resumes(tmp_path):
    args = [
        f"hydra.run.dir={tmp_path}/run",
        f"tracking.uri={store(tmp_path)}",
        f"tracking.artifact_location={tmp_path}/art",
        *TINY_ARGS,
    ]
    proc = run_module(str(INJECT), "run/iter_2/pairs.jsonl", "1", *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
    assert f"{tmp_path}/run/iter_2/pairs.jsonl: No space left on device" in out
    run = tmp_path / "run"
    first = (run / "iter_1/pairs.jsonl").read_text()
    assert list(json.loads((run / "state.json").read_text())["stages"]) == [
        "iter_1/sample",
        "iter_1/train",
    ]
    again = run_cli(tmp_path, *TINY_ARGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout + again.stderr
    assert (run / "iter_1/pairs.jsonl").read_text() == first
    golden = json.loads((ROOT / "tests/golden/tiny_online.json").read_text())
    assert (run / "iter_2/pairs.jsonl").read_text() == golden["pairs"]["iter_2"]
