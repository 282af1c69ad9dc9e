"""Start-up checks: before any work, the data files a mode needs are found (their keys then
hold absolute paths) and parsed where that is cheap, the models it loads are on this
machine, its judge can do its tasks, and the tracking store answers and takes writes. Each
failure names the key, or the file and line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable, Dict, List

from ..config import SSOConfig
from ..config.evaluation import (
    HARNESS_TASKS,
    VERIFIER_TASKS,
    HarnessTaskConfig,
    PolicyJudgeConfig,
    RewardJudgeConfig,
    VerifierJudgeConfig,
)
from ..data.files import with_located
from ..data.preferences import read_training_pairs
from ..data.records import load_prompts, read_csv_rows, read_jsonl, read_records
from ..distributed import first_process
from ..errors import ConfigError
from ..evaluation.harness import library_task, library_tasks
from ..evaluation.judges import check_reward_checkpoint
from ..evaluation.verifier import constraints_of
from ..models.loading import check_available, checkpoint_problem
from ..steering.verifiable import check_families
from ..tracking.mlflow_run import check_tracking
from ..training.objectives import policy_objective
from .reward import read_scoring_rows

TASK_FILES = {
    "signal": (),
    "human_pairs": ("eval.human_pairs.path",),
    "alpaca": ("eval.alpaca.path", "eval.alpaca.difficulty_file"),
    "mt_bench": ("eval.mt_bench.path", "eval.mt_bench.reference", "eval.mt_bench.judge_prompts"),
    **{t: (f"eval.{t}.path", f"eval.{t}.fewshot_path") for t in HARNESS_TASKS},
}
MODE_FILES = {
    "online": ("data.prompts",),
    "offline": ("data.pairs", "data.prompts"),
    "rm": ("data.pairs", "data.prompts", "rm.mix", "rm.eval"),
    "rm_score": ("rm.score_input",),
    "eval": ("data.pairs",),
}


def evaluates(cfg: SSOConfig) -> bool:
    return cfg.mode.name == "eval" or (cfg.mode.name == "online" and cfg.eval.every_iteration)


def needed_files(cfg: SSOConfig) -> List[str]:
    keys = list(MODE_FILES[cfg.mode.name])
    if evaluates(cfg):
        keys += [k for task in cfg.eval.tasks for k in TASK_FILES[task]]
    return keys


def check_eval(cfg: SSOConfig) -> None:
    for task in HARNESS_TASKS:
        if task in cfg.eval.tasks:
            check_harness_task(task, getattr(cfg.eval, task))
    if cfg.eval.judge_model is not None:
        check_judge_model(cfg)
    if isinstance(cfg.eval.judge, VerifierJudgeConfig):
        check_verifier(cfg)
    if "ifeval" in cfg.eval.tasks and cfg.mode.name in ("online", "offline"):
        check_ifeval_apart(cfg)
    if not isinstance(cfg.eval.judge, RewardJudgeConfig):
        return
    check_reward_checkpoint(cfg.eval.judge.checkpoint)
    if "mt_bench" in cfg.eval.tasks:
        raise ConfigError(
            "config key 'eval.tasks': a reward model cannot grade MT-Bench "
            "answers 1-10; drop mt_bench or use eval/judge=policy|openai"
        )


def check_harness_task(task: str, task_cfg: HarnessTaskConfig) -> None:
    """The harness knows the task, and its data files parse (JSON lines, or CSV rows)."""
    if library_task(task, task_cfg.lm_eval_task) is None:
        known = library_tasks()
        near = difflib.get_close_matches(task_cfg.lm_eval_task, known, n=5)
        raise ConfigError(
            f"config key 'eval.{task}.lm_eval_task': lm-evaluation-harness has no task "
            f"'{task_cfg.lm_eval_task}'; close ones: {', '.join(near) or 'none'}"
        )
    for path in filter(None, (task_cfg.path, task_cfg.fewshot_path)):
        if path.endswith(".csv"):
            read_csv_rows(path)
        else:
            for _ in read_jsonl(path):
                pass


def check_verifier(cfg: SSOConfig) -> None:
    """The checker judges pairs with verifiable constraints, and nothing else."""
    others = [t for t in cfg.eval.tasks if t not in VERIFIER_TASKS]
    if others:
        raise ConfigError(
            f"config key 'eval.tasks': eval/judge=verifier cannot judge {others} (it checks "
            f"the constraints of SSO pairs); keep {list(VERIFIER_TASKS)} or choose an LLM judge"
        )
    writes = cfg.mode.name in ("online", "offline") and not cfg.data.pairs
    if "signal" in cfg.eval.tasks and writes and not cfg.principle.verifiable:
        raise ConfigError(
            "config key 'eval.judge': eval/judge=verifier needs pairs written under verifiable "
            "principles; add principle=verifiable"
        )
    if "signal" in cfg.eval.tasks and cfg.data.pairs:
        constraints_of(read_records(cfg.data.pairs))


def check_ifeval_apart(cfg: SSOConfig) -> None:
    """The training queries are never IFEval's prompts."""
    asked = {p.strip() for p in load_prompts(cfg.eval.ifeval.path)}
    shared = [p for p in load_prompts(cfg.data.prompts) if p in asked]
    if shared:
        raise ConfigError(
            f"config key 'data.prompts': {len(shared)} of its prompts are IFEval prompts "
            f"({cfg.eval.ifeval.path}); training on them would void the benchmark"
        )


