"""What a run needs to be reproduced besides its config: the code's git commit, the versions
of the packages that compute it, and the hashes of the data files it read. Recorded as MLflow
tags and as `provenance.json` in the run folder."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional

from ..config import SSOConfig
from ..data.files import FILE_KEYS, key_value
from ..data.records import demo_queries_path

PACKAGES = (
    "sso-exp",
    "torch",
    "transformers",
    "peft",
    "pytorch-lightning",
    "hydra-core",
    "omegaconf",
    "mlflow",
    "numpy",
)
REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state() -> Dict[str, str]:
    """The commit, and whether tracked files differ from it (then the commit alone does not
    reproduce the run)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git.commit": "unknown (not a git checkout)"}
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {"git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def package_versions() -> Dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files(cfg: SSOConfig) -> Dict[str, Path]:
    """The config keys that name data files, with the files they name (the shipped demo
    queries when `data.prompts` is unset)."""
    keys = {k: key_value(cfg, k) for k in FILE_KEYS}
    keys["data.prompts"] = keys["data.prompts"] or demo_queries_path()
    return {k: Path(v) for k, v in keys.items() if v and Path(v).is_file()}


def provenance(cfg: SSOConfig) -> Dict[str, Dict[str, str]]:
    return {
        "git": git_state(),
        "versions": package_versions(),
        "data_sha256": {k: sha256(p) for k, p in data_files(cfg).items()},
    }


def provenance_tags(record: Dict[str, Dict[str, str]]) -> Dict[str, str]:
    """Flat MLflow tags; the commit also under MLflow's own tag, which its UI shows."""
    tags = {f"sso.{k}": v for k, v in record["git"].items()}
    tags.update({f"sso.version.{k}": v for k, v in record["versions"].items()})
    tags.update({f"sso.sha256.{k}": v for k, v in record["data_sha256"].items()})
    if "git.dirty" in record["git"]:  # a real commit
        tags["mlflow.source.git.commit"] = record["git"]["git.commit"]
    return tags
