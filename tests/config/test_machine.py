"""`auto` precision and compile follow the machine: bf16 weights and compiled layers only
where bf16 matmuls are native (and the kernels may use them) and a compiler exists,
bf16-mixed across processes, and SSO_EXP_AUTO=off pins float32."""

import pytest
import torch

from sso_exp.config import TrainerConfig, machine


@pytest.fixture
def cpu(monkeypatch):
    """A CPU whose bf16 units and compiler the test chooses."""

    def make(amx: bool, compiler: bool, kernels: str = "AVX512"):
        monkeypatch.delenv("SSO_EXP_AUTO", raising=False)
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: kernels)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        monkeypatch.setattr(machine.shutil, "which", lambda name: compiler and "/usr/bin/cc")

    return make


@pytest.mark.parametrize(
    "amx, compiler, devices, want",
    [
        (True, True, 1, ("bf16-true", True)),
        (True, True, 2, ("bf16-mixed", False)),
        (True, False, 1, ("32-true", False)),
        (False, True, 1, ("32-true", False)),
    ],
)
def test_auto_picks_bf16_and_compile_only_where_both_are_fast(cpu, amx, compiler, devices, want):
    cpu(amx, compiler)
    t = machine.resolve(TrainerConfig(devices=devices))
    assert (t.precision, t.compile) == want


def test_auto_compiles_only_a_run_long_enough_to_win_the_compile_time_back(cpu):
    cpu(True, True)
    short = machine.resolve(TrainerConfig(), machine.COMPILE_PAYS_FROM - 1)
    long = machine.resolve(TrainerConfig(), machine.COMPILE_PAYS_FROM)
    assert (short.precision, short.compile) == ("bf16-true", False)
    assert (long.precision, long.compile) == ("bf16-true", True)


def test_auto_gives_fsdp_bf16_mixed_even_on_one_device(cpu):
    """bf16-true's float32 masters are kept for whole weights, not for an FSDP copy's shards."""
    cpu(True, True)
    fsdp = {"_target_": "pytorch_lightning.strategies.ModelParallelStrategy"}
    t = machine.resolve(TrainerConfig(strategy=fsdp))
    assert (t.precision, t.compile) == ("bf16-mixed", False)


def test_auto_attention_is_eager_only_for_layers_compiled_on_a_cpu(cpu):
    """Inductor fuses eager attention's matmuls and softmax; uncompiled, and on GPUs, the
    model's own kernel (sdpa) is the faster one."""
    cpu(True, True)
    assert machine.resolve(TrainerConfig(compile=True)).attention == "eager"
    assert machine.resolve(TrainerConfig(compile=False)).attention == "model"
    assert machine.resolve(TrainerConfig(devices=2)).attention == "model"  # not compiled
    assert machine.resolve(TrainerConfig(compile=True, attention="sdpa")).attention == "sdpa"


def test_explicit_choices_are_kept_and_the_switch_pins_float32(cpu, monkeypatch):
    cpu(True, True)
    t = machine.resolve(TrainerConfig(precision="bf16-mixed", compile=False))
    assert (t.precision, t.compile) == ("bf16-mixed", False)
    monkeypatch.setenv("SSO_EXP_AUTO", "off")
    t = machine.resolve(TrainerConfig())
    assert (t.precision, t.compile) == ("32-true", False)


@pytest.mark.parametrize(
    "kernels, onednn, says",
    [
        ("AVX2", None, "torch's CPU kernels are AVX2"),
        ("AVX512", "AVX2", "ONEDNN_MAX_CPU_ISA=AVX2"),
    ],
)
def test_bf16_units_the_kernels_may_not_use_mean_float32_and_the_line_says_why(
    cpu, monkeypatch, caplog, kernels, onednn, says
):
    """An AVX2-only machine's path reproduced on one with AMX (ATEN_CPU_CAPABILITY=avx2,
    ONEDNN_MAX_CPU_ISA=AVX2) is the AVX2 machine's choice, and the start-up line says so."""
    cpu(True, True, kernels)
    if onednn:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn)
    with caplog.at_level("INFO", logger=machine.log.name):
        t = machine.resolve(TrainerConfig())
    assert (t.precision, t.compile) == ("32-true", False)
    assert says in caplog.text and "float32 is faster" in caplog.text
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert machine.resolve(TrainerConfig()).precision == (
        "bf16-true" if kernels == "AVX512" else "32-true"
    )
