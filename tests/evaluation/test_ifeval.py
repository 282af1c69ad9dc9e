"""IFEval through lm-evaluation-harness on the tiny policy and a small prompts file the test
writes: the harness's own per-prompt verdicts (recomputed here with its `process_results`),
its four metrics with standard errors and intervals, and one row per prompt."""

import json
import math

import pytest

from sso_exp.config.evaluation import IFEvalTaskConfig
from sso_exp.evaluation.ifeval import clustered, ifeval

PROMPTS = [
    {"key": 1, "prompt": "Write a haiku about rain. Do not use any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Describe a cat in all lowercase letters, in less than 40 words.",
     "instruction_id_list": ["change_case:english_lowercase", "length_constraints:number_words"],
     "kwargs": [{}, {"num_words": 40, "relation": "less than"}]},
    {"key": 3, "prompt": "Wrap your whole answer in double quotes: what is tea?",
     "instruction_id_list": ["startend:quotation"], "kwargs": [{}]},
]  # fmt: skip


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "ifeval.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return path


def test_ifeval_is_the_harness_on_the_policy(tiny, prompts):
    from lm_eval.tasks.ifeval.utils import process_results

    model, tok = tiny
    model.train()
    result = ifeval(
        model,
        tok,
        IFEvalTaskConfig(path=str(prompts), gen_kwargs={"max_gen_toks": 6}, batch_size=2),
    )
    assert model.training  # the harness's eval() undone
    assert [r["key"] for r in result.rows] == [1, 2, 3]
    for row, doc in zip(result.rows, PROMPTS):
        again = process_results(doc, [row["output"]])
        for name in ("prompt_level_strict_acc", "inst_level_loose_acc"):
            assert row[name] == again[name]
    m = result.metrics
    assert m["ifeval/n"] == 3
    strict = [r["prompt_level_strict_acc"] for r in result.rows]
    assert m["ifeval/prompt_level_strict_acc"] == pytest.approx(100 * sum(strict) / 3)
    for name in ("prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc",
                 "inst_level_loose_acc"):  # fmt: skip
        value = m[f"ifeval/{name}"]
        assert m[f"ifeval/{name}_ci_low"] <= value <= m[f"ifeval/{name}_ci_high"]
        assert not math.isnan(m[f"ifeval/{name}_se"])


def test_limit_takes_the_files_first_prompts(tiny, prompts):
    model, tok = tiny
    cfg = IFEvalTaskConfig(path=str(prompts), limit=2, gen_kwargs={"max_gen_toks": 2}, batch_size=2)
    result = ifeval(model, tok, cfg)
    assert [r["key"] for r in result.rows] == [1, 2]


def test_the_pooled_instruction_share_is_clustered_by_prompt():
    hits = [[True, True], [False], [True, False, False]]
    m = clustered(hits)
    assert m[""] == pytest.approx(50.0)
    # the ratio estimator: residuals (k_i - p n_i) / mean size, over n (n - 1)
    resid = [(2 - 1) / 2, (0 - 0.5) / 2, (1 - 1.5) / 2]
    se = math.sqrt(sum(r * r for r in resid) / 6)
    assert m["_se"] == pytest.approx(100 * se)
