"""oneDNN's kernel cache is capped before any work unless left to oneDNN; the machine is
described by its CPU's model and bf16 units."""

import torch

from sso_exp.config import TrainerConfig
from sso_exp.runtime import host


def test_the_onednn_kernel_cache_is_capped_unless_left_to_onednn(monkeypatch):
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "1024")  # restored after the test
    host.limit_onednn_cache(TrainerConfig(onednn_primitive_cache=None))
    assert host.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "1024"
    host.limit_onednn_cache(TrainerConfig(onednn_primitive_cache=64))
    assert host.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


def test_the_machine_names_its_cores_and_bf16_units():
    text = host.describe_machine()
    assert f"{host.os.cpu_count()} cores" in text
    assert "AMX" in text and "AVX-512 bf16" in text  # present or "no ..."
    assert f"{torch.backends.cpu.get_cpu_capability()} kernels" in text
