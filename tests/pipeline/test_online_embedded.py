"""The real embedded SmolLM2-135M at tiny sizes: the main job as users run it."""

import json

import pytest

from conftest import run_cli


@pytest.mark.slow
def test_an_iteration_on_the_embedded_model(tmp_path):
    """One iteration (the tiny model's tests go through several): the suite's longest test
    at two, for the same checks."""
    proc = run_cli(
        tmp_path,
        "schedule.iterations=1",
        "schedule.queries_per_iteration=4",
        "generation.max_new_tokens=16",
        "principle.identify_max_new_tokens=12",
        "schedule.batch_size=2",
        "schedule.grad_accum=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for it in (1,):
        rows = [
            json.loads(line)
            for line in (tmp_path / f"run/iter_{it}/pairs.jsonl").read_text().splitlines()
        ]
        assert rows, f"iteration {it} kept no pairs"
        # a real instruct model writes distinct, non-empty answers under p+, p- and no system
        assert all(r["chosen"] and r["rejected"] and r["raw"] for r in rows)
        assert (tmp_path / f"run/iter_{it}/policy/model.safetensors").is_file()
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 2  # header, one iteration
    for row in table[1:]:
        # mean token log-prob of real text under SmolLM2 is far above uniform (-10.8)
        onpol = [float(v.split("±")[0]) for v in row.split("|")[8:11]]  # mean ± 95%
        assert all(-5 < v < 0 for v in onpol), row
