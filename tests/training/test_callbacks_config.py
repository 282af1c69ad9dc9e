"""The Trainer's callbacks are the ones the config names (built by Hydra), plus those the run
needs: fresh autocast casts always, a trimmed heap unless its thresholds are set, fp32
master weights for bf16-true."""

from pytorch_lightning.callbacks import LearningRateMonitor, TQDMProgressBar

from conftest import compose_cfg
from sso_exp.training.callbacks import FreshCasts, MasterWeights, TrimmedHeap
from sso_exp.training.fit import callbacks


def kinds(tmp_path, *overrides):
    return {type(c) for c in callbacks(compose_cfg(tmp_path, *overrides).trainer)}


def test_default_callbacks(tmp_path):
    assert kinds(tmp_path) == {TQDMProgressBar, FreshCasts, TrimmedHeap}


def test_a_heap_kept_for_speed_is_not_trimmed(tmp_path):
    assert TrimmedHeap not in kinds(tmp_path, "trainer=fast")


def test_a_named_callback_is_added_and_one_dropped(tmp_path):
    got = kinds(
        tmp_path,
        "+trainer.callbacks.lr={_target_:pytorch_lightning.callbacks.LearningRateMonitor}",
        "trainer.callbacks.progress_bar=null",
        "trainer.precision=bf16-true",
    )
    assert got == {LearningRateMonitor, FreshCasts, TrimmedHeap, MasterWeights}
