"""`trainer.precision=auto` and `trainer.compile=auto` resolved against the machine: bf16
weights and compiled layers where bf16 matmuls are fast (a CPU with AMX or AVX-512 bf16, a
GPU with bf16) and a compiler is present, else float32 uncompiled, which is faster where bf16
is emulated (an AVX2-only CPU runs bf16 matmuls below its float32 speed). Compiling costs
its time once per process, so auto compiles only a run that plans enough training
micro-batches to win it back.
`SSO_EXP_AUTO=off` makes auto mean 32-true uncompiled on any machine (the test suite sets it,
so its numbers and times do not depend on the machine it lands on)."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
from typing import Tuple

from .training import TrainerConfig

log = logging.getLogger(__name__)

# Compiling the decoder layers costs its time once per process (tens of seconds on a CPU
# with a cold cache) and each bf16 micro-batch wins some of it back: the default main job's
# 8 ran slower compiled than not (scripts/measure_main_job.py); it pays from about 20.
COMPILE_PAYS_FROM = 20


def on_gpu(trainer_cfg: TrainerConfig) -> bool:
    import torch  # here, not at the top: a config that fails to compose exits in a second

    return trainer_cfg.accelerator in ("gpu", "cuda") or (
        trainer_cfg.accelerator == "auto" and torch.cuda.is_available()
    )


def fast_bf16(trainer_cfg: TrainerConfig) -> Tuple[bool, str]:
    """Whether bf16 matmuls run natively where training runs, and what says so."""
    import torch

    if on_gpu(trainer_cfg):
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "GPU with bf16" if ok else "GPU without bf16"
    cpu = torch.cpu
    amx = getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    if not (amx or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()):
        return False, "CPU without AMX or AVX-512 bf16: bf16 is emulated, float32 is faster"
    units = "AMX" if amx else "AVX-512 bf16"
    capped = kernels_capped()
    if capped:  # the units exist, but the kernels may not use them (an AVX2 machine's path)
        return False, f"CPU with {units}, but {capped}: bf16 is emulated, float32 is faster"
    return True, f"CPU with {units}"


def kernels_capped() -> str:
    """What keeps torch's or oneDNN's kernels below the bf16 instructions, if anything:
    ATEN_CPU_CAPABILITY (torch's vector ISA, below AVX-512) or ONEDNN_MAX_CPU_ISA (oneDNN's
    matmuls, below AVX512_CORE_BF16), as when an AVX2-only machine's path is reproduced."""
    import torch

    aten = torch.backends.cpu.get_cpu_capability()
    if not aten.startswith("AVX512"):
        return f"torch's CPU kernels are {aten}"
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if not any(part in onednn for part in ("BF16", "FP16", "AMX", "AVX10", "ALL", "DEFAULT")):
        return f"ONEDNN_MAX_CPU_ISA={onednn}"
    return ""


def has_compiler(trainer_cfg: TrainerConfig) -> bool:
    """torch.compile's backend can build kernels: Triton on a GPU, a C++ compiler on a CPU."""
    if on_gpu(trainer_cfg):
        return importlib.util.find_spec("triton") is not None
    names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    return any(n and shutil.which(n) for n in names)


def resolve(trainer_cfg: TrainerConfig, micro_batches: int = COMPILE_PAYS_FROM) -> TrainerConfig:
    """The trainer config with `auto` precision, compile and attention decided, logged.
    Several processes get bf16-mixed (bf16-true keeps fp32 master copies in one process);
    `micro_batches` is what the run plans to train in this process."""
    if "auto" not in (trainer_cfg.precision, trainer_cfg.compile, trainer_cfg.attention):
        return trainer_cfg
    fast, why = fast_bf16(trainer_cfg)
    compiler = has_compiler(trainer_cfg)
    one = trainer_cfg.one_process
    if os.environ.get("SSO_EXP_AUTO") == "off":
        fast, why = False, "SSO_EXP_AUTO=off"
    precision = trainer_cfg.precision
    if precision == "auto":
        precision = ("bf16-true" if one else "bf16-mixed") if fast and compiler else "32-true"
    compile_ = trainer_cfg.compile
    if compile_ == "auto":
        compile_ = fast and compiler and one and micro_batches >= COMPILE_PAYS_FROM
    attention = trainer_cfg.attention
    if attention == "auto":  # inductor's eager attention beats sdpa's masked CPU kernel
        attention = "eager" if compile_ is True and not on_gpu(trainer_cfg) else "model"
    log.info(
        "trainer.precision=%s, trainer.compile=%s, trainer.attention=%s "
        "(%s, %s, %d planned micro-batches)",
        precision,
        compile_,
        attention,
        why,
        "compiler found" if compiler else "no compiler",
        micro_batches,
    )
    chosen = dict(precision=precision, compile=compile_, attention=attention)
    return dataclasses.replace(trainer_cfg, **chosen)
