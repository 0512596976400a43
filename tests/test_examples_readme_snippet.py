"""examples/README.md's Python snippet runs as a user copies it, from any directory (it
named ``examples/registration-race.toml``, which exists only in the source tree's root:
a new user's copy failed elsewhere)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_snippet_runs_outside_the_source_tree(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "README.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, re.S)
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("found {'setup.0': 'ok'"), last
    assert "'dma.0': 'ok'}" in last
    assert "  madvise:" in done.stdout  # the description
