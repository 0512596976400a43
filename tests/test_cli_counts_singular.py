"""The CLI counts in words a reader would write: "1 schedule", "1 step", "1 failing
schedule" (a trial read "found after 1 schedules" and "(1 schedules)..."), for a user's
own function from a module outside the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from odp_async.cli import main
from tests._usermod import forget, write_user_module

SOURCE = """
async def one_step():
    pass


async def always_fails():
    raise AssertionError("no")
"""


def test_one_schedule_and_one_step_are_singular(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = write_user_module(tmp_path, SOURCE, "singular", monkeypatch)
    try:
        assert main(["explore", f"{name}:one_step", "--schedules", "1"]) == 0
        out, err = capsys.readouterr()
        assert "exploring one_step with portfolio (1 schedule)..." in err
        assert out.splitlines()[0].startswith("one_step: clean - 1 schedule (1 step, ")
        code = main(["explore", f"{name}:always_fails", "--schedules", "1", "--all-failures"])
        out, err = capsys.readouterr()
        assert code == 1, err
        assert "1 failing schedule: 1" in out.splitlines(), out
    finally:
        forget(name)
