"""The schema in Hydra's ConfigStore: `conf/config.yaml` starts from `sso_schema`, so every
option file is merged over the typed defaults; the judges are options of `eval/judge`
made from their dataclasses alone."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from .evaluation import JUDGES
from .schema import SSOConfig


def register() -> None:
    """Idempotent: the CLI, the sweep callback and the tests all call it."""
    cs = ConfigStore.instance()
    cs.store(name="sso_schema", node=SSOConfig)
    for name, node in JUDGES.items():
        cs.store(group="eval/judge", name=name, node=node)
