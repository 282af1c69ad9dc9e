"""Evaluation (`eval`, its judge in `eval/judge`) and reward models (`rm`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from ..errors import require, require_choice
from .model import ModelConfig

TASKS = (
    "signal",
    "human_pairs",
    "alpaca",
    "mt_bench",
    "gsm8k",
    "math500",
    "mmlu_pro",
    "gpqa",
    "ifeval",
)
BENCHMARKS = ("signal", "alpaca", "mt_bench", "gsm8k")  # eval.tasks' default
ANNOTATORS = ("weighted", "pairwise")
SCHEDULES = ("every", "ends")


@dataclass
class PolicyJudgeConfig:
    """The model under evaluation judges (greedy replies)."""

    _target_: str = "sso_exp.evaluation.judges.policy_judge"  # the function that builds the judge
    _partial_: bool = True  # Hydra builds a partial, completed with the model to judge with
    max_new_tokens: int = 256  # reply budget where the task sets none
    # conversations per `generate` call: eval.batch_size
    batch_size: int = "${..batch_size}"  # type: ignore[assignment]


@dataclass
class OpenAIJudgeConfig:
    """An OpenAI-compatible chat-completions server, e.g. http://127.0.0.1:8000/v1."""

    _target_: str = "sso_exp.evaluation.judges.openai_judge"  # the function that builds the judge
    _partial_: bool = True  # Hydra builds a partial, completed with the model to judge with
    base_url: str = MISSING  # the API root, e.g. http://127.0.0.1:8000/v1
    model: str = MISSING  # the model name each request asks for
    api_key_env: Optional[str] = "OPENAI_API_KEY"  # the key is read from here, never logged
    timeout_s: float = 60.0  # seconds each request may take
    max_retries: int = 5  # retries of a transient failure (timeouts, 429, 5xx)
    backoff_s: float = 1.0  # the first wait before a retry, doubled for each next one
    max_tokens: int = 512  # reply budget where the task sets none


@dataclass
class RewardJudgeConfig:
    """A trained Bradley-Terry reward model (pairs only: it cannot grade MT-Bench)."""

    _target_: str = "sso_exp.evaluation.judges.reward_judge"  # the function that builds the judge
    _partial_: bool = True  # Hydra builds a partial, completed with the model to judge with
    checkpoint: Optional[str] = "${rm.checkpoint}"  # the trained reward model's folder
    # tokens per conversation; longer ones lose their start
    max_length: int = "${rm.max_length}"  # type: ignore[assignment]
    # conversations per forward pass: eval.batch_size
    batch_size: int = "${..batch_size}"  # type: ignore[assignment]


@dataclass
class VerifierJudgeConfig:
    """IFEval's checker judges pairs written under verifiable principles (principle=verifiable):
    exact verdicts, no model asked; it judges the `signal` task only."""

    _target_: str = "sso_exp.evaluation.verifier.verifier_judge"  # builds the judge
    _partial_: bool = True  # Hydra builds a partial, completed with the model (unused)


JUDGES = {
    "policy": PolicyJudgeConfig,
    "openai": OpenAIJudgeConfig,
    "rm": RewardJudgeConfig,
    "verifier": VerifierJudgeConfig,
}
VERIFIER_TASKS = ("signal", "gsm8k", "math500", "mmlu_pro", "gpqa", "ifeval")  # no LLM judge


@dataclass
class SignalTaskConfig:
    """SSO's own labels (y+ over y-) under the judge, asked as `eval.alpaca.annotator` says."""

    annotator: str = "weighted"  # how the judge is asked, as for eval.alpaca.annotator

    def __post_init__(self) -> None:
        require_choice(self.annotator, ANNOTATORS, "eval.signal.annotator")


@dataclass
class HumanPairsTaskConfig:
    """The judge's own accuracy on held-out human-labelled pairs (HH-RLHF transcripts or
    prompt/chosen/rejected rows), asked exactly as signal accuracy asks it: how far to trust
    the judge that labels SSO's pairs."""

    path: Optional[str] = "hh_helpful_test.jsonl"  # the human-labelled pairs
    limit: Optional[int] = 200  # the file's first this many pairs; None: all
    annotator: str = "weighted"  # how the judge is asked, as for eval.alpaca.annotator

    def __post_init__(self) -> None:
        require_choice(self.annotator, ANNOTATORS, "eval.human_pairs.annotator")


