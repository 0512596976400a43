"""Every Python snippet of the README's protocol guide runs, as written, in a fresh
process (a user's script: nothing of the test's imports leaks into it)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Protocol guide"


def _snippets() -> list[str]:
    text = README.read_text()
    start = text.index(HEADING)
    end = text.index("\n## ", start)
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def test_the_guide_has_its_three_snippets() -> None:
    assert len(_snippets()) == 3


@pytest.mark.parametrize("index", range(3))
def test_snippet_runs(index: int, tmp_path: pathlib.Path) -> None:
    script = tmp_path / f"snippet{index}.py"
    script.write_text(_snippets()[index])
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
