"""How the writer model steers itself: principles (`principle`), sampling (`generation`)
and which triples become pairs (`filter`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from omegaconf import MISSING

from ..errors import require, require_choice


@dataclass
class FeatureConfig:
    name: str = MISSING
    good: str = MISSING
    bad: str = MISSING
    meaning: str = MISSING
    good_principle: str = MISSING
    bad_principle: str = MISSING


@dataclass
class IdentifyExample:
    query: str = MISSING
    features: List[str] = MISSING


@dataclass
class PrincipleExample:
    query: str = MISSING
    feature: str = MISSING
    good_principle: str = MISSING
    bad_principle: str = MISSING


@dataclass
class PrincipleConfig:
    """docs/algorithm.md §1. The texts (features, examples, secrecy) are the options'."""

    num_features: int = 2
    concision_prob: float = 0.2
    concision_feature: str = "Concision"
    secrecy: str = MISSING
    features: List[FeatureConfig] = MISSING
    identify_examples: List[IdentifyExample] = MISSING
    identify_max_new_tokens: int = 24  # the comma-separated answer naming the features
    generate: bool = False  # the policy writes query-specific principles
    generate_examples: List[PrincipleExample] = field(default_factory=list)
    generate_max_new_tokens: int = 200

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        require(len(set(names)) == len(names), "principle.features", "duplicate feature names")
        require(
            self.concision_feature in names,
            "principle.concision_feature",
            f"'{self.concision_feature}' is not among the features {names}",
        )
        require(
            1 <= self.num_features < len(names),
            "principle.num_features",
            f"must be in [1, {len(names) - 1}]",
        )
        require(0.0 <= self.concision_prob <= 1.0, "principle.concision_prob", "must be in [0, 1]")
        for ex in self.identify_examples:
            bad = [n for n in ex.features if n not in names]
            require(not bad, "principle.identify_examples", f"unknown features {bad}")
        require(
            not self.generate or bool(self.generate_examples),
            "principle.generate_examples",
            "principle.generate needs few-shot examples",
        )


@dataclass
class GenerationConfig:
    """Sampling (docs/algorithm.md §2): HF `generate` anywhere, or vLLM on GPU machines
    (imported only when chosen; the policy's weights are pushed into it before every
    sampling stage). `backend` is the option chosen in the `generation` group."""

    backend: str = "${hydra:runtime.choices.generation}"
    temperature: float = 0.7
    top_p: float = 0.8
    max_new_tokens: int = 128  # y+, y-, y0
    batch_size: int = 48  # prompts per `generate` call: 48 decodes ~19% faster than 24 (CPU)
    nucleus_candidates: int = 256  # hf: top tokens searched for the nucleus first (exact)
    vllm_gpu_memory_utilization: float = 0.4
    vllm_dtype: str = "bfloat16"
    # vLLM's sleep mode while training runs: 1 frees the KV cache and moves the engine's
    # weights to CPU memory, 0 keeps the engine awake
    vllm_sleep_level: int = 1

    def __post_init__(self) -> None:
        require_choice(self.backend, ("hf", "vllm"), "generation.backend")
        for key in ("max_new_tokens", "batch_size", "nucleus_candidates"):
            require(getattr(self, key) >= 1, f"generation.{key}", "must be >= 1")
        require(self.temperature > 0, "generation.temperature", "must be > 0 (sampling)")
        require(0 < self.top_p <= 1, "generation.top_p", "must be in (0, 1]")
        require(self.vllm_sleep_level in (0, 1), "generation.vllm_sleep_level", "must be 0 or 1")


@dataclass
class FilterConfig:
    """docs/algorithm.md §3. `name` is the option chosen: string, or logprob (the string
    filter, then the log-prob filter)."""

    name: str = "${hydra:runtime.choices.filter}"
    min_chars: int = 8

    def __post_init__(self) -> None:
        require_choice(self.name, ("string", "logprob"), "filter.name")
