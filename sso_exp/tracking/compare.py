"""The comparison report of a study (a sweep, or every run of an experiment), read back from
MLflow: a runs table with each run's final metrics, the per-iteration values in long format,
and one PNG per group of per-iteration metrics.

`python -m sso_exp.tracking.compare <sweep id | parent run id | experiment name> [key=value ...]`;
the sweep callback (tracking/sweep.py) calls `report_sweep`, other code `report`."""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import hydra
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import TrackingConfig
from ..errors import ConfigError, SSOError
from ..evaluation.accuracy import Z95
from .differences import Series, differences, final_value
from .mlflow_run import search_all_runs
from .tables import markdown_table

CONF_FILE = Path(__file__).resolve().parents[2] / "conf" / "compare.yaml"
ARTIFACT_DIR = "compare"
# Params that differ between any two runs whatever was compared: useless as labels.
_PER_RUN_PARAMS = ("output_dir", "tracking.")


class CompareError(SSOError):
    """The target names no runs, or names runs that cannot be compared."""


@dataclass
class ReportSettings:
    """What the report shows; the values live in conf/compare.yaml."""

    final_metrics: List[str] = MISSING
    plots: Dict[str, List[str]] = MISSING
    log_to_parent: bool = MISSING

    def __post_init__(self) -> None:
        for group, metrics in self.plots.items():
            if not metrics:
                raise ConfigError(f"config key 'plots.{group}': lists no metric")
            if not group or "/" in group or group.startswith("."):
                raise ConfigError(
                    f"config key 'plots.{group}': the group name must be a "
                    "plain file name (it names <group>.png)"
                )


@dataclass
class CompareConfig(ReportSettings):
    """The whole `python -m sso_exp.tracking.compare` config."""

    tracking: TrackingConfig = MISSING
    target: str = MISSING
    out_dir: str = MISSING


@dataclass
class Study:
    """The runs to compare and, for a sweep, the parent run that receives the report."""

    name: str
    runs: List[Run]
    parent: Optional[Run] = None


def validate(cfg: DictConfig) -> CompareConfig:
    """The composed config as typed dataclasses; errors name the offending key."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(CompareConfig), cfg))
    except OmegaConfBaseException as err:  # wrong type, unknown or missing key
        raise ConfigError(str(err)) from None


def default_settings() -> ReportSettings:
    """The report knobs of conf/compare.yaml, for callers outside the compare app."""
    knobs = OmegaConf.masked_copy(
        OmegaConf.load(CONF_FILE), ["final_metrics", "plots", "log_to_parent"]
    )
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ReportSettings), knobs))


# --- finding the runs ----------------------------------------------------------------------


def _quoted(value: str) -> str:
    """`value` as an MLflow filter literal, which has no escape for quotes."""
    if "'" in value:
        raise CompareError(f"target {value!r}: quotes cannot be searched for in MLflow")
    return f"'{value}'"


def _is_sweep_parent(run: Run) -> bool:
    return run.data.tags.get("sso.role") == "sweep"


def _job_order(run: Run) -> tuple:
    """Sweep jobs in job order, other runs in start order."""
    job = run.data.tags.get("sso.job", "")
    return (int(job) if job.isdigit() else math.inf, run.info.start_time or 0)


def _by_sweep_id(client: MlflowClient, experiment_name: str, target: str) -> Optional[Study]:
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = search_all_runs(
        client, experiment.experiment_id, f"tags.`sso.sweep_id` = {_quoted(target)}"
    )
    if not runs:
        return None
    parents = [r for r in runs if _is_sweep_parent(r)]
    return Study(
        f"sweep {target}",
        [r for r in runs if not _is_sweep_parent(r)],
        parents[0] if parents else None,
    )


def _by_parent_run(client: MlflowClient, target: str) -> Optional[Study]:
    try:
        parent = client.get_run(target)
    except MlflowException:
        return None
    children = search_all_runs(
        client, parent.info.experiment_id, f"tags.`mlflow.parentRunId` = {_quoted(target)}"
    )
    return Study(f"run {target}", children, parent)


def _by_experiment(client: MlflowClient, target: str) -> Optional[Study]:
    experiment = client.get_experiment_by_name(target)
    if experiment is None:
        return None
    runs = search_all_runs(client, experiment.experiment_id)
    return Study(f"experiment '{target}'", [r for r in runs if not _is_sweep_parent(r)])


def find_study(client: MlflowClient, experiment_name: str, target: str) -> Study:
    """The target read as a sweep id (in `experiment_name`), a parent run id, then an
    experiment name; the first that matches wins."""
    study = (
        _by_sweep_id(client, experiment_name, target)
        or _by_parent_run(client, target)
        or _by_experiment(client, target)
    )
    if study is None:
        raise CompareError(
            f"'{target}' is neither a sweep id (tag sso.sweep_id in experiment "
            f"'{experiment_name}'), nor a run id, nor an experiment name "
            f"in {client.tracking_uri}"
        )
    if not study.runs:
        raise CompareError(f"{study.name} has no {'child ' if study.parent else ''}runs to compare")
    study.runs.sort(key=_job_order)
    return study


# --- labels --------------------------------------------------------------------------------


def _override_labels(runs: Sequence[Run]) -> List[str]:
    """Each run's override tokens minus those every run shares."""
    tokens = [r.data.tags["sso.overrides"].split() for r in runs]
    shared = set.intersection(*map(set, tokens)) if tokens else set()
    return [" ".join(t for t in run_tokens if t not in shared) for run_tokens in tokens]


