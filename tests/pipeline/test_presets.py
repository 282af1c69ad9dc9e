"""Every experiment preset (a row of the paper) composes and runs at tiny sizes."""
import pytest

from conftest import CONF, SHARED_DATA, compose_cfg, run_cli
from test_online import only_run, out

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TINY = ["model=tiny", "schedule.iterations=1", "schedule.queries_per_iteration=3",
        "schedule.max_new_tokens=10", "schedule.batch_size=2", "schedule.grad_accum=1",
        "schedule.generation_batch_size=12", "principle.identify_max_new_tokens=6",
        "trainer=default"]
EXPECTED = {  # what each preset must set, as the paper's rows define them
    "sso": {"loss.name": "ipo", "loss.use_g": True, "loss.use_w": True, "objective.name": "v1"},
    "pbaa": {"loss.use_g": False, "loss.use_w": False, "mode.name": "online"},
    "no_w": {"loss.use_g": True, "loss.use_w": False},
    "no_g": {"loss.use_g": False, "loss.use_w": True},
    "sso_v2": {"objective.name": "v2"},
    "human_pairs": {"mode.name": "offline", "loss.use_g": False},
    "sso_rm": {"mode.name": "rm", "rm.sso": True},
    "paper_online": {"schedule.iterations": 3, "loss.beta": 0.2, "loss.w_alpha": 0.66,
                     "trainer.accelerator": "gpu", "trainer.precision": "bf16-mixed"},
}


def test_every_preset_is_checked():
    assert sorted(EXPECTED) == PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_sets_its_row(tmp_path, preset):
    cfg = compose_cfg(tmp_path, f"experiment={preset}")
    for key, want in EXPECTED[preset].items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == want, key


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_at_tiny_sizes(tmp_path, preset):
    extra = []
    if preset == "human_pairs":
        small = tmp_path / "human.jsonl"
        small.write_text("".join((SHARED_DATA / "hh_helpful_online_rs_test.jsonl").read_text(
            encoding="utf-8").splitlines(keepends=True)[:6]), encoding="utf-8")
        extra = [f"data.pairs={small}"]
    if preset == "sso_rm":
        extra = ["rm.eval_limit=4"]
    proc = run_cli(tmp_path, f"experiment={preset}", *TINY, *extra, "mode.on_empty=continue")
    assert proc.returncode == 0, out(proc)[-3000:]
    _, run = only_run(tmp_path)
    assert run.info.status == "FINISHED" and run.info.run_name == preset
