"""SIGINT and SIGTERM end a run as Stopped, wherever the work is: raised in the handler,
recorded in case Python drops that exception (inside a finalizer), and held back while the
cyclic collector runs finalizers. In a Submitit job so does Submitit's pre-emption and
time-limit signal (USR2): the run is closed, then Submitit's own handler requeues the job."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Tuple

from ..distributed import active
from ..errors import Stopped

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: List[int] = []  # the stop signals this process got inside stop_on_signals
_preempted: List[int] = []  # Submitit's pre-emption signal, once received, until handed on


def preemption_signal() -> Optional[int]:
    """The signal Slurm sends before a time limit or a pre-emption (Submitit asks for it,
    USR2 unless SUBMITIT_PREEMPT_SIGNAL names another) when this process runs a Submitit
    job; None elsewhere."""
    if "SUBMITIT_FOLDER" not in os.environ:  # set by Submitit's job runner
        return None
    from submitit import JobEnvironment

    return JobEnvironment._usr_sig()


def requeue_if_preempted() -> None:
    """Hand a pre-emption this process received, once its run is closed (however its work
    ended: stopped, or a collective failed because another rank stopped first), to
    Submitit's handler, which the run's own stood in for: on the job's first task it
    checkpoints the job (Hydra's launcher resubmits the same job), requeues it and exits;
    on the others it returns."""
    if _preempted:
        signal.raise_signal(_preempted.pop())


def raise_if_stopped() -> None:
    """Stopped, if a stop signal came whose exception never reached the run: raised inside
    a finalizer (the cyclic collector runs them at any time), Python prints and drops it.
    Called at every stage boundary and before a run is called finished."""
    if _received:
        raise Stopped(_received[0])


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Stopped wherever the work is (training included), or at the
    next stage boundary where that exception was dropped. A second SIGINT while the run
    closes acts as Python's default would (Ctrl-C twice); once SIGTERM came, the process
    ignores it from then on, so that the run gets closed: supervisors (torchrun, Slurm)
    send it more than once before the SIGKILL that still ends the process. So does a rank
    of a multi-rank job whose work failed: torchrun stops the ranks outliving a dead one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    preemption = preemption_signal()  # looked up once, not in the handler

    def stop(signum, frame):
        _received.append(signum)
        if signum == preemption:
            _preempted[:] = [signum]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stopped(signum)

    signals = STOP_SIGNALS + ((preemption,) if preemption is not None else ())
    before = {s: signal.signal(s, stop) for s in signals}
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        # a rank outliving a dead one fails its collective, and its launcher SIGTERMs it
        if signal.SIGTERM in _received or (failed and active()):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _received.clear()


@contextmanager
def deferred_stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM handled after the block, not in it: the collector runs
    finalizers, and a handler's exception raised inside one is printed and dropped by
    Python (the run would go on). Only the main thread handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: List[Tuple[int, Any]] = []
    before = {s: signal.signal(s, lambda *got: pending.append(got)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        for signum, frame in pending:
            handler = before[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler != signal.SIG_IGN:
                signal.raise_signal(signum)  # the default action
