"""The objective benchmarks (GSM8K, MATH-500, MMLU-Pro, GPQA, IFEval) computed by
lm-evaluation-harness, so that their numbers are the numbers the field reports: its task
definitions, prompts, few-shot examples, filters, metrics and standard errors, the policy
answering in its chat template (the harness's `apply_chat_template`, few-shot examples as
turns). Only two things are ours:

- where the data comes from: for each task a file that includes the harness's own and
  reads the data folder's files in place of the hub's (a group such as `mmlu_pro` gets one
  per subtask, under the harness's own names);
- the ranks: the job's process group is the harness's data-parallel path (`GroupLM`: each
  rank answers its share of the requests, rank 0 gathers and scores them).

The harness seeds Python, numpy and torch globally; their states are put back afterwards,
so an evaluation leaves the run's random streams as it found them, and its numbers equal
a direct `simple_evaluate` call with the harness's default seeds."""

from __future__ import annotations

import functools
import math
import random
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist

from ..distributed import broadcast, is_main, rank, world
from ..runtime.host import offline_hub
from .accuracy import Z95, percent_share
from .tasks import TaskResult

# each benchmark's splits, as its harness task names them: (test, few-shot examples)
SPLITS: Dict[str, Tuple[str, Optional[str]]] = {
    "gsm8k": ("test", "train"),
    "math500": ("test", None),
    "mmlu_pro": ("test", "validation"),
    "gpqa": ("train", None),
    "ifeval": ("train", None),
}
NOT_METRICS = ("alias", "samples", "sample_len", " ")


# each benchmark's folder among the harness's tasks: indexing one takes milliseconds, all of
# them (for a variant elsewhere) seconds
HOMES = {"gsm8k": "gsm8k", "math500": "hendrycks_math", "mmlu_pro": "mmlu_pro", "gpqa": "gpqa",
         "ifeval": "ifeval"}  # fmt: skip


@functools.cache
def _index(folder: Optional[str]) -> Dict[str, Any]:
    from lm_eval import tasks
    from lm_eval.tasks import TaskManager

    if folder is None:
        return TaskManager().task_index
    home = Path(tasks.__file__).parent / folder
    return TaskManager(include_path=str(home), include_defaults=False).task_index


def library_tasks() -> List[str]:
    """Every task and group name the harness knows."""
    return list(_index(None))


def library_task(bench: str, name: str) -> Optional[Any]:
    """The harness's own entry (kind, yaml_path, cfg) for task `name`, None if it has none."""
    return _index(HOMES[bench]).get(name) or _index(None).get(name)


