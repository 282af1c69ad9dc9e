"""The glibc thresholds are applied where glibc is, and left alone when unset. mallopt's
settings cannot be read back or undone, so the applying runs in a child process. Releasing
memory collects what reference cycles hold, and a stop signal is not lost in it. Importing
the package asks torch's allocator for huge-page-aligned blocks unless the user chose."""

import gc
import os
import signal
import subprocess
import sys
import weakref

import pytest
import torch

from sso_exp.config.training import MALLOPT_MAX_KB
from sso_exp.runtime.memory import imports_frozen, release_memory, set_malloc


def test_unset_leaves_the_defaults():
    assert set_malloc(None, None) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_thresholds_are_applied_on_linux():
    code = (
        "from sso_exp.runtime.memory import set_malloc; "
        f"assert set_malloc(128) and set_malloc(32768, {MALLOPT_MAX_KB})"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize("chosen, seen", [(None, "1"), ("0", "0")])
def test_the_package_asks_for_huge_page_blocks_unless_told_not_to(chosen, seen):
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if chosen is not None:
        env["THP_MEM_ALLOC_ENABLE"] = chosen
    code = (
        "import sys, os, sso_exp; print(os.environ['THP_MEM_ALLOC_ENABLE'], 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == [seen, "False"]  # set before torch, which reads it once


def test_release_memory_frees_what_only_a_cycle_holds():
    class Node:
        pass

    was_enabled = gc.isenabled()
    gc.disable()  # so that only release_memory can collect the cycle
    try:
        node = Node()
        node.self, node.weights = node, torch.zeros(1024)
        held = weakref.ref(node)
        del node
        assert held() is not None
        assert release_memory() is sys.platform.startswith("linux")
        assert held() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_run_collects_what_it_made_but_not_what_was_there_before():
    """Inside imports_frozen a cycle made in the block is still freed; the objects from
    before are left out of collections, and are collectable again after the block."""

    class Node:
        pass

    was_enabled = gc.isenabled()
    gc.disable()  # so that only release_memory collects
    try:
        before = Node()
        before.self = before
        was_there = weakref.ref(before)
        del before
        with imports_frozen():
            assert gc.get_freeze_count() > 0
            made = Node()
            made.self = made
            made_here = weakref.ref(made)
            del made
            release_memory()
            assert made_here() is None
            assert was_there() is not None
        assert gc.get_freeze_count() == 0
        release_memory()
        assert was_there() is None
    finally:
        if was_enabled:
            gc.enable()


class Stop(Exception):
    pass


def test_a_stop_signal_during_collection_is_raised_not_ignored():
    """A finalizer run by the collection receives SIGTERM: the handler's exception comes
    out of release_memory, where inside the finalizer Python would print and drop it."""

    def stop(signum, frame):
        raise Stop

    class Signals:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)

    was_enabled, before = gc.isenabled(), signal.signal(signal.SIGTERM, stop)
    gc.disable()
    try:
        node = Signals()
        node.self = node
        del node
        with pytest.raises(Stop):
            release_memory()
    finally:
        signal.signal(signal.SIGTERM, before)
        if was_enabled:
            gc.enable()
