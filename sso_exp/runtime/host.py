"""The host's libraries and CPU: the one process setting the matmul library needs before
any work (oneDNN's kernel cache), and the machine as benchmarks and pins name it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from ..config import TrainerConfig


def limit_onednn_cache(trainer_cfg: TrainerConfig) -> None:
    """oneDNN (torch's CPU matmuls) keeps a compiled kernel for every shape it meets, up to
    its cache's capacity; sampling, scoring and training meet a new sequence length with
    nearly every batch, so the default 1,024 kernels keep growing the process through a
    job. Read once, at the first kernel: the entry point sets it before any work."""
    if trainer_cfg.onednn_primitive_cache is not None:
        os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(trainer_cfg.onednn_primitive_cache)


def describe_machine() -> str:
    """The CPU model, cores, the vector ISA torch's kernels use (ATEN_CPU_CAPABILITY can
    lower it) and the bf16 units, as benchmarks and pins print them beside their figures."""
    import torch

    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
    except OSError:
        pass
    amx = "AMX" if "amx_bf16" in flags.split() else "no AMX"
    avx512 = "AVX-512 bf16" if "avx512_bf16" in flags.split() else "no AVX-512 bf16"
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{model}, {os.cpu_count()} cores, {isa} kernels, {amx}, {avx512}"


def offline_hub() -> None:
    """The hub is never asked at run time (lm-evaluation-harness loads its tasks' data and
    metrics through `datasets` and `evaluate`): they read only what is on disk."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
