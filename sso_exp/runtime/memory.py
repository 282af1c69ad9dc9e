"""glibc's heap, for speed or for peak memory on Linux. By default glibc serves blocks below
an adaptive mmap threshold (it grows to 32 MB) from arenas it trims now and then, and maps
bigger ones afresh each time, so a training step page-faults gigabytes. Two knobs: a low
fixed mmap threshold gives every block above it back when freed (least RSS, slowest: each
step faults its pages in again); the 32 MB maximum with a high trim
threshold keeps freed memory for reuse (fewest page faults).

Between stages `release_memory` hands back what a stage left: a finished Trainer, its
module and optimizer state sit in reference cycles until the cyclic collector runs, and
glibc keeps the freed heap (gigabytes after a training run) unless asked to trim it. A run
keeps the libraries it imported out of those collections (`imports_frozen`)."""

from __future__ import annotations

import ctypes
import gc
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from .signals import deferred_stop_signals

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def trim_heap() -> bool:
    """Give glibc's free heap pages back to the system (no collection); False without glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@contextmanager
def imports_frozen() -> Iterator[None]:
    """The objects alive at its start (the libraries a run imports: torch, Lightning and
    MLflow make hundreds of thousands) kept out of the cyclic collector's scans for the
    block, so each collection, release_memory's and Python's own, walks only what the run
    made, not the imports again each time."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def release_memory() -> bool:
    """Collect unreachable cycles and give glibc's free heap back to the system; False
    where there is no glibc to trim."""
    with deferred_stop_signals():
        gc.collect()
    return trim_heap()


def set_malloc(mmap_threshold_kb: Optional[int], trim_threshold_kb: Optional[int] = None) -> bool:
    """Apply the thresholds that are set (None: glibc's default); False where there is no
    glibc or nothing to set."""
    libc = _libc()
    if libc is None or (mmap_threshold_kb is None and trim_threshold_kb is None):
        return False
    ok = True
    for param, kb in ((M_MMAP_THRESHOLD, mmap_threshold_kb), (M_TRIM_THRESHOLD, trim_threshold_kb)):
        if kb is not None:
            ok = bool(libc.mallopt(param, int(kb) * 1024)) and ok
    return ok
