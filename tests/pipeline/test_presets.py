"""Every experiment preset (a row of the paper) composes and runs at tiny sizes; those that
read public data files need the data folder."""

import pytest
from test_online import only_run, out

from conftest import CONF, run_cli

pytestmark = pytest.mark.slow  # whole runs: `make test` starts these files first

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TINY = [
    "model=tiny",
    "schedule.iterations=1",
    "schedule.queries_per_iteration=3",
    "generation.max_new_tokens=10",
    "schedule.batch_size=2",
    "schedule.grad_accum=1",
    "generation.batch_size=12",
    "principle.identify_max_new_tokens=6",
    "trainer=default",
]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_at_tiny_sizes(tmp_path, preset, request):
    extra = []
    if preset in ("human_pairs", "sso_rm"):
        data_dir = request.getfixturevalue("data_dir")
        extra = [f"data.dir={data_dir}"]
    if preset == "human_pairs":
        small = tmp_path / "human.jsonl"
        small.write_text(
            "".join(
                (data_dir / "hh_helpful_online_rs_test.jsonl")
                .read_text(encoding="utf-8")
                .splitlines(keepends=True)[:6]
            ),
            encoding="utf-8",
        )
        extra.append(f"data.pairs={small}")
    if preset == "sso_rm":
        extra.append("rm.eval_limit=4")
    proc = run_cli(tmp_path, f"experiment={preset}", *TINY, *extra, "mode.on_empty=continue")
    assert proc.returncode == 0, out(proc)[-3000:]
    _, run = only_run(tmp_path)
    assert run.info.status == "FINISHED" and run.info.run_name == preset
