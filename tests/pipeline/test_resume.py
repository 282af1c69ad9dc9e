"""Which run folder a run works in: a fresh one, an earlier unfinished one of the same config
(not one a live process holds), or a named one, refused when its config differs."""

import json
import pickle

import pytest

from conftest import compose_cfg
from sso_exp.errors import ConfigError, DataError
from sso_exp.pipeline import resume
from sso_exp.pipeline.resume import STATE_FILE, config_diff, open_progress

FOLDER_NAMED = resume.folder_named


@pytest.fixture(autouse=True)
def clock_named(monkeypatch):
    """The runs here stand for clock-named folders (compose_cfg names one on its command line)."""
    monkeypatch.setattr(resume, "folder_named", lambda: False)


def cfg_in(tmp_path, run: str, *overrides: str):
    cfg = compose_cfg(tmp_path, "model=tiny", *overrides)
    cfg.output_dir = str(tmp_path / "runs" / run)
    return cfg


def crashed_run(tmp_path, *overrides: str):
    """A run folder as a killed process leaves it: one stage done, lock released."""
    progress = open_progress(cfg_in(tmp_path, "a", *overrides))
    progress.run_id = "r1"
    progress.finish("iter_1/sample", {"pairs/kept": 3}, 0)
    progress.lock.close()
    return progress.run_dir


def test_config_diff_names_each_differing_key():
    assert config_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == [
        "b: 2 -> 3",
        "c: '<absent>' -> 4",
    ]


def test_a_new_run_starts_fresh_in_its_own_folder(tmp_path):
    progress = open_progress(cfg_in(tmp_path, "a"))
    assert not progress.resumed and progress.run_dir == tmp_path / "runs" / "a"
    saved = json.loads((progress.run_dir / STATE_FILE).read_text())
    assert saved["finished"] is False and saved["config"]["loss.name"] == "ipo"
    assert "output_dir" not in saved["config"]


def test_the_same_command_finds_the_unfinished_run(tmp_path):
    crashed = crashed_run(tmp_path)
    progress = open_progress(cfg_in(tmp_path, "b"))
    assert progress.run_dir == crashed and progress.run_id == "r1"
    assert progress.done("iter_1/sample") and not progress.done("iter_1/train")


def test_another_config_or_never_starts_fresh(tmp_path):
    crashed = crashed_run(tmp_path)
    assert open_progress(cfg_in(tmp_path, "b", "loss.beta=0.3")).run_dir != crashed
    assert open_progress(cfg_in(tmp_path, "c", "resume=never")).run_dir != crashed


def test_a_folder_held_by_a_live_run_is_not_taken_over(tmp_path):
    live = open_progress(cfg_in(tmp_path, "a"))
    assert open_progress(cfg_in(tmp_path, "b")).run_dir != live.run_dir


def test_a_busy_fixed_folder_is_named_by_its_key(tmp_path):
    live = open_progress(cfg_in(tmp_path, "a"))
    live.run_id = "r1"
    live.finish("iter_1/sample", {"pairs/kept": 3}, 0)  # a state, and the lock still held
    with pytest.raises(ConfigError, match="config key 'output_dir': .* in use by a running job"):
        open_progress(cfg_in(tmp_path, "a"))
    with pytest.raises(ConfigError, match="config key 'resume': .* in use by a running job"):
        open_progress(cfg_in(tmp_path, "b", f"resume={live.run_dir}"))


def test_a_finished_run_is_not_resumed(tmp_path):
    crashed = crashed_run(tmp_path)
    state = json.loads((crashed / STATE_FILE).read_text())
    (crashed / STATE_FILE).write_text(json.dumps({**state, "finished": True}))
    assert open_progress(cfg_in(tmp_path, "b")).run_dir != crashed


def test_resume_into_a_folder_of_another_config_is_refused_naming_the_keys(tmp_path):
    crashed = crashed_run(tmp_path)
    with pytest.raises(ConfigError) as err:
        open_progress(
            cfg_in(tmp_path, "b", f"resume={crashed}", "loss.beta=0.3", "schedule.seed=7")
        )
    assert "loss.beta: 0.1 -> 0.3" in str(err.value) and "schedule.seed: 42 -> 7" in str(err.value)
    assert json.loads((crashed / STATE_FILE).read_text())["run_id"] == "r1"  # untouched
    with pytest.raises(ConfigError, match="holds no resumable run"):
        open_progress(cfg_in(tmp_path, "b", f"resume={tmp_path}"))