def _param_labels(runs: Sequence[Run], among: Sequence[Run]) -> List[str]:
    """Each run's `key=value` for the params whose values differ across `among`."""
    keys = sorted({k for r in among for k in r.data.params if not k.startswith(_PER_RUN_PARAMS)})
    differing = [k for k in keys if len({r.data.params.get(k) for r in among}) > 1]
    return [
        " ".join(f"{k}={r.data.params[k]}" for k in differing if k in r.data.params) for r in runs
    ]


def labels(runs: Sequence[Run]) -> List[str]:
    """What tells the runs apart: the sweep overrides that differ, else the params that
    differ, else the run name; repeated labels get the short run id."""
    tagged = [r for r in runs if "sso.overrides" in r.data.tags]
    untagged = [r for r in runs if "sso.overrides" not in r.data.tags]
    found = {r.info.run_id: lab for r, lab in zip(tagged, _override_labels(tagged))}
    found.update({r.info.run_id: lab for r, lab in zip(untagged, _param_labels(untagged, runs))})
    out = [found[r.info.run_id] or r.info.run_name or r.info.run_id[:8] for r in runs]
    return [
        f"{lab} ({r.info.run_id[:8]})" if out.count(lab) > 1 else lab for lab, r in zip(out, runs)
    ]


# --- metrics -------------------------------------------------------------------------------


def iteration_series(client: MlflowClient, run: Run, metrics: Sequence[str]) -> Series:
    """Per-iteration values of the metrics the run logged (step = iteration; a step logged
    twice keeps its latest value)."""
    series: Series = {}
    for metric in metrics:
        if metric in run.data.metrics:
            history = sorted(
                client.get_metric_history(run.info.run_id, metric), key=lambda m: m.timestamp
            )
            series[metric] = {m.step: m.value for m in history}
    return series


def _duration(run: Run) -> str:
    if not run.info.end_time or not run.info.start_time:
        return "-"
    seconds = round((run.info.end_time - run.info.start_time) / 1000)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


# --- writing -------------------------------------------------------------------------------

Row = Dict[str, Optional[object]]  # column -> text, or a final value (None: not logged)


def runs_table(
    study: Study, names: Sequence[str], series: Sequence[Series], final_metrics: Sequence[str]
) -> List[Row]:
    """One row per run: label, status, short run id, duration, final metric values (of the
    metrics some run logged)."""
    final_metrics = [m for m in final_metrics if any(m in s for s in series)]
    with_se = {m for m in final_metrics if any(f"{m}_se" in s for s in series)}

    def finals(s: Series) -> Row:
        row: Row = {}
        for m in final_metrics:
            row[m] = final_value(s, m)
            if m in with_se:  # the 95% half-width beside the value it qualifies
                se = final_value(s, f"{m}_se")
                row[f"{m} ±95%"] = None if se is None else Z95 * se
        return row

    return [
        {
            "label": name,
            "status": run.info.status,
            "run": run.info.run_id[:8],
            "duration": _duration(run),
            **finals(s),
        }
        for run, name, s in zip(study.runs, names, series)
    ]


def _cell(value: Optional[object]) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(rows: Sequence[Row]) -> str:
    return markdown_table(list(rows[0]), [list(map(_cell, row.values())) for row in rows]) + "\n"


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_iterations(
    path: Path, study: Study, names: Sequence[str], series: Sequence[Series], metrics: Sequence[str]
) -> Path:
    """Long format, one row per (run, metric, iteration): easy to load into any tool."""
    rows = [
        (name, run.info.run_id, metric, step, value)
        for run, name, s in zip(study.runs, names, series)
        for metric in metrics
        for step, value in sorted(s.get(metric, {}).items())
    ]
    return _write_csv(path, ["label", "run_id", "metric", "iteration", "value"], rows)