@dataclass
class AlpacaTaskConfig:
    """AlpacaEval 2.0 against its reference answers. The answer budget fits the benchmark:
    most GPT-4 Turbo references are longer than 1,100 characters, and a cut answer loses
    and distorts the length-controlled rate (`<task>/budget_hits` counts the cut ones)."""

    path: Optional[str] = "alpaca_eval_gpt4_turbo.jsonl"  # instructions with reference answers
    limit: Optional[int] = 20  # the file's first this many instructions; None: all
    max_new_tokens: int = 2048  # the policy's answer budget
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
    budget, its answer temperature per category (0: greedy), its judge budget, its judge
    prompts and its rating parser (first [[x]], else first [x], else a failed judgment,
    counted as `mt_bench/unparsed`)."""

    path: Optional[str] = "mt_bench_questions.jsonl"  # the questions
    # reference answers shown to the judge for math, reasoning and coding (where a question
    # has none of its own)
    reference: Optional[str] = "mt_bench_reference_gpt4.jsonl"
    # FastChat's judge prompts file (docs/data.md); None: ours (evaluation/judges)
    judge_prompts: Optional[str] = "mt_bench_judge_prompts.jsonl"
    limit: Optional[int] = None  # the file's first this many questions; None: all 80
    max_new_tokens: int = 1024  # the policy's answer budget per turn
    judge_max_new_tokens: int = 2048  # the judge's budget per rating
    # the policy's answer temperature per question category (0 or not named: greedy)
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


def answer_budget(tokens: int) -> Any:
    """A task's default `gen_kwargs`: the harness's answer budget."""
    return field(default_factory=lambda: {"max_gen_toks": tokens})


@dataclass
class HarnessTaskConfig:
    """A benchmark computed by lm-evaluation-harness (docs/evaluation.md): its task, the
    task's options, and the data folder's files in place of the hub's."""

    lm_eval_task: str = MISSING  # the harness's task (or group) name
    path: Optional[str] = None  # the test items (docs/data.md)
    fewshot_path: Optional[str] = None  # the few-shot examples' split; None: the task has none
    num_fewshot: Optional[int] = None  # None: the task's own
    limit: Optional[int] = None  # items per task (per subject of a group); None: all
    # the harness's generation options for generative tasks, e.g. {max_gen_toks: 256}
    gen_kwargs: Dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32  # the harness's batch
    # online runs with eval.every_iteration: after every iteration (every), or only before
    # training and after the last iteration (ends: a benchmark of minutes per evaluation)
    schedule: str = "every"

    def check(self, task: str) -> None:
        require_choice(self.schedule, SCHEDULES, f"eval.{task}.schedule")
        require(self.limit is None or self.limit >= 1, f"eval.{task}.limit", "must be >= 1")
        few = self.num_fewshot
        require(few is None or few >= 0, f"eval.{task}.num_fewshot", "must be >= 0")
        require(self.batch_size >= 1, f"eval.{task}.batch_size", "must be >= 1")


@dataclass
class GSM8KTaskConfig(HarnessTaskConfig):
    """GSM8K as the Open LLM Leaderboard ran it: 5-shot, strict-match and flexible-extract."""

    lm_eval_task: str = "gsm8k"
    path: Optional[str] = "gsm8k_test.jsonl"
    fewshot_path: Optional[str] = "gsm8k_train.jsonl"
    gen_kwargs: Dict[str, Any] = answer_budget(256)


@dataclass
class Math500TaskConfig(HarnessTaskConfig):
    """MATH-500 (hendrycks_math500: minerva_math500 needs antlr4 4.11, Hydra pins 4.9)."""

    lm_eval_task: str = "hendrycks_math500"
    path: Optional[str] = "math500_test.jsonl"
    gen_kwargs: Dict[str, Any] = answer_budget(512)


@dataclass
class MMLUProTaskConfig(HarnessTaskConfig):
    """MMLU-Pro, 5-shot chain of thought, its 14 subjects weighted by size."""

    lm_eval_task: str = "mmlu_pro"
    path: Optional[str] = "mmlu_pro_test.jsonl"
    fewshot_path: Optional[str] = "mmlu_pro_validation.jsonl"
    gen_kwargs: Dict[str, Any] = answer_budget(1024)


