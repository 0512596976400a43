"""A user's module named without its function (``explore mymod``) gets one line that says
it is a module and how to name the function (``mymod:<function>``), exit 2; not the
list of every built-in scenario."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from tests._usermod import pythonpath_env, write_user_module

SOURCE = """
from odp_async import checkpoint


async def main():
    await checkpoint()
"""


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *args],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize("command", ["explore", "show"])
def test_a_module_without_its_function_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    name = write_user_module(tmp_path, SOURCE, "nofn", monkeypatch)
    proc = _cli(tmp_path, command, name)
    assert proc.returncode == ExitCode.USAGE, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"'{name}' is a module, not a scenario" in proc.stderr
    assert f"'{name}:<function>'" in proc.stderr
    assert "registration-race" not in proc.stderr


def test_an_unknown_name_that_is_no_module_still_lists_the_scenarios(tmp_path: Path) -> None:
    proc = _cli(tmp_path, "explore", "no_such_module_22b")
    assert proc.returncode == ExitCode.USAGE
    assert "unknown scenario 'no_such_module_22b'" in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
