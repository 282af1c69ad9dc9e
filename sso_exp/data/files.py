"""Finding the data files a config names. Public files a user brings (evaluation sets,
human pairs) live in the data folder (`data.dir`, or $SSO_EXP_DATA); a relative name is
looked up in the working directory first, then there. A missing file fails at start-up,
naming its key and saying where such a file comes from (docs/data.md)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

from ..config.evaluation import HARNESS_TASKS
from ..errors import ConfigError

# The public files the presets and defaults name, and where each comes from.
SOURCES = {
    "alpaca_eval_gpt4_turbo.jsonl": "AlpacaEval 2.0's reference answers (GPT-4 Turbo): "
    "results/gpt4_1106_preview/model_outputs.json of the tatsu-lab/alpaca_eval repository, "
    "one JSON object per line",
    "mt_bench_questions.jsonl": "MT-Bench's 80 questions: fastchat/llm_judge/data/mt_bench/"
    "question.jsonl of the lm-sys/FastChat repository",
    "mt_bench_reference_gpt4.jsonl": "MT-Bench's GPT-4 reference answers: fastchat/llm_judge/"
    "data/mt_bench/reference_answer/gpt-4.jsonl of the lm-sys/FastChat repository",
    "mt_bench_judge_prompts.jsonl": "FastChat's MT-Bench judge prompts: fastchat/llm_judge/data/"
    "judge_prompts.jsonl of the lm-sys/FastChat repository",
    "gsm8k_test.jsonl": "GSM8K's test questions: grade_school_math/data/test.jsonl of the "
    "openai/grade-school-math repository",
    "gsm8k_train.jsonl": "GSM8K's train questions (the few-shot examples): grade_school_math/"
    "data/train.jsonl of the openai/grade-school-math repository",
    "math500_test.jsonl": "MATH-500: prm800k/math_splits/test.jsonl of the openai/prm800k "
    "repository",
    "mmlu_pro_test.jsonl": "MMLU-Pro's test split (TIGER-Lab/MMLU-Pro) as JSON lines",
    "mmlu_pro_validation.jsonl": "MMLU-Pro's validation split (TIGER-Lab/MMLU-Pro, the "
    "few-shot examples) as JSON lines",
    "gpqa_diamond.csv": "GPQA Diamond (idavidrein/gpqa) as CSV with the release's columns",
    "df_gamed.csv": "AlpacaEval's instruction difficulties and gamed baselines: df_gamed.csv "
    "of the tatsu-lab/alpaca_eval dataset on the Hugging Face Hub",
    "hh_helpful_test.jsonl": "Anthropic HH-RLHF helpful-base test pairs: helpful-base/"
    "test.jsonl.gz of the anthropics/hh-rlhf repository, decompressed",
    "hh_helpful_online_rs_test.jsonl": "Anthropic HH-RLHF helpful-online and "
    "helpful-rejection-sampled test pairs (anthropics/hh-rlhf), decompressed and joined, "
    "with a `subset` field",
}


def locate(key: str, name: str, data_dir: str) -> Path:
    """The file `name` of config key `key`: as given (absolute, or relative to the working
    directory), else in the data folder."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    if path.exists():  # a folder, a device (/dev/zero), a pipe: nothing to read lines from
        raise ConfigError(f"config key '{key}': {name} is not a regular file")
    in_folder = Path(data_dir).expanduser() / name
    if not path.is_absolute() and in_folder.is_file():
        return in_folder.resolve()
    where = f"{path}" if path.is_absolute() else f"./{name} or {in_folder}"
    source = SOURCES.get(Path(name).name)
    hint = (
        f"it is {source}; put it in the data folder (data.dir or $SSO_EXP_DATA; docs/data.md)"
        if source
        else "point the key at an existing file"
    )
    raise ConfigError(f"config key '{key}': {name} not found (looked for {where}); {hint}")


# Every config key that names a data file.
FILE_KEYS = (
    "data.prompts",
    "data.pairs",
    "rm.mix",
    "rm.eval",
    "rm.score_input",
    "eval.human_pairs.path",
    "eval.alpaca.path",
    "eval.alpaca.difficulty_file",
    "eval.mt_bench.path",
    "eval.mt_bench.reference",
    "eval.mt_bench.judge_prompts",
    *(f"eval.{t}.{k}" for t in HARNESS_TASKS for k in ("path", "fewshot_path")),
)


def key_value(cfg: Any, key: str) -> Any:
    """The value at a dotted key of a config object."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def with_located(cfg: Any, keys: Iterable[str]) -> Any:
    """A copy of `cfg` whose `keys` that are set hold the located files' absolute paths."""
    cfg = copy.deepcopy(cfg)
    for key in keys:
        value = key_value(cfg, key)
        if value is not None:
            node_key, _, leaf = key.rpartition(".")
            setattr(key_value(cfg, node_key), leaf, str(locate(key, value, cfg.data.dir)))
    return cfg
