"""Judges are built by Hydra from the eval/judge option: its settings reach the judge, and a
missing required one names its key."""

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import MissingMandatoryValue

from conftest import compose_cfg
from sso_exp.evaluation.judges import LLMJudge, OpenAIBackend, PolicyBackend
from sso_exp.pipeline.evaluate import make_judge


def test_the_policy_judges_with_its_settings(tmp_path, tiny):
    cfg = compose_cfg(tmp_path, "model=tiny", "eval.batch_size=3", "eval.judge.max_new_tokens=9")
    judge = make_judge(cfg.eval, cfg.model, *tiny)
    assert isinstance(judge, LLMJudge) and isinstance(judge.backend, PolicyBackend)
    assert (judge.backend.batch_size, judge.backend.max_new_tokens) == (3, 9)
    assert judge.backend.model is tiny[0]


def test_a_judge_model_is_its_own_fixed_model(tmp_path, tiny):
    cfg = compose_cfg(tmp_path, "model=tiny", "eval/judge_model=tiny")
    backend = make_judge(cfg.eval, cfg.model, *tiny).backend
    assert backend.model is not tiny[0] and not backend.model.training
    assert backend.model.device == tiny[0].device


def test_an_openai_judge_gets_the_configured_endpoint(tmp_path, tiny):
    cfg = compose_cfg(
        tmp_path,
        "eval/judge=openai",
        "eval.judge.base_url=http://127.0.0.1:9/v1",
        "eval.judge.model=m",
        "eval.judge.max_retries=2",
    )
    backend = make_judge(cfg.eval, cfg.model, *tiny).backend
    assert isinstance(backend, OpenAIBackend)
    assert (backend.base_url, backend.model, backend.max_retries) == (
        "http://127.0.0.1:9/v1",
        "m",
        2,
    )


def test_an_openai_judge_without_its_endpoint_names_the_key(tmp_path):
    with pytest.raises((MissingMandatoryValue, ConfigCompositionException), match="base_url"):
        compose_cfg(tmp_path, "eval/judge=openai", "eval.judge.model=m")


def test_an_unknown_judge_option_fails(tmp_path):
    with pytest.raises(ConfigCompositionException, match="eval/judge"):
        compose_cfg(tmp_path, "eval/judge=gpt5")
