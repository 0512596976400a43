"""The README's "Explore your own code" snippet runs as written, from a user's module."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet(section: str) -> str:
    text = README.read_text()
    body = text.split(f"\n### {section}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, re.S)
    assert len(blocks) == 1, f"expected one python block in {section!r}"
    return blocks[0]


def test_the_explore_your_own_code_snippet_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "readme_explore_your_own_code"
    (tmp_path / f"{name}.py").write_text(snippet("Explore your own code"))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            module = importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)
    printed = out.getvalue()
    assert "AssertionError: lost deposit: 10" in printed
    assert "replay: odp-async replay odp2." in printed
    assert module.result.failure.verdict.value == "found"