def check_judge_model(cfg: SSOConfig) -> None:
    if not isinstance(cfg.eval.judge, PolicyJudgeConfig):
        raise ConfigError(
            "config key 'eval.judge_model': a local judge model answers through "
            "eval/judge=policy; drop eval/judge_model or choose that judge"
        )
    check_available(cfg.eval.judge_model)


def check_online(cfg: SSOConfig) -> None:
    load_prompts(cfg.data.prompts)
    check_available(cfg.model)
    check_families(cfg.principle)


def check_offline(cfg: SSOConfig) -> None:
    if cfg.data.pairs:
        records = read_training_pairs(cfg.data.pairs, cfg.data.equal_pairs)
        if policy_objective(cfg.loss, cfg.objective).pairs != ["main"] and not all(
            r["p_system"] for r in records
        ):
            raise ConfigError(
                f"config key 'loss.use_g': {cfg.data.pairs} has pairs without "
                f"principles (human pairs?); train them with loss.use_g=false"
            )
    else:
        load_prompts(cfg.data.prompts)
        if cfg.generator is not None:
            check_available(cfg.generator)
        check_families(cfg.principle)
    check_available(cfg.model)


def check_rm(cfg: SSOConfig) -> None:
    if cfg.rm.sso and cfg.data.pairs:
        read_records(cfg.data.pairs)
    elif cfg.rm.sso:
        load_prompts(cfg.data.prompts)
        if cfg.generator is not None:
            check_available(cfg.generator)
        check_families(cfg.principle)
    check_available(cfg.model)


def require_rm_score(cfg: SSOConfig) -> None:
    for key in ("checkpoint", "score_input"):
        if not getattr(cfg.rm, key):
            raise ConfigError(f"config key 'rm.{key}': mode=rm_score needs it")


def check_rm_score(cfg: SSOConfig) -> None:
    if not (Path(cfg.rm.checkpoint) / "config.json").is_file():
        raise ConfigError(f"config key 'rm.checkpoint': {cfg.rm.checkpoint} is not a saved model")
    read_scoring_rows(cfg.rm.score_input)


def check_eval_mode(cfg: SSOConfig) -> None:
    if cfg.data.pairs:
        read_training_pairs(cfg.data.pairs, cfg.data.equal_pairs)
    if cfg.eval.policy is None:
        check_available(cfg.model)
    elif problem := checkpoint_problem(cfg.eval.policy):
        raise ConfigError(f"config key 'eval.policy': {problem} (a saved policy folder)")


CHECKS: Dict[str, Callable[[SSOConfig], None]] = {
    "online": check_online,
    "offline": check_offline,
    "rm": check_rm,
    "rm_score": check_rm_score,
    "eval": check_eval_mode,
}


def check_inputs(cfg: SSOConfig) -> SSOConfig:
    """The config with its needed files located; raises what a user must fix."""
    if cfg.mode.name == "rm_score":
        require_rm_score(cfg)
    cfg = with_located(cfg, needed_files(cfg))
    CHECKS[cfg.mode.name](cfg)
    if evaluates(cfg):
        check_eval(cfg)
    if cfg.generation.backend == "vllm":
        from ..steering.vllm import check_available as vllm_available

        vllm_available()
    if first_process():  # one process makes the experiment; the others find it
        check_tracking(cfg.tracking)
    return cfg
