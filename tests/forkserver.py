"""`python -m <module> <args>` (or `python <script.py> <args>`) for the suite, without
paying ~10 s of imports each time.

A command-line test must run the job as a user does: its own process, argv, environment,
working folder, no stdin, its exit code and stderr. Most of such a process's time on a
2-core machine is importing torch, Lightning, transformers and MLflow. A server (this file
run as a script, one per test worker) imports them once and forks a fresh process for
every command, so each job still starts from a clean interpreter (nothing of one job is
seen by the next) but skips the imports. The server never computes: a process that has
run OpenMP work must not fork, one that has only imported may.

Protocol: a JSON request a line on the server's stdin ({module, args, env, cwd, out,
err}); the server answers "0" once ready, then for each request the child's pid, then its
exit code once it ends (negative: the signal that ended it, as `subprocess` reports it).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import runpy
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "pytorch_lightning",
    "mlflow",
    "sso_exp.config",  # not sso_exp.__main__: runpy runs that as __main__, once
    "sso_exp.pipeline.online",
    "sso_exp.pipeline.offline",
    "sso_exp.pipeline.reward",
    "sso_exp.pipeline.evaluate",
)


def child(request: dict) -> int:
    """Become `python -m module args` in this fresh process; its exit code. The caller
    exits with it through the interpreter's own shutdown (threads joined, atexit run, as
    multiprocessing and joblib's workers need)."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, request["out"]), (2, request["err"])):
        if fd == 2 and path == request["out"]:
            os.dup2(1, 2)  # one file, one offset: 2>&1
        else:
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [request["module"], *request["args"]]
    try:
        if request["module"].endswith(".py"):  # `python script.py`
            runpy.run_path(request["module"], run_name="__main__")
        else:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def serve() -> None:
    sys.path[0] = os.getcwd()  # the checkout under test, as the child's `-m` sees it
    for name in PRELOAD:
        importlib.import_module(name)
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints must not mix with replies
    reply.write("0\n")
    reply.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            sys.exit(child(request))
        reply.write(f"{pid}\n")
        reply.flush()
        _, status = os.waitpid(pid, 0)
        reply.write(f"{os.waitstatus_to_exitcode(status)}\n")
        reply.flush()


@functools.cache
def _server(cwd: str) -> subprocess.Popen:
    """This test worker's server, started at its first command."""
    proc = subprocess.Popen(
        [sys.executable, __file__],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    atexit.register(proc.kill)
    assert _line(proc, time.monotonic() + 300) == 0, "the fork server did not start"
    return proc


def _line(proc: subprocess.Popen, deadline: float) -> int:
    """The server's next line, read a byte at a time (a buffered read could take in the line
    after it, which select would then wait for in vain)."""
    fd, line = proc.stdout.fileno(), b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError
        byte = os.read(fd, 1)
        assert byte, "the fork server ended"
        line += byte
    return int(line)


class Job:
    """One command on the server, like a `subprocess.Popen`: stdout and stderr go to
    temporary files, or both to `log` (which a test can read while the job runs)."""

    def __init__(self, module: str, args: tuple, cwd: Path, log: Optional[Path] = None):
        self.args, self.returncode = [module, *args], None
        self.folder = None if log else Path(tempfile.mkdtemp(prefix="sso-exp-job-"))
        self.out, self.err = (log, log) if log else (self.folder / "out", self.folder / "err")
        self.server = _server(str(cwd))
        env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
        files = dict(out=str(self.out), err=str(self.err))
        request = dict(module=module, args=args, env=env, cwd=str(cwd), **files)
        self.server.stdin.write(json.dumps(request) + "\n")
        self.pid = _line(self.server, time.monotonic() + 60)

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            try:
                self.returncode = _line(self.server, time.monotonic())
            except TimeoutError:
                pass
        return self.returncode

    def wait(self, timeout: float) -> subprocess.CompletedProcess:
        """Its exit code and output; killed past `timeout` seconds."""
        if self.returncode is None:
            try:
                self.returncode = _line(self.server, time.monotonic() + timeout)
            except TimeoutError:
                os.kill(self.pid, signal.SIGKILL)
                _line(self.server, time.monotonic() + 30)
                raise subprocess.TimeoutExpired(self.args, timeout) from None
        out, err = self.out.read_text(), self.err.read_text()
        if self.folder:
            shutil.rmtree(self.folder)
        return subprocess.CompletedProcess(self.args, self.returncode, out, err)


if __name__ == "__main__":
    serve()