@dataclass
class GPQATaskConfig(HarnessTaskConfig):
    """GPQA Diamond, zero-shot multiple choice by log-likelihood (acc, acc_norm)."""

    lm_eval_task: str = "gpqa_diamond_zeroshot"
    path: Optional[str] = "gpqa_diamond.csv"
    # a log-likelihood batch holds every token's logits over the vocabulary: 32 questions of
    # ~1,000 tokens would take ~6 GB twice over for a 49k vocabulary
    batch_size: int = 8


@dataclass
class IFEvalTaskConfig(HarnessTaskConfig):
    """IFEval: the harness's task, checker and four metrics, on the data folder's prompts."""

    lm_eval_task: str = "ifeval"
    path: Optional[str] = "ifeval_input_data.jsonl"  # IFEval's 541 prompts
    gen_kwargs: Dict[str, Any] = answer_budget(1280)


HARNESS_TASKS = ("gsm8k", "math500", "mmlu_pro", "gpqa", "ifeval")


@dataclass
class EvalConfig:
    """docs/algorithm.md §7. File names are looked up as docs/data.md says. The answer
    budgets fit each benchmark on a GPU; the CPU demo in the README sets smaller ones."""

    tasks: List[str] = field(default_factory=lambda: list(BENCHMARKS))  # the tasks to run
    judge: Any = MISSING  # an option of eval/judge: policy | openai | rm
    # eval/judge_model=<model option>: a fixed local model judges (eval/judge=policy) in place
    # of the evaluated policy, so every iteration and every run meets the same judge
    judge_model: Optional[ModelConfig] = None
    # online runs: evaluate before training (the tasks that need no pairs) and after each
    # iteration
    every_iteration: bool = False
    policy: Optional[str] = None  # mode=eval: a saved policy folder; None: the model config
    signal: SignalTaskConfig = field(default_factory=SignalTaskConfig)  # signal accuracy
    # the judge's accuracy on human-labelled pairs
    human_pairs: HumanPairsTaskConfig = field(default_factory=HumanPairsTaskConfig)
    alpaca: AlpacaTaskConfig = field(default_factory=AlpacaTaskConfig)  # AlpacaEval 2.0
    mt_bench: MTBenchTaskConfig = field(default_factory=MTBenchTaskConfig)  # MT-Bench
    gsm8k: GSM8KTaskConfig = field(default_factory=GSM8KTaskConfig)  # GSM8K (lm_eval)
    math500: Math500TaskConfig = field(default_factory=Math500TaskConfig)  # MATH-500 (lm_eval)
    mmlu_pro: MMLUProTaskConfig = field(default_factory=MMLUProTaskConfig)  # MMLU-Pro (lm_eval)
    gpqa: GPQATaskConfig = field(default_factory=GPQATaskConfig)  # GPQA Diamond (lm_eval)
    ifeval: IFEvalTaskConfig = field(default_factory=IFEvalTaskConfig)  # IFEval (lm_eval)
    batch_size: int = 8  # the policy's answers per `generate` call

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        require(not bad, "eval.tasks", f"unknown tasks {bad}; known: {', '.join(TASKS)}")
        for task in HARNESS_TASKS:
            getattr(self, task).check(task)
        for task in ("alpaca", "mt_bench"):
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
    mix_limit: Optional[int] = None  # rm.mix's first this many pairs; None: all
    eval: Optional[str] = None  # human-labelled pairs to evaluate on
    eval_limit: Optional[int] = None  # rm.eval's first this many pairs; None: all
    max_length: int = 512  # tokens per conversation; longer ones lose their start
    lr: float = 1e-5  # the reward model's learning rate (in place of schedule.optimizer.lr)
    epochs: int = 1  # passes over the reward model's training pairs
    batch_size: int = 4  # pairs per training batch
    checkpoint: Optional[str] = None  # a trained reward model folder
    score_input: Optional[str] = None  # mode=rm_score: JSONL of prompt/response rows

    def __post_init__(self) -> None:
        for key in ("max_length", "epochs", "batch_size"):
            require(getattr(self, key) >= 1, f"rm.{key}", "must be >= 1")
