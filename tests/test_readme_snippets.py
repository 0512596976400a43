"""Every Python snippet in README.md is run by a test.

The sections listed in `RUN_ELSEWHERE` have their own tests (named there); the
self-contained snippets of the rest run here, each in a fresh process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

#: section heading -> the test file that runs its snippets
RUN_ELSEWHERE = {
    "## A quick tour": "tests/report/test_text_width_and_cli.py",
    "### Your own protocol from the command line": "tests/test_cli_user.py",
    "### Protocol guide: lifetimes, subscribers, the failure path, deferred work, unlocked "
    "windows": "tests/model/test_readme_guide.py",
    "### Explore your own code": "tests/explore/test_readme_explore.py",
    "### The default portfolio, a time budget, a minimal shrink": (
        "tests/explore/test_portfolio.py"
    ),
    "## Explored tests in pytest (the plugin)": "tests/test_readme_plugin_sections.py",
    "## Beyond one machine": "tests/explore/test_dask_processes.py",
    "### DPOR over the ODP model: tracked state": "tests/test_tracked.py",
    "### Implicit ODP: children made on fault, freed by deferred work": (
        "tests/model/test_implicit_odp.py"
    ),
    "### A big world, set up once": "tests/model/test_world_snapshot.py",
}
RUN_HERE = ("## The runtime seam, on trio, on asyncio, and in the sim", "## The primitives")


def _python_blocks() -> list[tuple[str, str]]:
    """(the heading above it, the code) for each ```python block."""
    blocks = []
    heading = ""
    lines = README.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"#{2,4} ", line):
            heading = line
        if line.strip() == "```python":
            j = lines.index("```", i + 1)
            blocks.append((heading, "\n".join(lines[i + 1 : j])))
            i = j
        i += 1
    return blocks


def test_every_python_snippet_has_a_test() -> None:
    for heading, _ in _python_blocks():
        if heading in RUN_HERE:
            continue
        assert heading in RUN_ELSEWHERE, f"no test runs the snippet under {heading!r}"
        assert "README" in (ROOT / RUN_ELSEWHERE[heading]).read_text()


@pytest.mark.parametrize("heading", RUN_HERE)
def test_the_snippets_run(heading: str, tmp_path: Path) -> None:
    codes = [code for h, code in _python_blocks() if h == heading]
    assert codes, heading
    for code in codes:
        script = tmp_path / "snippet.py"
        script.write_text(code)
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