def test_a_fixed_run_folder_with_another_config_is_refused(tmp_path):
    crashed_run(tmp_path)
    with pytest.raises(ConfigError, match="loss.beta: 0.1 -> 0.3"):
        open_progress(cfg_in(tmp_path, "a", "loss.beta=0.3"))


def test_a_finished_run_is_refused_in_its_own_folder_unless_never_says_afresh(tmp_path):
    crashed = crashed_run(tmp_path)
    state = json.loads((crashed / STATE_FILE).read_text())
    (crashed / STATE_FILE).write_text(json.dumps({**state, "finished": True}))
    with pytest.raises(ConfigError, match="config key 'resume'.*has finished"):
        open_progress(cfg_in(tmp_path, "b", f"resume={crashed}"))
    with pytest.raises(ConfigError, match="config key 'output_dir'.*overwrite"):
        open_progress(cfg_in(tmp_path, "a", "loss.beta=0.3"))
    assert json.loads((crashed / STATE_FILE).read_text())["finished"] is True  # untouched
    fresh = open_progress(cfg_in(tmp_path, "a", "resume=never"))
    assert fresh.run_dir == crashed and not fresh.resumed and not fresh.stages


@pytest.mark.parametrize(
    "text, says",
    [("\x00\x01garbage", "line 1: not JSON"), ('{"run_id": null, "stages": {}}', "step_offset")],
)
def test_a_damaged_state_file_stops_the_run_naming_it_and_changes_nothing(tmp_path, text, says):
    crashed = crashed_run(tmp_path)
    (crashed / STATE_FILE).write_text(text)
    with pytest.raises(DataError, match=f"{STATE_FILE}: .*{says}"):
        open_progress(cfg_in(tmp_path, "a"))
    assert (crashed / STATE_FILE).read_text() == text
    elsewhere = open_progress(cfg_in(tmp_path, "b"))  # passed over as a sibling
    assert elsewhere.run_dir != crashed and not elsewhere.resumed


def test_a_folder_is_named_by_hydra_run_dir_or_output_dir_on_the_command_line(tmp_path):
    from sso_exp.config import compose

    compose("model=tiny")
    assert not FOLDER_NAMED()
    compose("model=tiny", f"hydra.run.dir={tmp_path}")
    assert FOLDER_NAMED()
    compose_cfg(tmp_path, "model=tiny")  # names output_dir
    assert FOLDER_NAMED()


def test_a_folder_named_on_the_command_line_never_takes_over_a_sibling(tmp_path, monkeypatch):
    crashed = crashed_run(tmp_path)
    monkeypatch.setattr(resume, "folder_named", lambda: True)
    progress = open_progress(cfg_in(tmp_path, "copy"))
    assert progress.run_dir != crashed and not progress.resumed


def test_the_other_ranks_get_rank_0s_progress_without_the_lock_and_never_write(
    tmp_path, monkeypatch
):
    live = open_progress(cfg_in(tmp_path, "a"))
    live.finish("iter_1/sample", {"pairs/kept": 3}, 0)
    sent = pickle.loads(pickle.dumps(live))  # what the broadcast to the other ranks carries
    assert sent.done("iter_1/sample") and sent.lock is None and live.lock is not None
    monkeypatch.setattr(resume, "is_main", lambda: False)
    sent.finish("iter_1/train", {}, 5)  # only rank 0 writes the state
    assert "iter_1/train" not in json.loads((live.run_dir / STATE_FILE).read_text())["stages"]


def test_a_damaged_checkpoint_is_trained_again_from_where_its_stage_began(tmp_path, tiny):
    from sso_exp.models.loading import save_model
    from sso_exp.pipeline.online import verify_checkpoints

    progress = open_progress(cfg_in(tmp_path, "a"))
    for stage, offset in (("iter_1/sample", 0), ("iter_1/train", 4), ("iter_2/sample", 4)):
        progress.finish(stage, {}, offset)
    save_model(*tiny, progress.run_dir / "iter_1" / "policy")
    verify_checkpoints(progress)
    assert progress.done("iter_2/sample")  # intact: trusted
    weights = progress.run_dir / "iter_1" / "policy" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    verify_checkpoints(progress)
    assert list(progress.stages) == ["iter_1/sample"] and progress.step_offset == 0
    saved = json.loads((progress.run_dir / STATE_FILE).read_text())
    assert list(saved["stages"]) == ["iter_1/sample"] and saved["step_offset"] == 0
