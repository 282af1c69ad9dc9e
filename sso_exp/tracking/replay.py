"""`python -m sso_exp.tracking.replay <run folder>`: send the MLflow calls a run buffered
while its tracking server was away (tracking.on_error=buffer) once the server answers; a
resumed run replays them by itself."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ..config import TrackingConfig
from ..errors import DataError, SSOError
from .mlflow_run import BUFFER_FILE, RunLogger, http_budget


def replay(run_dir: Path) -> int:
    """The number of calls still waiting (0: all sent)."""
    buffer, config = run_dir / BUFFER_FILE, run_dir / "config.yaml"
    if not buffer.is_file() or not config.is_file():
        raise DataError(f"{run_dir}: no {BUFFER_FILE} beside a config.yaml: nothing to replay")
    tracking = TrackingConfig(**OmegaConf.to_container(OmegaConf.load(config).tracking))
    http_budget(tracking)
    RunLogger(tracking, buffer).replay()  # the calls name their run: none is made here
    return 0 if not buffer.is_file() else 1


def main(argv: list) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(argv) != 1:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    try:
        return replay(Path(argv[0]))
    except SSOError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
