"""`odp-async show mod:fn` for a user's own async function: the summary is the first
paragraph of its docstring on one line (however it is wrapped), the description the
paragraphs after it, as a built-in scenario shows them; a function without a docstring
says it has no summary.  Run as a user runs it: a module outside the package, a fresh
process.  The pytest integration names an explored test by the same summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.explore.target import docstring_parts
from tests._usermod import pythonpath_env, write_user_module

SOURCE = '''
from odp_async import sync


async def documented():
    """Two tasks take one lock in turn, wrapped over
    two lines of the summary.

    The description: what a reader should
    know before running it.

    Its second paragraph.
    """
    lock = sync.Mutex()
    async with lock:
        pass


async def bare():
    pass
'''


def _show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> str:
    name = write_user_module(tmp_path, SOURCE, "showme", monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "show", *(a.format(m=name) for a in argv)],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_show_splits_a_functions_docstring_into_summary_and_description(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _show(tmp_path, monkeypatch, "{m}:documented")
    assert out.splitlines() == [
        "documented: Two tasks take one lock in turn, wrapped over two lines of the summary.",
        "The description: what a reader should",
        "know before running it.",
        "",
        "Its second paragraph.",
        "actors: -",
        "expected: clean (no expectation given: any failure is one)",
    ]
    shown = json.loads(_show(tmp_path, monkeypatch, "{m}:documented", "--json"))
    assert shown["summary"] == (
        "Two tasks take one lock in turn, wrapped over two lines of the summary."
    )
    assert shown["description"] == (
        "The description: what a reader should\nknow before running it.\n\nIts second paragraph."
    )


def test_show_of_a_function_without_a_docstring_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _show(tmp_path, monkeypatch, "{m}:bare")
    assert out.splitlines() == [
        "bare: (no summary)",
        "actors: -",
        "expected: clean (no expectation given: any failure is one)",
    ]
    shown = json.loads(_show(tmp_path, monkeypatch, "{m}:bare", "--json"))
    assert (shown["summary"], shown["description"]) == ("", "")


def test_docstring_parts_of_one_line_and_of_none() -> None:
    async def one() -> None:
        """Just a summary."""

    async def none() -> None:
        pass

    assert docstring_parts(one) == ("Just a summary.", "")
    assert docstring_parts(none) == ("", "")
