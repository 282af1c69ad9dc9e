"""IFEval computed by lm-evaluation-harness: its own `ifeval` task (prompts as the data
folder's file holds them, chat template, greedy answers, its checker and its four metrics),
with the policy handed to the harness in-process. Only the dataset's location is ours: a
task file that includes the harness's and reads the local JSON lines, so no hub is asked.

The harness gives a standard error for the prompt-level metrics only; the instruction-level
ones pool the instructions of all prompts, so their SE here is the ratio estimator's over
prompts (instructions of one prompt are not independent). Intervals: Wilson for the
prompt-level shares (evaluation/accuracy.py), mean ± 1.96 SE for the pooled ones."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..runtime.host import offline_hub
from .accuracy import Z95, percent_share
from .tasks import TaskResult

TASK = "sso_exp_ifeval"
PROMPT_LEVEL = ("prompt_level_strict_acc", "prompt_level_loose_acc")
INST_LEVEL = ("inst_level_strict_acc", "inst_level_loose_acc")


def task_file(folder: Path, data_file: Path) -> Path:
    """A task that is the harness's `ifeval` but for where its prompts come from."""
    from lm_eval.tasks.ifeval import instructions  # the package has no __init__

    yaml = folder / f"{TASK}.yaml"
    yaml.write_text(
        f"task: {TASK}\n"
        f"include: {Path(instructions.__file__).parent / 'ifeval.yaml'}\n"
        "dataset_path: json\n"
        "dataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    train: {data_file}\n"
        "test_split: train\n",
        encoding="utf-8",
    )
    return yaml


def run_harness(model, tok, path: Path, limit: Optional[int], gen: Dict[str, Any]) -> Dict:
    """lm_eval's results dict (with its samples) for the policy on the file's prompts."""
    offline_hub()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    training = model.training
    with tempfile.TemporaryDirectory() as folder:
        task_file(Path(folder), Path(path).resolve())
        manager = TaskManager(include_path=folder, include_defaults=False)
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=gen["batch_size"])
        results = simple_evaluate(
            model=lm,
            tasks=[TASK],
            task_manager=manager,
            limit=limit,
            apply_chat_template=True,
            log_samples=True,
            gen_kwargs={"max_gen_toks": gen["max_gen_toks"]},
            random_seed=None,  # the harness would reseed Python, numpy and torch globally
            numpy_random_seed=None,
            torch_random_seed=None,
            fewshot_random_seed=None,
        )
    model.train(training)  # the harness leaves the model in eval mode
    return results


def clustered(hits: Sequence[Sequence[bool]]) -> Dict[str, float]:
    """The pooled share of followed instructions over prompts, its ratio-estimator SE and a
    normal 95% interval, in percent."""
    n = len(hits)
    sizes = [len(h) for h in hits]
    share = sum(map(sum, hits)) / sum(sizes)
    mean_size = sum(sizes) / n
    resid = [(sum(h) - share * len(h)) / mean_size for h in hits]
    se = math.sqrt(sum(r * r for r in resid) / (n * (n - 1))) if n > 1 else math.nan
    low, high = share - Z95 * se, share + Z95 * se
    return {"": 100 * share, "_se": 100 * se, "_ci_low": 100 * max(0.0, low),
            "_ci_high": 100 * min(1.0, high)}  # fmt: skip


def ifeval_result(results: Dict) -> TaskResult:
    """Metrics (`ifeval/<metric>` with `_se`, `_ci_low`, `_ci_high`) and one row per prompt."""
    samples = results["samples"][TASK]
    figures = results["results"][TASK]
    metrics: Dict[str, float] = {"ifeval/n": float(len(samples))}
    for name in PROMPT_LEVEL:
        se = figures.get(f"{name}_stderr,none")  # the harness's, a fraction
        hits = [bool(s[name]) for s in samples]
        metrics.update(
            percent_share(f"ifeval/{name}", hits, se if isinstance(se, float) else math.nan)
        )
    for name in INST_LEVEL:
        for suffix, value in clustered([s[name] for s in samples]).items():
            metrics[f"ifeval/{name}{suffix}"] = value
    rows: List[Dict[str, Any]] = [
        {
            "key": s["doc"].get("key"),
            "prompt": s["doc"]["prompt"],
            "output": s["filtered_resps"][0],
            "instruction_id_list": s["doc"]["instruction_id_list"],
            **{name: s[name] for name in PROMPT_LEVEL + INST_LEVEL},
        }
        for s in samples
    ]
    return TaskResult(metrics, rows)


def ifeval(
    model, tok, path: str | Path, *, limit: Optional[int], gen: Dict[str, Any]
) -> TaskResult:
    """IFEval on the file's first `limit` prompts (all when None); `gen` holds the harness's
    `batch_size` and the answer budget `max_gen_toks`."""
    return ifeval_result(run_harness(model, tok, Path(path), limit, gen))
