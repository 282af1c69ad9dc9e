"""IFEval computed by lm-evaluation-harness (evaluation/harness.py): its own `ifeval` task
(prompts as the data folder's file holds them, chat template, greedy answers, its checker
and its four metrics), with the policy handed to the harness in-process.

The harness gives a standard error for the prompt-level metrics only; the instruction-level
ones pool the instructions of all prompts, so their SE here is the ratio estimator's over
prompts (instructions of one prompt are not independent). Intervals: Wilson for the
prompt-level shares (evaluation/accuracy.py), mean ± 1.96 SE for the pooled ones."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

from ..distributed import broadcast
from .accuracy import Z95, percent_share
from .harness import run_harness, samples_of
from .tasks import TaskResult

TASK = "ifeval"
PROMPT_LEVEL = ("prompt_level_strict_acc", "prompt_level_loose_acc")
INST_LEVEL = ("inst_level_strict_acc", "inst_level_loose_acc")


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
    samples = samples_of(results, TASK)
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


def ifeval(model, tok, task_cfg) -> TaskResult:
    """IFEval through the harness (evaluation/harness.py), its TaskResult on every rank."""
    results = run_harness(model, tok, TASK, task_cfg)
    return broadcast(ifeval_result(results) if results else None)
