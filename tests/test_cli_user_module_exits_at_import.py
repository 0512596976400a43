"""A user's module that calls ``sys.exit()`` while it is imported gets one line naming
the call, exit 2: before, the CLI ended as the module asked, silently, with exit 0 (read
as a pass) or 3 (read as an internal error).  The same for `explore()` from Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from tests._usermod import forget, pythonpath_env, write_user_module

SOURCE = """
import sys

from odp_async import checkpoint


async def main():
    await checkpoint()


sys.exit({code})
"""


@pytest.mark.parametrize(("code", "shown"), [("0", "0"), ("3", "3"), ("'bye'", "'bye'")])
@pytest.mark.parametrize("json", [False, True])
def test_sys_exit_at_import_is_a_one_line_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, shown: str, json: bool
) -> None:
    name = write_user_module(tmp_path, SOURCE.format(code=code), "exits", monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:main"]
        + (["--json"] if json else []),
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == ExitCode.USAGE, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"importing module '{name}'" in proc.stderr
    assert f"called sys.exit({shown})" in proc.stderr


def test_sys_exit_at_import_from_python_is_invalid_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, SOURCE.format(code="0"), "exits_api", monkeypatch)
    try:
        with pytest.raises(InvalidArgument, match=r"called sys\.exit\(0\)"):
            explore(f"{name}:main", schedules=5)
    finally:
        forget(name)
