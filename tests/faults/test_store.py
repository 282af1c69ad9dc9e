"""A new sqlite store opened by several processes at once (runs or sweeps started together)
is made once, under a lock: every process gets the store and the same experiment, and the
store works for the runs after them."""

import subprocess
import sys

from conftest import ROOT

OPEN = """
import sys
from types import SimpleNamespace
from sso_exp.tracking.store import experiment_id, open_client
client = open_client(sys.argv[1])
print(experiment_id(client, SimpleNamespace(experiment_name="x", artifact_location=None)))
"""


def test_processes_opening_a_new_store_together_all_get_it(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, uri], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        for _ in range(4)
    ]  # fmt: skip
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, found by all
    after = subprocess.run([sys.executable, "-c", OPEN, uri], cwd=ROOT, capture_output=True)
    assert after.returncode == 0
