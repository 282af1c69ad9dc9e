"""The glibc mmap threshold is applied where glibc is, and left alone when unset."""
import sys

import pytest

from sso_exp.heap import set_mmap_threshold


def test_unset_leaves_the_default():
    assert set_mmap_threshold(None) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_threshold_is_applied_on_linux():
    assert set_mmap_threshold(128) is True
