"""`python -m sso_exp [group=option ...] [key=value ...]`: the one entry point."""
from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from . import vllm_sampling
from .config import ConfigError, SSOError, validate
from .pipeline.offline import run_offline
from .pipeline.online import run_online
from .pipeline.evaluate import run_eval
from .pipeline.reward import run_rm, run_rm_score

log = logging.getLogger("sso_exp")
MODES = {"online": run_online, "offline": run_offline, "rm": run_rm, "rm_score": run_rm_score,
         "eval": run_eval}


def run(cfg: DictConfig) -> None:
    try:
        config = validate(cfg)
    except OmegaConfBaseException as err:  # wrong type, unknown or missing key
        raise ConfigError(str(err)) from None
    if config.generation.backend == "vllm":
        vllm_sampling.check_available()  # before any work
    MODES[config.mode.name](config)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except SSOError as err:
        log.error("%s", err)
        sys.exit(2)


if __name__ == "__main__":
    main()
