"""Data-parallel ranks (docs/distributed.md). Every rank runs the same pipeline on the same
data; each expensive loop (sampling, scoring, judging, answering) works on its own
contiguous share of the items and the shares are gathered back in the items' order, so each
item is worked on once in the whole job and every rank ends up holding every result. Rank 0
alone writes files and tracks the run. torch.distributed is the engine; without a process
group this is one rank and every helper is the identity."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

import torch
import torch.distributed as dist

from .errors import SSOError, Stopped

T = TypeVar("T")


class RankFailed(SSOError):
    """Another rank's share of the work failed; every rank stops instead of waiting."""


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def first_process() -> bool:
    """Whether this is the job's first process, before the process group exists (as
    torchrun and Lightning's launcher name them in the environment)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def local_rank() -> int:
    """This process's index on its node (its GPU), as the launcher set it."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def share(n: int, r: int, w: int) -> slice:
    """Rank r's contiguous block of n items among w ranks (sizes differ by at most one)."""
    return slice(n * r // w, n * (r + 1) // w)


def stream_seed(*key: object) -> int:
    """A 63-bit seed for a random stream named by its key, e.g. (seed, iteration, query
    index, role): the same on every machine and in every process, whatever else ran."""
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, tuple):
        return type(obj)(*map(_cpu, obj)) if hasattr(obj, "_fields") else tuple(map(_cpu, obj))
    return obj


def join(parts: Sequence[Any]) -> Any:
    """Concatenate the ranks' results: lists, tensors, or named tuples of tensors."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(parts))
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(join(field) for field in zip(*parts)))
    return [x for part in parts for x in part]


def gather(obj: T) -> List[T]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out: List[Any] = [None] * world()
    dist.all_gather_object(out, _cpu(obj))
    return out


def broadcast(obj: T) -> T:
    """Rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def _failure(err: Optional[Exception]) -> Optional[str]:
    return None if err is None else f"{type(err).__name__}: {err}"


def on_main(fn: Callable[[], T]) -> T:
    """`fn()` on rank 0 alone; every rank gets its result (rank 0 its own object), or stops
    when it failed instead of waiting for it."""
    if not active():
        return fn()
    result, failure = None, None
    if is_main():
        try:
            result = fn()
        except Exception as err:
            failure = err
    got, error = broadcast((None if failure else result, _failure(failure)))
    if failure is not None:
        raise failure
    if error is not None:
        raise RankFailed(f"rank 0 failed: {error}")
    return result if is_main() else got


def shard_map(fn: Callable[..., Any], *columns: Sequence[Any]) -> Any:
    """`fn` over this rank's share of the aligned columns; every rank gets the results of
    all items, in order. Every rank must call it with the same items."""
    if not active():
        return fn(*columns)
    block = share(len(columns[0]), rank(), world())
    try:
        mine, failure = fn(*(list(c[block]) for c in columns)), None
    except Exception as err:  # the others must not wait for this rank's share forever
        mine, failure = None, err
    parts = gather((mine, _failure(failure)))
    if failure is not None:
        raise failure
    for r, (_, error) in enumerate(parts):
        if error is not None:
            raise RankFailed(f"rank {r} failed: {error}")
    return join([part for part, _ in parts])


# what gloo (and NCCL's socket layer) say when the other end of a collective is gone
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
_processes: List[Tuple[str, int]] = []  # every rank's (host, pid), once the group is up


class RankLost(SSOError):
    """Another rank of the job died (killed, out of memory) while this one worked."""


def note_processes() -> None:
    """Every rank's host and pid, gathered when the job starts, so that a rank outliving
    another can name the one that died."""
    _processes[:] = gather((socket.gethostname(), os.getpid()))


def first_on_host() -> Optional[int]:
    """This host's index among the job's hosts (in rank order) when this rank is the first
    on it, else None (one process: host 0)."""
    hosts = [h for h, _ in _processes] or [socket.gethostname()]
    mine = socket.gethostname()
    return list(dict.fromkeys(hosts)).index(mine) if hosts.index(mine) == rank() else None


def _gone(pid: int) -> bool:
    """Whether the process ended (a zombie not yet reaped by its parent included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def dead_ranks() -> List[int]:
    """The ranks on this host whose process has ended (those on other hosts are unknown)."""
    host = socket.gethostname()
    return [r for r, (h, pid) in enumerate(_processes) if r != rank() and h == host and _gone(pid)]


def lost_rank(dead: List[int], detail: str) -> RankLost:
    """The one message of a rank that outlives `dead` (empty: on another host)."""
    who = f"rank {', '.join(map(str, dead))}" if dead else "another rank"
    return RankLost(
        f"rank {rank()}: {who} of this {world()}-rank job ended (killed, or stopped by an "
        f"error it reported; {detail}); the run is marked FAILED, and the same command "
        "resumes it from its last finished stage"
    )


def outlived(err: BaseException) -> Optional[RankLost]:
    """A rank's failed collective or its stop by the launcher (torchrun stops the ranks that
    outlive a dead one with SIGTERM) when another rank ended, as one message naming it
    (None: another cause)."""
    if not active():
        return None
    if isinstance(err, Stopped):  # the launcher stops the others once it reaped the dead
        dead = dead_ranks()
        return lost_rank(dead, f"this rank was {err}") if dead else None
    text = str(err).splitlines()[0]
    if not (isinstance(err, RuntimeError) and any(s in text for s in PEER_GONE)):
        return None
    return lost_rank(ended_ranks(), text)


def ended_ranks(wait_s: float = 2.0) -> List[int]:
    """The dead ranks of this host, waiting a moment for them: a killed process closes its
    sockets (the peer's collective fails at once) before the kernel marks it ended."""
    deadline = time.monotonic() + wait_s
    dead = dead_ranks()
    while not dead and time.monotonic() < deadline:
        time.sleep(0.05)
        dead = dead_ranks()
    return dead
