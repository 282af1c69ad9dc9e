"""`python tests/faults/inject.py <path end> <n> [sso_exp arguments]`: run `python -m sso_exp`
with the n-th atomic write (os.replace) to a path ending so failing as a full disk does
(ENOSPC), as a fault-injection test's subject."""

import errno
import os
import runpy
import sys

name, n = sys.argv[1], int(sys.argv[2])
seen = 0
real_replace = os.replace


def replace(src, dst, *args, **kwargs):
    global seen
    if str(dst).endswith(name):
        seen += 1
        if seen == n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
    return real_replace(src, dst, *args, **kwargs)


os.replace = replace
sys.argv = ["sso_exp", *sys.argv[3:]]
runpy.run_module("sso_exp", run_name="__main__", alter_sys=True)
