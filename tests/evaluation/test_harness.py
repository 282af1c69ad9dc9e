"""The objective benchmarks through lm-evaluation-harness on the tiny policy and small data
files the test writes (made-up items in each benchmark's format; GPQA's own rows stay out of
the repository): every metric sso_exp reports equals what `lm_eval.simple_evaluate` returns
when the test calls it directly on the same model and files, the model's mode and the
process's random streams are left as they were, and each item has its row."""

import json
import random
from pathlib import Path

import pytest
import torch

from sso_exp.config.evaluation import (
    GPQATaskConfig,
    GSM8KTaskConfig,
    Math500TaskConfig,
    MMLUProTaskConfig,
)
from sso_exp.evaluation.harness import benchmark, library_task, metric_name

GSM8K = [(f"Ann has {a} apples and buys {b} more. How many?", f"{a}+{b}={a + b}\n#### {a + b}")
         for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 9), (4, 4)]]  # fmt: skip
MATH = [{"problem": f"What is ${a}+{a}$?", "solution": f"It is $\\boxed{{{2 * a}}}$.",
         "answer": str(2 * a)} for a in (1, 2, 3)]  # fmt: skip
SUBJECTS = ["biology", "business", "chemistry", "computer science", "economics",
            "engineering", "health", "history", "law", "math", "other", "philosophy",
            "physics", "psychology"]  # fmt: skip


def mmlu_row(i, subject):
    return {"question_id": i, "question": f"Which letter is first ({subject})?",
            "options": ["A", "B", "C", "D"], "answer": "A", "answer_index": 0,
            "cot_content": "A: Let's think step by step. The answer is (A).",
            "category": subject, "src": "test"}  # fmt: skip


def jsonl(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def gpqa_csv(path: Path) -> str:
    lines = ["Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3"]
    words = ["one", "two", "three", "four", "six", "nine", "twelve"]
    lines += [f"What is {w} doubled?,{w} times two,{w},zero,{w} squared" for w in words[:3]]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def configs(tmp_path):
    test = [{"question": q, "answer": a} for q, a in GSM8K]
    gen = {"max_gen_toks": 4}
    return {
        "gsm8k": GSM8KTaskConfig(path=jsonl(tmp_path / "g_test.jsonl", test[:3]),
                                 fewshot_path=jsonl(tmp_path / "g_train.jsonl", test[3:]),
                                 num_fewshot=2, limit=2, gen_kwargs=gen, batch_size=2),
        "math500": Math500TaskConfig(path=jsonl(tmp_path / "m.jsonl", MATH), limit=2,
                                     gen_kwargs=gen, batch_size=2),
        "mmlu_pro": MMLUProTaskConfig(
            path=jsonl(tmp_path / "p_test.jsonl", [mmlu_row(i, s) for i, s in enumerate(SUBJECTS)]),
            fewshot_path=jsonl(tmp_path / "p_val.jsonl",
                               [mmlu_row(100 + i, s) for i, s in enumerate(SUBJECTS)]),
            num_fewshot=1, limit=1, gen_kwargs=gen, batch_size=4),
        "gpqa": GPQATaskConfig(path=gpqa_csv(tmp_path / "gpqa.csv"), batch_size=4),
    }  # fmt: skip


def direct(model, tok, bench, cfg, folder: Path):
    """simple_evaluate called as a user of the harness would, on the same files."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from sso_exp.evaluation.harness import data_files, task_files

    fewshot = Path(cfg.fewshot_path) if cfg.fewshot_path else None
    task_files(folder, bench, cfg.lm_eval_task, data_files(bench, Path(cfg.path), fewshot))
    return simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tok, batch_size=cfg.batch_size),
        tasks=[cfg.lm_eval_task],
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
        num_fewshot=cfg.num_fewshot,
        limit=cfg.limit,
        apply_chat_template=True,
        gen_kwargs=dict(cfg.gen_kwargs) or None,
    )


ITEMS = {"gsm8k": 2, "math500": 2, "mmlu_pro": 14, "gpqa": 3}  # limit 1 per subject


@pytest.mark.parametrize("bench", ["gsm8k", "math500", "mmlu_pro", "gpqa"])
def test_each_benchmark_reports_what_the_harness_reports(tiny, configs, bench, tmp_path):
    model, tok = tiny
    cfg = configs[bench]
    model.train()
    random.seed(7)
    torch.manual_seed(7)
    before = (random.random(), torch.rand(1))
    random.seed(7)
    torch.manual_seed(7)
    result = benchmark(model, tok, bench, cfg)
    assert model.training  # the harness's eval() undone
    assert (random.random(), torch.rand(1)) == before  # its global seeding undone
    (tmp_path / "direct").mkdir()
    theirs = direct(model, tok, bench, cfg, tmp_path / "direct")["results"][cfg.lm_eval_task]
    figures = [k for k in theirs if "," in k and "_stderr" not in k]
    assert figures
    for key in figures:
        metric, _, filt = key.partition(",")
        name = metric_name(bench, metric, filt)
        assert result.metrics[name] == pytest.approx(100 * theirs[key], abs=1e-9)
        se = theirs.get(f"{metric}_stderr,{filt}")
        if isinstance(se, float):
            assert result.metrics[f"{name}_se"] == pytest.approx(100 * se, abs=1e-9)
        assert result.metrics[f"{name}_ci_low"] <= result.metrics[name]
        assert result.metrics[name] <= result.metrics[f"{name}_ci_high"]
    items = {(r["task"], r["doc_id"]) for r in result.rows}
    assert result.metrics[f"{bench}/n"] == len(items) == ITEMS[bench]


def test_unknown_task_names_are_none():
    assert library_task("gsm8k", "gsm8k") is not None
    assert library_task("gpqa", "gpqa_diamond_zeroshot") is not None
    assert library_task("gsm8k", "gsm8k_no_such_variant") is None
