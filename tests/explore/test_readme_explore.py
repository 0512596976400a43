"""The README's "Explore your own code" snippet runs as written, from a user's module."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import runpy
import subprocess
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
    monkeypatch.chdir(tmp_path)  # the snippet writes its HTML report here
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            module = importlib.import_module(name)  # as a replay imports it: no search
        assert out.getvalue() == ""
        assert not (tmp_path / "lost-deposit.html").exists()
        with contextlib.redirect_stdout(out):  # as `python -m NAME` runs it
            ran = runpy.run_module(name, run_name="__main__", alter_sys=True)
    finally:
        sys.modules.pop(name, None)
    printed = out.getvalue()
    assert "AssertionError: lost deposit: 10" in printed
    assert "replay: odp-async replay odp2." in printed
    assert ran["result"].failure.verdict.value == "found"
    assert callable(module.two_deposits)
    page = (tmp_path / "lost-deposit.html").read_text()
    assert "lost deposit: 10" in page
    assert "seen" in page  # a task's variable, drawn at its steps


@pytest.mark.parametrize("how", ["script", "module"])
def test_the_snippet_prints_what_its_comment_says(tmp_path: Path, how: str) -> None:
    """Run as ``python FILE`` (in ``__main__``: no token, and the failure says why) and
    as ``python -m NAME`` (a token), in a fresh process each, as the comment says
    (new-user trial 20c, f7: the comment promised a token to a script)."""
    name = "readme_explore_own"
    (tmp_path / f"{name}.py").write_text(snippet("Explore your own code"))
    argv = [str(tmp_path / f"{name}.py")] if how == "script" else ["-m", name]
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # The comment: what the output starts with (up to its first "..."), then a quoted
    # line for each way to run it
    comment = " ".join(
        line.strip().lstrip("# ")
        for line in snippet("Explore your own code").splitlines()
        if line.strip().startswith("#")
    )
    start = comment.split(" ...", 1)[0]
    assert start.startswith("found at schedule 1 (found by pct), shrunk to"), comment
    assert out.startswith(start), (start, out)
    assert "lost deposit: 10" in out
    assert "lost deposit: 10" in (tmp_path / "lost-deposit.html").read_text()  # no token needed
    token_line, no_token_line = re.findall(r'"([^"]*?)\.\.\.+"', comment)
    assert "python -m NAME" in comment
    assert "python FILE" in comment
    if how == "script":
        assert f"\n{no_token_line}" in out, (no_token_line, out)
        assert "is defined in the __main__ script" in out
        assert token_line not in out
    else:
        assert f"\n{token_line}" in out, (token_line, out)
        assert no_token_line not in out
