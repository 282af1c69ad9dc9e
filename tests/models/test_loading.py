"""Model loading: offline only, clear errors, safetensors round trip."""

import pytest
import torch

from conftest import compose_cfg
from sso_exp.errors import DataError
from sso_exp.models.loading import (
    ModelNotAvailable,
    check_available,
    load_checkpoint,
    load_policy,
    own_memory,
    save_model,
)


@pytest.mark.parametrize(
    "model,hub_id",
    [("qwen2", "Qwen/Qwen2-7B-Instruct"), ("llama3", "meta-llama/Llama-3.1-8B-Instruct")],
)
def test_unavailable_models_say_how_to_point_at_a_copy(tmp_path, monkeypatch, model, hub_id):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = compose_cfg(tmp_path, f"model={model}")
    with pytest.raises(ModelNotAvailable, match=f"{hub_id}.*not available offline.*model.path="):
        check_available(cfg.model)


def test_local_folder_is_a_model(tmp_path, tiny):
    model, tok = tiny
    save_model(model, tok, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    cfg = compose_cfg(
        tmp_path, "model=qwen2", f"model.path={tmp_path / 'ckpt'}", "model.dtype=float32"
    )
    check_available(cfg.model)
    again, tok2 = load_checkpoint(tmp_path / "ckpt", cfg.model)
    assert tok2.chat_template == tok.chat_template
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def _in_file_map(t: torch.Tensor, name: str) -> bool:
    """The tensor's memory lies in a mapping of a file called `name` (Linux)."""
    for line in open("/proc/self/maps"):
        span, *rest = line.split()
        lo, hi = (int(x, 16) for x in span.split("-"))
        if rest[-1].endswith(name) and lo <= t.data_ptr() < hi:
            return True
    return False


def test_own_memory_takes_the_weights_off_their_file_and_keeps_them(tmp_path, tiny):
    """A loaded checkpoint's weights map its file (an optimizer's first step would fault in
    every page); after own_memory the trainable ones are the process's, equal, and still
    tied, and frozen ones stay mapped."""
    model, tok = tiny
    save_model(model, tok, tmp_path / "ckpt")
    cfg = compose_cfg(tmp_path, "model=tiny", "model.dtype=float32")
    again, _ = load_checkpoint(tmp_path / "ckpt", cfg.model)
    weight = again.model.layers[0].mlp.up_proj.weight
    frozen = again.model.layers[1].mlp.up_proj.weight.requires_grad_(False)
    assert _in_file_map(weight, "model.safetensors")
    own_memory(again)
    assert not _in_file_map(weight, "model.safetensors")
    assert _in_file_map(frozen, "model.safetensors")  # only read: no copy needed
    assert again.lm_head.weight is again.model.embed_tokens.weight
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_a_saved_folder_is_replaced_whole_and_a_damaged_one_is_named(tmp_path, tiny):
    model, tok = tiny
    save_model(model, tok, tmp_path / "ckpt")
    save_model(model, tok, tmp_path / "ckpt")  # over an existing one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary left
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    cfg = compose_cfg(tmp_path, "model=tiny")
    with pytest.raises(DataError, match="model.safetensors: damaged"):
        load_checkpoint(tmp_path / "ckpt", cfg.model)
    weights.unlink()
    with pytest.raises(DataError, match="ckpt: no \\*.safetensors weights"):
        load_checkpoint(tmp_path / "ckpt", cfg.model)


def test_attention_kernel_comes_from_the_config(tmp_path, tiny):
    model, tok = tiny
    save_model(model, tok, tmp_path / "ckpt")
    for kernel in ("eager", "sdpa"):
        cfg = compose_cfg(tmp_path, "model=tiny", f"model.attn_implementation={kernel}")
        assert load_policy(cfg.model)[0].config._attn_implementation == kernel
        assert (
            load_checkpoint(tmp_path / "ckpt", cfg.model)[0].config._attn_implementation == kernel
        )


def test_missing_package_is_named(tmp_path):
    cfg = compose_cfg(tmp_path, "model.package=not_a_package")
    with pytest.raises(ModelNotAvailable, match="not_a_package"):
        check_available(cfg.model)


def test_tiny_is_a_small_llama_with_the_smollm2_tokenizer(tiny):
    model, tok = tiny
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert tok.eos_token == "<|im_end|>" and model.config.vocab_size == len(tok)


def test_a_full_disk_while_saving_names_the_file_and_leaves_nothing_half_written(
    tmp_path, tiny, monkeypatch
):
    from safetensors import SafetensorError

    from sso_exp.errors import refused_write

    model, tok = tiny
    full = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'  # noqa: E501

    def no_room(*args, **kwargs):
        raise SafetensorError(full)

    monkeypatch.setattr(model, "save_pretrained", no_room)
    with pytest.raises(OSError) as err:
        save_model(model, tok, tmp_path / "iter_1" / "policy")
    assert err.value.errno == 28 and err.value.filename.endswith("iter_1/policy/model.safetensors")
    assert "No space left" in str(refused_write(err.value))
    assert list((tmp_path / "iter_1").iterdir()) == []  # no .policy-* left
