"""Errors a user can fix. The CLI prints their message (exit 2), never a traceback, so each
one names what to change: a config key, or a file and line."""

from __future__ import annotations

import errno
from typing import Optional

# writes the machine refuses: a full disk or quota, a read-only or forbidden folder
_REFUSED_WRITES = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class SSOError(Exception):
    """An error the user can fix."""


class ConfigError(SSOError, ValueError):
    """A config value that cannot work; the message names the key."""


class DataError(SSOError, ValueError):
    """Bad input data; the message names the file and line."""


class NonFiniteTraining(SSOError):
    """Training produced NaN or infinite gradients or weights; nothing of it was saved."""


class Stopped(BaseException):
    """SIGINT, SIGTERM (a scheduler pre-empting the job) or, in a Submitit job, its
    pre-emption and time-limit signal arrived: the run is closed as KILLED and can be
    resumed. A BaseException that is not KeyboardInterrupt, so Lightning
    passes it on after its teardown (it turns Ctrl-C into an exit of its own)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def refused_write(err: OSError) -> Optional[SSOError]:
    """A write the machine refused, as one message naming the file (None: another error)."""
    if err.errno not in _REFUSED_WRITES:
        return None
    return SSOError(
        f"{err.filename or 'a file'}: {err.strerror}. Everything written before it stays; "
        "make room (or fix the folder's permissions) and run the same command to go on"
    )


def require(ok: bool, key: str, msg: str) -> None:
    """Raise a ConfigError naming `key` unless `ok`."""
    if not ok:
        raise ConfigError(f"config key '{key}': {msg}")


def require_choice(value: str, choices: tuple, key: str) -> None:
    """`value` must be one of `choices`; an interpolation (the schema's default naming the
    option chosen, e.g. ${hydra:runtime.choices.loss}) is checked once resolved."""
    if not value.startswith("${"):
        require(value in choices, key, f"'{value}' is not one of {', '.join(choices)}")
