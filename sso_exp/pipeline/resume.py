"""Resumable online runs: a run folder's `state.json` records which stages have finished
(and what they reported), the MLflow run and the training step offset, so that a run killed
at any point, started again with the same command, goes on from its last finished stage.
The folder is locked while a process works in it, so a live run is never taken over."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, List, Optional

from hydra.core.hydra_config import HydraConfig

from ..config import SSOConfig, flatten
from ..distributed import is_main, on_main
from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)
STATE_FILE = "state.json"
# where and how a run starts, not what it computes: a run may go on with another number of
# ranks (its pairs do not depend on it; schedule.batch_size is per rank)
_NOT_COMPARED = ("output_dir", "resume", "trainer.devices", "trainer.num_nodes", "trainer.strategy")
_STATE_KEYS = {  # what a state file must hold, and of which type
    "run_id": (str, type(None)),
    "step_offset": int,
    "stages": dict,
    "finished": bool,
    "config": dict,
}
_DAMAGED = (
    "it records which stages of this run finished. Restore it, or move the folder away; "
    "resume=never starts afresh in it, overwriting its records"
)


def stage_key(iteration: int, name: str) -> str:
    """A stage's key in state.json: `iter_<k>/<name>`."""
    return f"iter_{iteration}/{name}"


def run_identity(cfg: SSOConfig) -> Dict[str, Any]:
    """The flattened config a run folder must match to be resumed."""
    return json.loads(json.dumps(flatten(cfg, skip=_NOT_COMPARED)))


