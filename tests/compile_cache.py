"""torch.compile's kernel cache of the test session's own (unless TORCHINDUCTOR_CACHE_DIR is
set), for it and every run it starts. Imported by conftest before torch: inductor reads the
setting when torch is imported. The shared default (/tmp/torchinductor_root) outlives runs,
and a kernel an earlier run cached under another vector ISA (ATEN_CPU_CAPABILITY=avx2 on an
AVX-512 CPU, or the reverse) was reused: wrong log-probs, then a crashed test worker."""

import atexit
import os
import shutil
import tempfile

if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    _folder = tempfile.mkdtemp(prefix="sso-exp-inductor-")
    atexit.register(shutil.rmtree, _folder, True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _folder
