"""The run context: what every stage of a run shares (config, tokenizer, tracker, run
folder, progress), passed whole so that a stage's parameters are only what is its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..config import SSOConfig
from ..tracking.mlflow_run import RunLogger
from .resume import Progress


@dataclass(frozen=True)
class RunContext:
    cfg: SSOConfig
    tok: Any  # the tokenizer of the model that writes or trains (offline: the generator's)
    logger: RunLogger
    run_dir: Path
    progress: Optional[Progress] = None  # online runs: the stages finished (resume.py)

    def iteration_dir(self, iteration: int) -> Path:
        """Where iteration k's pairs, checkpoints and tables go."""
        return self.run_dir / f"iter_{iteration}"
