"""Judges for evaluation: LLM judges (pairwise preference and 1-10 grading) behind one chat
backend interface (a remote OpenAI-compatible server or a local model), and a trained
reward model. The builders below are what the `eval/judge` options name as `_target_`;
Hydra makes each a partial that the pipeline calls with the evaluated policy, its
tokenizer and its model config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ...config import ModelConfig
from ...errors import ConfigError
from ...models.loading import load_reward_model
from .llm import ChatBackend, JudgeError, LLMJudge
from .openai import OpenAIBackend
from .policy import PolicyBackend
from .reward import RewardJudge

__all__ = [
    "ChatBackend",
    "JudgeError",
    "LLMJudge",
    "OpenAIBackend",
    "PolicyBackend",
    "RewardJudge",
    "openai_judge",
    "policy_judge",
    "reward_judge",
]


def policy_judge(
    policy, tok, model_cfg: ModelConfig, *, max_new_tokens: int, batch_size: int
) -> LLMJudge:
    """The evaluated model judges, greedily (a progress bar: its verdicts can take minutes)."""
    return LLMJudge(PolicyBackend(policy, tok, max_new_tokens, batch_size, desc="judging"))


def openai_judge(policy, tok, model_cfg: ModelConfig, **backend: Any) -> LLMJudge:
    """A remote model judges; the evaluated policy plays no part."""
    return LLMJudge(OpenAIBackend(**backend))


def check_reward_checkpoint(checkpoint: Optional[str]) -> None:
    """Fail at start-up unless `checkpoint` is a saved model folder."""
    if not checkpoint or not (Path(checkpoint) / "config.json").is_file():
        raise ConfigError(
            "config key 'rm.checkpoint': eval/judge=rm needs a trained reward "
            f"model folder (got {checkpoint})"
        )


def reward_judge(
    policy,
    tok,
    model_cfg: ModelConfig,
    *,
    checkpoint: Optional[str],
    max_length: int,
    batch_size: int,
) -> RewardJudge:
    """A trained reward model judges pairs, on the policy's device."""
    check_reward_checkpoint(checkpoint)
    rm, rtok = load_reward_model(model_cfg, checkpoint=checkpoint)
    return RewardJudge(rm.to(policy.device), rtok, max_length, batch_size)
