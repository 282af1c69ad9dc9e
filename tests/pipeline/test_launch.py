"""What the machine cannot run stops the run at start-up, before any work, naming the key:
a GPU strategy on a CPU machine, Lightning's FSDP1, more CPU ranks than cores."""

import os

import pytest
import torch

from conftest import compose_cfg, run_cli, tracked_runs
from sso_exp.errors import ConfigError
from sso_exp.pipeline.launch import start_ranks


@pytest.mark.parametrize(
    "overrides, key",
    [
        (("trainer=gpu",), "trainer.accelerator"),
        (("trainer=fsdp", "trainer.accelerator=gpu"), "trainer.accelerator"),
        (("trainer=deepspeed",), "trainer.accelerator"),
        (("trainer.strategy=fsdp",), "trainer.strategy"),
        (("trainer=ddp", f"trainer.devices={4 * (os.cpu_count() or 1)}"), "trainer.devices"),
    ],
)
def test_what_the_machine_cannot_run_names_its_key(tmp_path, overrides, key):
    if key == "trainer.accelerator" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=key):
        start_ranks(compose_cfg(tmp_path, "model=tiny", *overrides), sweeping=False)


def test_one_process_starts_no_ranks(tmp_path):
    cfg = compose_cfg(tmp_path, "model=tiny")
    assert start_ranks(cfg, sweeping=False).output_dir == cfg.output_dir


def test_lightnings_fsdp1_exits_2_before_any_work(tmp_path):
    proc = run_cli(tmp_path, "model=tiny", "trainer.strategy=fsdp")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "config key 'trainer.strategy'" in text
    assert "Traceback" not in text
    assert not tracked_runs(tmp_path) and not (tmp_path / "run/iter_1").exists()
