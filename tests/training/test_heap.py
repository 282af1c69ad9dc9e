"""The glibc thresholds are applied where glibc is, and left alone when unset. mallopt's
settings cannot be read back or undone, so the applying runs in a child process."""

import subprocess
import sys

import pytest

from sso_exp.config.training import MALLOPT_MAX_KB
from sso_exp.training.heap import set_malloc


def test_unset_leaves_the_defaults():
    assert set_malloc(None, None) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_thresholds_are_applied_on_linux():
    code = (
        "from sso_exp.training.heap import set_malloc; "
        f"assert set_malloc(128) and set_malloc(32768, {MALLOPT_MAX_KB})"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
