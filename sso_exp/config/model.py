"""Which model to load and how (the `model` and `generator` groups)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from ..errors import require


@dataclass
class LoraSettings:
    """LoRA through peft: the reference is the base with adapters off (no second copy), and
    the adapters are merged into the weights at the end of every training run."""

    enabled: bool = False  # train LoRA adapters in place of every weight
    r: int = 16  # the adapters' rank
    alpha: int = 32  # the adapters' scale numerator: updates are scaled by alpha / r
    dropout: float = 0.05  # dropout on the adapters' input
    target_modules: List[str] = field(  # the layers that get adapters, by module name
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )

    def __post_init__(self) -> None:
        require(self.r >= 1, "model.lora.r", "must be >= 1")
        require(0 <= self.dropout < 1, "model.lora.dropout", "must be in [0, 1)")


@dataclass
class ModelConfig:
    # gguf: a GGUF file inside an installed Python package; pretrained: hub id or local
    # folder (never downloaded); tiny: a random Llama built from `arch`
    source: str = MISSING
    path: Optional[str] = None  # pretrained only: a hub id (in the local HF cache) or a folder
    # gguf and tiny: the installed Python package holding the GGUF file (tiny: its tokenizer)
    package: Optional[str] = None
    gguf_file: Optional[str] = None  # gguf and tiny: the GGUF file's name inside `package`
    arch: Dict[str, Any] = field(default_factory=dict)  # tiny: LlamaConfig settings (sizes)
    dtype: str = "float32"  # the weights' dtype as loaded
    # HF's attention kernel: sdpa | eager (fastest compiled on CPU for short sequences,
    # memory quadratic in length) | flash_attention_2 (GPU)
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False  # let transformers run code shipped with the model folder
    cache_dir: str = "${oc.env:SSO_EXP_CACHE,${oc.env:HOME}/.cache/sso-exp}"  # converted GGUF
    lora: LoraSettings = field(default_factory=LoraSettings)  # LoRA adapters (off by default)

    def __post_init__(self) -> None:
        require(
            self.source in ("gguf", "pretrained", "tiny"),
            "model.source",
            f"'{self.source}' is not one of gguf, pretrained, tiny",
        )
        require(
            self.dtype in ("float32", "bfloat16", "float16"),
            "model.dtype",
            f"'{self.dtype}' is not one of float32, bfloat16, float16",
        )
        require(
            self.path is None or self.source == "pretrained",
            "model.path",
            f"a {self.source} model does not read a path (it would be ignored); a saved or hub "
            "model is source=pretrained: model=qwen2|llama3 model.path=..., or "
            "model.source=pretrained",
        )

    @property
    def label(self) -> str:
        """How messages name the model: its folder, hub id or packaged file."""
        return self.path or f"{self.package}/{self.gguf_file}"