def config_diff(saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    """'key: saved -> now' for every key that differs."""
    keys = sorted(set(saved) | set(now))
    return [
        f"{k}: {saved.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


def _try_lock(run_dir: Path) -> Optional[IO]:
    """An exclusive lock on the folder, or None when a live process holds it (the kernel
    drops a killed process's lock, so a crashed run's folder is free)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


@dataclass
class Progress:
    """The stages an online run has finished, saved after each one (atomically)."""

    run_dir: Path
    identity: Dict[str, Any]
    run_id: Optional[str] = None
    step_offset: int = 0
    stages: Dict[str, Dict[str, float]] = field(default_factory=dict)
    finished: bool = False
    lock: Optional[IO] = field(default=None, repr=False)
    starts: Dict[str, int] = field(default_factory=dict)  # each stage's step offset before it

    @property
    def resumed(self) -> bool:
        return self.run_id is not None

    def __getstate__(self) -> Dict[str, Any]:  # sent to the other ranks without the lock
        return {**self.__dict__, "lock": None}

    def done(self, stage: str) -> bool:
        return stage in self.stages

    def last_iteration(self, name: str) -> Optional[int]:
        """The last iteration whose stage `name` finished (None: no iteration's did)."""
        done = [
            int(key.split("/")[0][len("iter_") :])
            for key in self.stages
            if key.split("/")[1] == name
        ]
        return max(done) if done else None

    def finish(self, stage: str, result: Dict[str, float], step_offset: int) -> None:
        self.starts[stage] = self.step_offset
        self.stages[stage] = {k: float(v) for k, v in result.items()}
        self.step_offset = step_offset
        self.save()

    def forget_from(self, stage: str) -> None:
        """Mark `stage` and every stage finished after it as not done (what it wrote is
        damaged), training steps counted from where it began."""
        later = list(self.stages)[list(self.stages).index(stage) :]
        self.step_offset = self.starts.get(stage, self.step_offset)
        for key in later:
            self.stages.pop(key)
            self.starts.pop(key, None)
        self.save()

    def save(self) -> None:
        if not is_main():  # rank 0 alone writes; the others follow its copy
            return
        state = {
            "run_id": self.run_id,
            "step_offset": self.step_offset,
            "stages": self.stages,
            "finished": self.finished,
            "config": self.identity,
            "starts": self.starts,
        }
        tmp = self.run_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.run_dir / STATE_FILE)

    def release(self) -> None:
        """Unlock the folder (the next job of a sweep may look at it)."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    @classmethod
    def from_state(
        cls, run_dir: Path, identity: Dict[str, Any], state: Dict[str, Any], lock: Optional[IO]
    ) -> Progress:
        return cls(
            run_dir,
            identity,
            state["run_id"],
            state["step_offset"],
            state["stages"],
            state["finished"],
            lock,
            state.get("starts", {}),
        )


def read_state(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The folder's state.json, None when it has none; a damaged one is a DataError naming
    the file (guessing would start afresh over the run's work or take the wrong stages)."""
    path = run_dir / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read ({err}); {_DAMAGED}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno}: not JSON ({err.msg}); {_DAMAGED}") from None
    bad = [
        k
        for k, kind in _STATE_KEYS.items()
        if not isinstance(state, dict) or not isinstance(state.get(k), kind)
    ]
    if bad:
        raise DataError(f"{path}: missing or mistyped {', '.join(bad)}; {_DAMAGED}")
    return state


def _resumable(run_dir: Path, identity: Dict[str, Any]) -> Optional[Progress]:
    """The folder's progress when it holds an unfinished run of this config and no live
    process works in it (a folder whose state is damaged is passed over, saying so)."""
    try:
        state = read_state(run_dir)
    except DataError as err:
        log.warning("not resuming from %s: %s", run_dir, err)
        return None
    if not state or state["finished"] or state["config"] != identity:
        return None
    lock = _try_lock(run_dir)
    return Progress.from_state(run_dir, identity, state, lock) if lock else None


def folder_named() -> bool:
    """The run folder was named on the command line (hydra.run.dir, output_dir), not made
    from the clock: the folders beside it are other runs, never this one's to take over."""
    if not HydraConfig.initialized():
        return False
    overrides = HydraConfig.get().overrides
    keys = [a.split("=", 1)[0].lstrip("+~") for a in [*overrides.hydra, *overrides.task]]
    return "hydra.run.dir" in keys or "output_dir" in keys


def _siblings(out_dir: Path) -> List[Path]:
    """The folders beside this invocation's (earlier runs), newest first."""
    siblings = [p for p in out_dir.parent.glob("*") if p.is_dir() and p != out_dir]
    return sorted(siblings, key=lambda p: p.stat().st_mtime, reverse=True)


def open_progress(cfg: SSOConfig) -> Progress:
    """The run folder to work in: with `resume=auto` this invocation's folder when it holds
    an unfinished run of this config (a fixed hydra.run.dir; a finished one is refused, its
    trained policies exist nowhere else), else, for a clock-named folder, the newest
    unfinished, unlocked folder of the same config beside it (a killed run started again
    with the same command); with
    `resume=<folder>` that folder (its config must match); with `resume=never`, or nothing
    to resume, this invocation's own folder, fresh. Rank 0 decides, locks the folder and
    writes its state; the other ranks receive its progress."""
    return on_main(lambda: _open(cfg))


def _open(cfg: SSOConfig) -> Progress:
    identity, out_dir = run_identity(cfg), Path(cfg.output_dir)
    progress = _find(cfg, identity, out_dir)
    if progress.resumed:
        log.info(
            "resuming %s (MLflow run %s) after its stages %s",
            progress.run_dir,
            progress.run_id,
            ", ".join(progress.stages) or "(none)",
        )
    else:
        progress.save()
    return progress


def _find(cfg: SSOConfig, identity: Dict[str, Any], out_dir: Path) -> Progress:
    if cfg.resume not in ("auto", "never"):
        return _explicit(Path(cfg.resume), identity)
    if cfg.resume == "auto":
        if read_state(out_dir):  # a fixed run folder: the same run, or refuse
            return _explicit(out_dir, identity, own=True)
        for run_dir in [] if folder_named() else _siblings(out_dir):
            progress = _resumable(run_dir, identity)
            if progress:
                return progress
    lock = _try_lock(out_dir)
    if lock is None:
        raise ConfigError(f"config key 'output_dir': {out_dir} is in use by a running job")
    return Progress(out_dir, identity, lock=lock)


def _explicit(run_dir: Path, identity: Dict[str, Any], own: bool = False) -> Progress:
    """The progress of a named folder (`own`: this invocation's); a finished run or a
    different config is refused, naming the keys."""
    saved = read_state(run_dir)
    if saved is None:
        raise ConfigError(
            f"config key 'resume': {run_dir} holds no resumable run (no {STATE_FILE})"
        )
    if saved["finished"]:
        raise ConfigError(
            f"config key '{'output_dir' if own else 'resume'}': the run in {run_dir} has "
            "finished; starting again there would overwrite its trained policies. Name another "
            "folder (hydra.run.dir=...), or pass resume=never to start afresh in it"
        )
    diff = config_diff(saved["config"], identity)
    if diff:
        raise ConfigError(
            f"config key 'resume': {run_dir} was run with a different config; "
            f"differing keys:\n  " + "\n  ".join(diff)
        )
    lock = _try_lock(run_dir)
    if lock is None:
        key = "output_dir" if own else "resume"
        raise ConfigError(f"config key '{key}': {run_dir} is in use by a running job")
    return Progress.from_state(run_dir, identity, saved, lock)
