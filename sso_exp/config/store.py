"""The schema in Hydra's ConfigStore: `conf/config.yaml` starts from `sso_schema`, so every
option file is merged over the typed defaults; the judges are options of `eval/judge`
made from their dataclasses alone."""

from __future__ import annotations

import secrets
import warnings

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from .cluster import slurm_gpus
from .evaluation import JUDGES
from .schema import SSOConfig


def register() -> None:
    """Idempotent: the CLI, the sweep callback and the tests all call it. `${uid:}` is a
    token drawn once per invocation (cached in the config, which Hydra hands to a sweep's
    jobs), so two runs or sweeps started in the same second get folders of their own."""
    if not OmegaConf.has_resolver("uid"):
        OmegaConf.register_new_resolver("uid", lambda: secrets.token_hex(3), use_cache=True)
    # conf/hydra/launcher/submitit_*.yaml keep the plugin's names, so Hydra merges them over
    # the plugin's typed schema of that name (and warns that this is deprecated; the only
    # other way would be copies of the plugin's defaults, or names of our own)
    warnings.filterwarnings(
        "ignore", r"\s*'hydra/launcher/submitit_\w+' is validated against", UserWarning
    )
    if not OmegaConf.has_resolver("slurm_gpus"):
        OmegaConf.register_new_resolver("slurm_gpus", slurm_gpus)
    cs = ConfigStore.instance()
    cs.store(name="sso_schema", node=SSOConfig)
    for name, node in JUDGES.items():
        cs.store(group="eval/judge", name=name, node=node)
