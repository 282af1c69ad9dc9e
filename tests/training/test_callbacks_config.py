"""The Trainer's callbacks are the ones the config names (built by Hydra), plus those the run
needs: fresh autocast casts, freed gradients and the stop on a non-finite gradient always,
a trimmed heap unless its thresholds are set, fp32 master weights for bf16-true, another
attention kernel for training when asked."""

from pytorch_lightning.callbacks import LearningRateMonitor, TQDMProgressBar

from conftest import compose_cfg
from sso_exp.training.callbacks import (
    FiniteTraining,
    FreedGradients,
    FreshCasts,
    MasterWeights,
    TrainingAttention,
    TrimmedHeap,
)
from sso_exp.training.fit import callbacks

ALWAYS = {FreshCasts, FreedGradients, FiniteTraining}


def kinds(tmp_path, *overrides):
    return {type(c) for c in callbacks(compose_cfg(tmp_path, *overrides).trainer)}


def test_default_callbacks(tmp_path):
    assert kinds(tmp_path) == {TQDMProgressBar, TrimmedHeap, *ALWAYS}


def test_a_heap_kept_for_speed_is_not_trimmed(tmp_path):
    assert TrimmedHeap not in kinds(tmp_path, "trainer=fast")


def test_a_named_callback_is_added_and_one_dropped(tmp_path):
    got = kinds(
        tmp_path,
        "+trainer.callbacks.lr={_target_:pytorch_lightning.callbacks.LearningRateMonitor}",
        "trainer.callbacks.progress_bar=null",
        "trainer.precision=bf16-true",
    )
    assert got == {LearningRateMonitor, TrimmedHeap, MasterWeights, *ALWAYS}


def test_another_attention_kernel_for_training_only_when_asked(tmp_path):
    assert TrainingAttention in kinds(tmp_path, "trainer.attention=eager")
    assert TrainingAttention not in kinds(tmp_path, "trainer.attention=model")
