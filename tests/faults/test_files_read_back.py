"""No file in a run folder can run code: a tracking buffer crafted to run a command when
unpickled (as the buffer once was) is refused naming the file, by `resume=<folder>` and by
`python -m sso_exp.tracking.replay`, and the command never runs."""

import os
import pickle

from conftest import TINY_ARGS, run_cli, run_module
from sso_exp.tracking.mlflow_run import BUFFER_FILE


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_buffer_is_refused_and_runs_nothing(tmp_path):
    failed = run_cli(tmp_path, *TINY_ARGS, "filter.min_chars=100000")  # a run to resume
    assert failed.returncode == 2, failed.stderr[-3000:]
    run, marker = tmp_path / "run", tmp_path / "ran"
    crafted = pickle.dumps(Payload(marker))
    (run / BUFFER_FILE).write_bytes(crafted)
    (run / "tracking_buffer.pkl").write_bytes(crafted)  # the old name: never read
    for proc in (
        run_module("sso_exp.tracking.replay", str(run)),
        run_cli(tmp_path, *TINY_ARGS, "filter.min_chars=100000", f"resume={run}"),
    ):
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2 and "Traceback" not in out, out[-3000:]
        assert f"{run / BUFFER_FILE}:1" in out
        assert not marker.exists()
