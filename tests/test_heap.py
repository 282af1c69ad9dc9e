"""The glibc thresholds are applied where glibc is, and left alone when unset."""
import sys

import pytest

from sso_exp.heap import set_malloc


def test_unset_leaves_the_defaults():
    assert set_malloc(None, None) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_thresholds_are_applied_on_linux():
    assert set_malloc(128) is True
    assert set_malloc(32768, 4194304) is True