def task_yaml(folder: Path, name: str, yaml_path: Path, files: Dict[str, Path]) -> None:
    """`name` as the harness defines it, reading `files` ({split: file}) from disk."""
    kind = "csv" if all(p.suffix == ".csv" for p in files.values()) else "json"
    lines = [f"task: {name}", f"include: {yaml_path}"]
    # the hub's copies are these files too (GPQA's a CSV), read by the same `datasets` loaders
    lines += [f"dataset_path: {kind}", "dataset_name: null", "dataset_kwargs:", "  data_files:"]
    lines += [f"    {split}: {path}" for split, path in files.items()]
    (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def task_files(folder: Path, bench: str, name: str, files: Dict[str, Path]) -> None:
    """The task (or each task of the group) `name`, on local files."""
    entry = library_task(bench, name)
    if entry.kind.name != "GROUP":
        return task_yaml(folder, name, entry.yaml_path, files)
    shutil.copy(entry.yaml_path, folder / f"{name}.yaml")  # its members' names, weights
    for member in entry.cfg["task"]:
        task_files(folder, bench, member, files)


def data_files(bench: str, path: Path, fewshot_path: Optional[Path]) -> Dict[str, Path]:
    test, fewshot = SPLITS[bench]
    files = {test: path.resolve()}
    if fewshot is not None and fewshot_path is not None:
        files[fewshot] = fewshot_path.resolve()
    return files


@contextmanager
def kept_random_state() -> Iterator[None]:
    """Python's, numpy's and torch's global random states as they were before the block."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def group_lm(model, tok, batch_size: int):
    """The harness's HF model on this job's process group: its data-parallel path (rank,
    world size, gather, barrier) served by torch.distributed instead of `accelerate`."""
    from lm_eval.models.huggingface import HFLM

    class GroupLM(HFLM):
        def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
            if self.world_size <= 1:
                return tensor
            parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
            dist.all_gather(parts, tensor.contiguous())
            return torch.stack(parts) if tensor.dim() == 0 else torch.cat(parts)

        def barrier(self) -> None:
            if self.world_size > 1:
                dist.barrier()

    lm = GroupLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    lm._rank, lm._world_size = rank(), world()
    return lm


def run_harness(model, tok, bench: str, task_cfg) -> Optional[Dict[str, Any]]:
    """lm_eval's results (with samples) for the policy on one benchmark: rank 0's, None on
    the other ranks. `task_cfg` holds lm_eval_task, path, fewshot_path, num_fewshot, limit,
    gen_kwargs and batch_size."""
    offline_hub()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    training = model.training
    fewshot = Path(task_cfg.fewshot_path) if task_cfg.fewshot_path else None
    with tempfile.TemporaryDirectory() as folder, kept_random_state():
        files = data_files(bench, Path(task_cfg.path), fewshot)
        task_files(Path(folder), bench, task_cfg.lm_eval_task, files)
        results = simple_evaluate(
            model=group_lm(model, tok, task_cfg.batch_size),
            tasks=[task_cfg.lm_eval_task],
            task_manager=TaskManager(include_path=folder, include_defaults=False),
            num_fewshot=task_cfg.num_fewshot,
            limit=task_cfg.limit,
            apply_chat_template=True,
            log_samples=True,
            gen_kwargs=dict(task_cfg.gen_kwargs) or None,
        )
    model.train(training)  # the harness leaves the model in eval mode
    return results if is_main() else None


def samples_of(results: Dict[str, Any], name: str) -> List[Dict[str, Any]]:
    """The per-item samples of task `name`, or of every task of the group `name`, in the
    data file's order (ranks gather theirs strided)."""
    if name in results["samples"]:
        ordered = sorted(results["samples"][name], key=lambda s: (s.get("filter", ""), s["doc_id"]))
        return [{"task": name, **s} for s in ordered]
    members = results.get("group_subtasks", {}).get(name, [])
    return [s for m in members for s in samples_of(results, m)]


def figure(key: str, value: float, se: Any, hits: List[Any]) -> Dict[str, float]:
    """A harness metric in percent with its SE and 95% interval: a share of 0/1 items as
    `percent_share` gives every share (Wilson), mean ± 1.96 SE otherwise."""
    se = se if isinstance(se, float) else math.nan
    if hits and all(h in (0, 1) for h in hits):
        return percent_share(key, [bool(h) for h in hits], se)
    return {key: 100 * value, f"{key}_se": 100 * se, f"{key}_ci_low": 100 * (value - Z95 * se),
            f"{key}_ci_high": 100 * (value + Z95 * se)}  # fmt: skip


def metric_name(bench: str, metric: str, filt: str) -> str:
    """`<bench>/<metric>`, with the filter where the task has one (gsm8k's strict-match)."""
    tail = "" if filt == "none" else "_" + filt.replace("-", "_")
    return f"{bench}/{metric}{tail}"


def harness_result(results: Dict[str, Any], bench: str, name: str) -> TaskResult:
    """Every metric the harness reports for task `name` (`<bench>/<metric>[_<filter>]`, in
    percent, with `_se`, `_ci_low`, `_ci_high`) and one row per item and filter (the data
    file's item index, not its text: some benchmarks ask that their items stay offline)."""
    samples = samples_of(results, name)
    items = {(s["task"], s["doc_id"]) for s in samples}
    metrics: Dict[str, float] = {f"{bench}/n": float(len(items))}
    for key, value in results["results"][name].items():
        metric, _, filt = key.partition(",")
        if metric.endswith("_stderr") or metric in NOT_METRICS or not isinstance(value, float):
            continue
        se = results["results"][name].get(f"{metric}_stderr,{filt}")
        hits = [s[metric] for s in samples if s.get("filter", filt) == filt and metric in s]
        metrics.update(figure(metric_name(bench, metric, filt), value, se, hits))
    return TaskResult(metrics, [row(s) for s in samples])


def row(sample: Dict[str, Any]) -> Dict[str, Any]:
    keep = ("task", "doc_id", "filter", "target", "filtered_resps")
    out = {k: sample[k] for k in keep if k in sample}
    out.update({k: v for k, v in sample.items() if isinstance(v, (int, float)) and k != "doc_id"})
    return out


def benchmark(model, tok, bench: str, task_cfg) -> TaskResult:
    """One benchmark through the harness, its TaskResult on every rank."""
    results = run_harness(model, tok, bench, task_cfg)
    made = harness_result(results, bench, task_cfg.lm_eval_task) if results else None
    return broadcast(made)