def plot_group(
    path: Path, group: str, metrics: Sequence[str], names: Sequence[str], series: Sequence[Series]
) -> Optional[Path]:
    """`path`: one subplot per metric, one line per run (with 95% error bars where the run
    logged the metric's standard error), all on the group's iteration range so subplots line
    up; None (nothing written) when no run logged any of the metrics."""
    steps = [k for s in series for m in metrics for k in s.get(m, {})]
    if not steps:
        return None
    ncols = min(len(metrics), 3)
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.2 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flat
    handles: Dict[str, Line2D] = {}
    for ax, metric in zip(axes, metrics):
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_xlim(min(steps) - 0.25, max(steps) + 0.25)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        for i, (name, s) in enumerate(zip(names, series)):
            if s.get(metric):
                its = sorted(s[metric])
                se = s.get(f"{metric}_se", {})
                handles[name] = ax.errorbar(
                    its,
                    [s[metric][k] for k in its],
                    yerr=[Z95 * se.get(k, 0.0) for k in its] if se else None,
                    capsize=3,
                    marker="o",
                    color=f"C{i % 10}",
                    linestyle=("-", "--", ":")[i // 10 % 3],
                )[0]
        if not ax.lines:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle(group)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=min(len(handles), 3),
        fontsize=8,
    )
    fig.savefig(path, dpi=100)
    return path


def report(
    client: MlflowClient, experiment_name: str, target: str, out_dir: Path, settings: ReportSettings
) -> List[Path]:
    """Write the report of `target` (sweep id, parent run id or experiment name) to out_dir
    (runs.md, differences.md where two runs logged a metric with its standard error,
    runs.csv, iterations.csv, <group>.png) and, for a sweep when
    `settings.log_to_parent`, log it to the parent run under compare/. Returns the files."""
    study = find_study(client, experiment_name, target)
    plotted = list(dict.fromkeys(m for ms in settings.plots.values() for m in ms))
    wanted = list(dict.fromkeys([*settings.final_metrics, *plotted]))
    wanted += [f"{m}_se" for m in wanted]  # intervals where a metric logs its standard error
    series = [iteration_series(client, run, wanted) for run in study.runs]
    names = labels(study.runs)
    table = runs_table(study, names, series, settings.final_metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "runs.md").write_text(markdown(table))
    paths = [out_dir / "runs.md"]
    diffs = differences(names, series, settings.final_metrics)
    if diffs:
        (out_dir / "differences.md").write_text(markdown(diffs))
        paths.append(out_dir / "differences.md")
    paths += [
        _write_csv(
            out_dir / "runs.csv",
            list(table[0]),  # full precision, "" if missing
            [["" if v is None else v for v in r.values()] for r in table],
        ),
        write_iterations(out_dir / "iterations.csv", study, names, series, plotted),
    ]
    paths += [
        p
        for group, metrics in settings.plots.items()
        if (p := plot_group(out_dir / f"{group}.png", group, metrics, names, series))
    ]
    if study.parent is not None and settings.log_to_parent:
        for path in paths:
            client.log_artifact(study.parent.info.run_id, str(path), ARTIFACT_DIR)
    return paths


def report_sweep(
    client: MlflowClient, tracking: TrackingConfig, sweep_id: str, out_dir: Path
) -> List[Path]:
    """`report` of a sweep with the knobs of conf/compare.yaml: the sweep callback's call."""
    return report(client, tracking.experiment_name, sweep_id, out_dir, default_settings())


# --- CLI -----------------------------------------------------------------------------------


def _client(uri: str) -> MlflowClient:
    """A client on an existing store: MLflow would quietly create an empty sqlite file."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        raise CompareError(f"no MLflow store at {uri} (set tracking.uri)")
    return MlflowClient(uri)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="compare")
def main(cfg: DictConfig) -> None:
    try:
        config = validate(cfg)
        out_dir = Path(config.out_dir)
        paths = report(
            _client(config.tracking.uri),
            config.tracking.experiment_name,
            config.target,
            out_dir,
            config,
        )
    except SSOError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print((out_dir / "runs.md").read_text())
    if (out_dir / "differences.md") in paths:
        print((out_dir / "differences.md").read_text())
    print("\n".join(["wrote:", *(f"  {p}" for p in paths)]))


def bare_target(argv: List[str]) -> List[str]:
    """`compare <target> ...` as `compare target='<target>' ...`: the target is the one
    argument every call needs; quoted, so an id never reads as a number or a sweep."""
    if len(argv) > 1 and "=" not in argv[1] and not argv[1].startswith("-"):
        return [argv[0], f"target='{argv[1]}'", *argv[2:]]
    return argv


if __name__ == "__main__":
    sys.argv = bare_target(sys.argv)
    main()
