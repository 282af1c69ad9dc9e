"""`python tests/faults/pause.py <marker> <target> <n> [sso_exp arguments]`: run
`python -m sso_exp` and, at the n-th call of `target`, write the file `marker` and wait
there for ever: a test that waits for the marker then kills the run knows exactly where
the kill lands. `target` is `module:function` (a module-level name, as the code calls
it) or `replace:<path end>` (the n-th atomic move, os.replace, onto a path ending so)."""

import functools
import importlib
import os
import runpy
import sys
import time
from pathlib import Path

marker, target, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
calls = 0


def pause_at_nth(matches):
    def wrap(real):
        @functools.wraps(real)
        def paused(*args, **kwargs):
            global calls
            if matches(*args):
                calls += 1
                if calls == n:
                    marker.write_text(f"{target} call {n}")
                    while True:
                        time.sleep(1)
            return real(*args, **kwargs)

        return paused

    return wrap


if target.startswith("replace:"):
    end = target.split(":", 1)[1]
    os.replace = pause_at_nth(lambda src, dst, *_: str(dst).endswith(end))(os.replace)
else:
    module, name = target.split(":")
    mod = importlib.import_module(module)
    setattr(mod, name, pause_at_nth(lambda *_: True)(getattr(mod, name)))
sys.argv = ["sso_exp", *sys.argv[4:]]
runpy.run_module("sso_exp", run_name="__main__", alter_sys=True)
