"""Evaluation (`eval`, its judge in `eval/judge`) and reward models (`rm`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from ..errors import require, require_choice
from .model import ModelConfig

TASKS = ("signal", "human_pairs", "alpaca", "mt_bench", "gsm8k")
BENCHMARKS = ("signal", "alpaca", "mt_bench", "gsm8k")  # eval.tasks' default
ANNOTATORS = ("weighted", "pairwise")


@dataclass
class PolicyJudgeConfig:
    """The model under evaluation judges (greedy replies)."""

    _target_: str = "sso_exp.evaluation.judges.policy_judge"
    _partial_: bool = True
    max_new_tokens: int = 256
    batch_size: int = "${..batch_size}"  # type: ignore[assignment]


@dataclass
class OpenAIJudgeConfig:
    """An OpenAI-compatible chat-completions server, e.g. http://127.0.0.1:8000/v1."""

    _target_: str = "sso_exp.evaluation.judges.openai_judge"
    _partial_: bool = True
    base_url: str = MISSING
    model: str = MISSING
    api_key_env: Optional[str] = "OPENAI_API_KEY"  # the key is read from here, never logged
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_tokens: int = 512


@dataclass
class RewardJudgeConfig:
    """A trained Bradley-Terry reward model (pairs only: it cannot grade MT-Bench)."""

    _target_: str = "sso_exp.evaluation.judges.reward_judge"
    _partial_: bool = True
    checkpoint: Optional[str] = "${rm.checkpoint}"
    max_length: int = "${rm.max_length}"  # type: ignore[assignment]
    batch_size: int = "${..batch_size}"  # type: ignore[assignment]


JUDGES = {"policy": PolicyJudgeConfig, "openai": OpenAIJudgeConfig, "rm": RewardJudgeConfig}


@dataclass
class SignalTaskConfig:
    """SSO's own labels (y+ over y-) under the judge, asked as `eval.alpaca.annotator` says."""

    annotator: str = "weighted"

    def __post_init__(self) -> None:
        require_choice(self.annotator, ANNOTATORS, "eval.signal.annotator")


@dataclass
class HumanPairsTaskConfig:
    """The judge's own accuracy on held-out human-labelled pairs (HH-RLHF transcripts or
    prompt/chosen/rejected rows), asked exactly as signal accuracy asks it: how far to trust
    the judge that labels SSO's pairs."""

    path: Optional[str] = "hh_helpful_test.jsonl"
    limit: Optional[int] = 200
    annotator: str = "weighted"

    def __post_init__(self) -> None:
        require_choice(self.annotator, ANNOTATORS, "eval.human_pairs.annotator")


@dataclass
class AlpacaTaskConfig:
    """AlpacaEval 2.0 against its reference answers. The answer budget fits the benchmark:
    most GPT-4 Turbo references are longer than 1,100 characters, and a cut answer loses
    and distorts the length-controlled rate (`<task>/budget_hits` counts the cut ones)."""

    path: Optional[str] = "alpaca_eval_gpt4_turbo.jsonl"
    limit: Optional[int] = 20
    max_new_tokens: int = 2048
    # AlpacaEval's df_gamed.csv (instruction difficulty, gamed baselines), which its LC win
    # rate needs; None: alpaca/lc_win_rate_approx, our GLM without the difficulty term
    difficulty_file: Optional[str] = None
    # weighted: AlpacaEval 2.0's annotator (its prompt, one random order per item, the
    # preference from the verdict tokens' probabilities); pairwise: the MT-Bench prompt in
    # both orders. A reward-model judge compares scores either way.
    annotator: str = "weighted"

    def __post_init__(self) -> None:
        require_choice(self.annotator, ANNOTATORS, "eval.alpaca.annotator")


