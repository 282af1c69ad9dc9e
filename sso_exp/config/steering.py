"""How the writer model steers itself: principles (`principle`), sampling (`generation`)
and which triples become pairs (`filter`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from ..errors import require, require_choice


@dataclass
class FeatureConfig:
    name: str = MISSING  # how the prompts and the policy's answers name the feature
    good: str = MISSING  # its good side as an adjective: p+ opens "Your response should be ..."
    bad: str = MISSING  # its bad side as an adjective, in p-
    meaning: str = MISSING  # what it means, in the menu the policy picks features from
    good_principle: str = MISSING  # the predefined principle of p+
    bad_principle: str = MISSING  # the predefined principle of p-, mirroring the good one


@dataclass
class IdentifyExample:
    query: str = MISSING  # a few-shot query
    features: List[str] = MISSING  # the feature names its answer gives


@dataclass
class PrincipleExample:
    query: str = MISSING  # a few-shot query
    feature: str = MISSING  # the feature its principles are about
    good_principle: str = MISSING  # the good principle its answer gives
    bad_principle: str = MISSING  # the bad principle its answer gives


@dataclass
class ConstraintConfig:
    """One side of a verifiable feature: an instruction of IFEval's registry, checked by the
    checker lm-evaluation-harness ships for it."""

    id: str = MISSING  # an instruction id of IFEval's registry, e.g. punctuation:no_comma
    # its arguments (all of them); a value "$name" is the family's argument drawn per query
    kwargs: Dict[str, Any] = field(default_factory=dict)
    negate: bool = False  # holds where the checker says the instruction is not followed
    # the principle's text, "{name}" filled with the drawn arguments; None: the checker's own
    # description (a negated checker needs a text: IFEval describes only the instruction)
    text: Optional[str] = None


@dataclass
class VerifiableFamilyConfig:
    """A verifiable feature: a good constraint and a bad one no response can satisfy both."""

    name: str = MISSING  # the feature's name in p+/p-, in the records and in the metrics
    good: str = MISSING  # its good side as an adjective: p+ opens "Your response should be ..."
    bad: str = MISSING  # its bad side as an adjective, in p-
    # the arguments drawn per query from its random stream: name -> a list to choose from,
    # {low, high} (an integer in [low, high]) or {sample: k, from: [...]} (k distinct items)
    draw: Dict[str, Any] = field(default_factory=dict)
    good_constraint: ConstraintConfig = field(default_factory=ConstraintConfig)  # p+ asks it
    bad_constraint: ConstraintConfig = field(default_factory=ConstraintConfig)  # p- asks it


@dataclass
class PrincipleConfig:
    """docs/algorithm.md §1. The texts (features, examples, secrecy) are the options'."""

    num_features: int = 2  # features picked per query, from all but `concision_feature`
    concision_prob: float = 0.2  # chance that a query's features get `concision_feature` too
    concision_feature: str = "Concision"  # added only at random, never picked by the policy
    secrecy: str = MISSING  # the closing line of p+ and p-: keep the principles to itself
    features: List[FeatureConfig] = MISSING  # the features, each a mirrored good/bad pair
    identify_examples: List[IdentifyExample] = MISSING  # few-shot examples of picking features
    identify_max_new_tokens: int = 24  # the comma-separated answer naming the features
    generate: bool = False  # the policy writes query-specific principles
    generate_examples: List[PrincipleExample] = field(default_factory=list)  # its few-shots
    generate_max_new_tokens: int = 200  # token budget of one written pair (a JSON answer)
    # principle=verifiable: features whose principles a program checks (IFEval's
    # instructions); `num_features` of them are drawn per query from its random stream, in
    # place of the policy's feature identification
    verifiable: List[VerifiableFamilyConfig] = field(default_factory=list)

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
        self.check_verifiable()
        require(
            not self.generate or bool(self.generate_examples),
            "principle.generate_examples",
            "principle.generate needs few-shot examples",
        )

    def check_verifiable(self) -> None:
        """The families' shape; their instruction ids and arguments are checked against
        IFEval's registry at start-up (steering/verifiable.py)."""
        if not self.verifiable:
            return
        names = [f.name for f in self.verifiable]
        require(len(set(names)) == len(names), "principle.verifiable", "duplicate family names")
        require(
            1 <= self.num_features <= len(names),
            "principle.num_features",
            f"must be in [1, {len(names)}] (the verifiable families)",
        )
        require(
            not self.generate,
            "principle.generate",
            "verifiable principles are the checker's instructions; the policy cannot write them",
        )
        require(
            self.concision_prob == 0,
            "principle.concision_prob",
            "must be 0 with verifiable principles (Concision is not verifiable)",
        )


@dataclass
class GenerationConfig:
    """Sampling (docs/algorithm.md §2): HF `generate` anywhere, or vLLM on GPU machines
    (imported only when chosen; the policy's weights are pushed into it before every
    sampling stage). `backend` is the option chosen in the `generation` group."""

    backend: str = "${hydra:runtime.choices.generation}"  # the `generation` option chosen
    temperature: float = 0.7  # sampling temperature
    top_p: float = 0.8  # nucleus sampling: the smallest set of tokens with this probability
    max_new_tokens: int = 128  # y+, y-, y0
    batch_size: int = 48  # prompts per `generate` call (48 beat 24 on a CPU: bench_generate)
    nucleus_candidates: int = 256  # hf: top tokens searched for the nucleus first (exact)
    vllm_gpu_memory_utilization: float = 0.4  # vllm: share of the GPU's memory it may take
    vllm_dtype: str = "bfloat16"  # vllm: the engine's weight dtype
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

    name: str = "${hydra:runtime.choices.filter}"  # the `filter` option chosen
    min_chars: int = 8  # a triple with an answer shorter than this (characters) is dropped

    def __post_init__(self) -> None:
        require_choice(self.name, ("string", "logprob"), "filter.name")
