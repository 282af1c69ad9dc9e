"""The CLI's config composed in-process (scripts, notebooks, tests): the same `conf/` and
overrides as `python -m sso_exp`, validated the same way."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from .schema import SSOConfig, validate
from .store import register

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose(*overrides: str) -> SSOConfig:
    """The validated config for `overrides`. Hydra's global config is set to the composed
    one, so `${hydra:...}` values resolve as in a run."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return validate(cfg)
