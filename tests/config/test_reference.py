"""docs/config.md is what the schema generates now, every key has a meaning, the checks'
options and ranges reach it, and `--help` points to it."""

import dataclasses
import re
import subprocess
import sys

import pytest

from sso_exp.config import DataConfig, ModelConfig
from sso_exp.config.evaluation import JUDGES, PolicyJudgeConfig
from sso_exp.config.reference import (
    COMMAND,
    DOC,
    ROOT,
    comments,
    inherited_comments,
    markdown,
    reachable,
)
from sso_exp.config.steering import FeatureConfig


@pytest.fixture(scope="module")
def doc():
    return markdown()


def row(doc: str, key: str) -> dict:
    """The table row of `key`, by column."""
    line = next(x for x in doc.splitlines() if x.startswith(f"| `{key}` |"))
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    return dict(zip(["key", "type", "default", "allowed", "meaning"], cells))


def test_the_doc_is_what_the_schema_generates(doc):
    assert DOC.read_text() == doc, f"docs/config.md is out of date: run `{COMMAND}`"


def test_every_field_of_the_config_has_a_meaning():
    classes = list(reachable())
    assert {ModelConfig, FeatureConfig, *JUDGES.values()} <= set(classes)
    missing = [
        f"{cls.__module__}.{cls.__name__}.{f.name}"
        for cls in classes
        for f in dataclasses.fields(cls)
        if not inherited_comments(cls)[f.name]
    ]
    assert not missing, f"write a comment beside or above these fields: {missing}"


def test_meanings_are_read_beside_or_above_a_field_never_from_a_pragma():
    meanings = comments(DataConfig)
    assert meanings["long_prompts"] == "drop | cut"  # beside
    assert meanings["max_prompt_tokens"].startswith("a query longer than this many tokens")
    assert meanings["max_prompt_tokens"].endswith("counted and logged")  # two lines above
    assert "type:" not in comments(PolicyJudgeConfig)["batch_size"]


def test_rows_show_types_defaults_options_and_ranges(doc):
    w_alpha = row(doc, "loss.w_alpha")
    assert (w_alpha["type"], w_alpha["default"], w_alpha["allowed"]) == (
        "`float`",
        "`0.5`",
        "in [0, 1]",
    )
    assert row(doc, "data.long_prompts")["allowed"] == "`drop`, `cut`"  # require_choice
    assert row(doc, "model.dtype")["allowed"] == "`float32`, `bfloat16`, `float16`"  # `in`
    assert "`human_pairs`" in row(doc, "eval.tasks")["allowed"]  # `in`, through a local
    assert row(doc, "eval.alpaca.max_new_tokens")["allowed"] == ">= 1"  # checked by EvalConfig
    assert row(doc, "schedule.optimizer.betas")["allowed"] == "two numbers"
    assert row(doc, "eval.mt_bench.temperatures")["allowed"] == "each value >= 0"
    assert row(doc, "principle.num_features")["allowed"] == "in [1, len(features) - 1]"
    assert "2097151" in row(doc, "trainer.malloc_mmap_threshold_kb")["allowed"]  # a constant
    assert row(doc, "model.path")["allowed"] == ""  # a check against another key: not a range
    assert row(doc, "tracking.uri")["default"] == "*required*"
    assert row(doc, "loss.name")["default"] == "`${hydra:runtime.choices.loss}`"
    assert row(doc, "eval.judge.batch_size")["meaning"].endswith("eval.batch_size")


def test_sections_follow_the_groups_with_their_option_files(doc):
    headings = [x for x in doc.splitlines() if x.startswith("#")]
    for heading in ("## loss", "### schedule.optimizer", "### eval.judge=openai", "## Presets"):
        assert heading in headings
    assert "- `loss=ipo`: IPO base loss" in doc
    assert "- `eval/judge_model=tiny`:" in doc
    assert "Same keys as `model` (ModelConfig)." in doc  # generator, eval.judge_model


def test_help_points_to_the_reference():
    proc = subprocess.run(
        [sys.executable, "-m", "sso_exp", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "docs/config.md" in proc.stdout and "--cfg job" in proc.stdout
    assert "loss: dpo, ipo, orpo, simpo" in proc.stdout  # Hydra's list of groups