@dataclass
class MTBenchTaskConfig:
    """MT-Bench's questions, two turns each, as FastChat's `llm_judge` runs them: its answer
    budget, its answer temperature per category (0: greedy), its judge budget, and its judge
    prompts where its prompts file is given (ours otherwise)."""

    path: Optional[str] = "mt_bench_questions.jsonl"
    reference: Optional[str] = "mt_bench_reference_gpt4.jsonl"
    judge_prompts: Optional[str] = None  # a FastChat judge prompts file (docs/data.md)
    limit: Optional[int] = 10
    max_new_tokens: int = 1024
    judge_max_new_tokens: int = 2048
    temperatures: Dict[str, float] = field(
        default_factory=lambda: {
            "writing": 0.7,
            "roleplay": 0.7,
            "extraction": 0.0,
            "math": 0.0,
            "coding": 0.0,
            "reasoning": 0.0,
            "stem": 0.1,
            "humanities": 0.1,
        }
    )


@dataclass
class GSM8KTaskConfig:
    """GSM8K test questions; room for the reasoning before the final number."""

    path: Optional[str] = "gsm8k_test_1k.jsonl"
    limit: Optional[int] = 50
    max_new_tokens: int = 512


@dataclass
class EvalConfig:
    """docs/algorithm.md §7. File names are looked up as docs/data.md says. The answer
    budgets fit each benchmark on a GPU; the CPU demo in the README sets smaller ones."""

    tasks: List[str] = field(default_factory=lambda: list(BENCHMARKS))
    judge: Any = MISSING  # an option of eval/judge: policy | openai | rm
    # eval/judge_model=<model option>: a fixed local model judges (eval/judge=policy) in place
    # of the evaluated policy, so every iteration and every run meets the same judge
    judge_model: Optional[ModelConfig] = None
    every_iteration: bool = False  # online runs: evaluate after each iteration
    policy: Optional[str] = None  # mode=eval: a saved policy folder; None: the model config
    signal: SignalTaskConfig = field(default_factory=SignalTaskConfig)
    human_pairs: HumanPairsTaskConfig = field(default_factory=HumanPairsTaskConfig)
    alpaca: AlpacaTaskConfig = field(default_factory=AlpacaTaskConfig)
    mt_bench: MTBenchTaskConfig = field(default_factory=MTBenchTaskConfig)
    gsm8k: GSM8KTaskConfig = field(default_factory=GSM8KTaskConfig)
    batch_size: int = 8  # the policy's answers per `generate` call

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        require(not bad, "eval.tasks", f"unknown tasks {bad}; known: {', '.join(TASKS)}")
        for task in ("alpaca", "mt_bench", "gsm8k"):
            budget = getattr(self, task).max_new_tokens
            require(budget >= 1, f"eval.{task}.max_new_tokens", "must be >= 1")
        m = self.mt_bench
        require(m.judge_max_new_tokens >= 1, "eval.mt_bench.judge_max_new_tokens", "must be >= 1")
        for category, heat in m.temperatures.items():
            require(heat >= 0, f"eval.mt_bench.temperatures.{category}", "must be >= 0")


@dataclass
class RMConfig:
    """Bradley-Terry reward models (mode=rm, mode=rm_score, eval/judge=rm)."""

    sso: bool = True  # train on SSO pairs (data.pairs, or written by the generator/policy)
    mix: Optional[str] = None  # human pairs mixed in: HH transcripts or prompt/chosen/rejected
    mix_limit: Optional[int] = None
    eval: Optional[str] = None  # human-labelled pairs to evaluate on
    eval_limit: Optional[int] = None
    max_length: int = 512  # tokens per conversation; longer ones lose their start
    lr: float = 1e-5
    epochs: int = 1
    batch_size: int = 4
    checkpoint: Optional[str] = None  # a trained reward model folder
    score_input: Optional[str] = None  # mode=rm_score: JSONL of prompt/response rows

    def __post_init__(self) -> None:
        for key in ("max_length", "epochs", "batch_size"):
            require(getattr(self, key) >= 1, f"rm.{key}", "must be >= 1")
