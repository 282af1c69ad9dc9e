"""A rank that outlives another ends the job in one message, before a launcher's own
watchdog can SIGKILL it (Lightning's kills rank 0 within 5 s of a dead child): each rank
polls the processes of the ranks on its host and, when one has ended, closes the run
FAILED, names that rank, says how to resume, and exits 2. A failed collective or the
launcher's SIGTERM may tell the main thread first: whichever comes first says it, once."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from ..distributed import RankLost, dead_ranks, lost_rank

POLL_S = 0.1  # a poll costs a kill(pid, 0) and a /proc read per rank
_saying = threading.Lock()  # held by the thread that ends the job for a lost rank
_watching = threading.Event()


def claim_or_wait() -> None:
    """Return when this thread is the one to say the loss; if the watchdog is saying it,
    wait for it to end the process."""
    if not _saying.acquire(blocking=False):
        time.sleep(60)


def watch_ranks(on_loss: Callable[[RankLost], None]) -> None:
    """Poll the ranks of this host until `stop_watching`; on the first that ended,
    `on_loss` (close the run, say it) and exit 2."""
    _watching.set()

    def watch() -> None:
        while _watching.is_set():
            dead = dead_ranks()
            if dead and _watching.is_set() and _saying.acquire(blocking=False):
                on_loss(lost_rank(dead, "its process ended"))
                os._exit(2)
            time.sleep(POLL_S)

    threading.Thread(target=watch, daemon=True, name="rank-watchdog").start()


def stop_watching() -> None:
    """This rank's work has ended (done, or failing with its own message): a rank that
    exits from now on is no loss to report."""
    _watching.clear()
