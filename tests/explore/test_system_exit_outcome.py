"""A `SystemExit` raised by the program under test (``sys.exit(7)`` in a task) is the
program's failure: an ``error`` violation naming it, replayable by its token; never the
explorer's own exit (``odp-async explore`` used to exit 7 with no report, and `check`
re-raised it).  A `KeyboardInterrupt` the program raises itself is its error too; the
user's Ctrl-C (told apart by the explorer's SIGINT handler, `CtrlC`) stops the
exploration (not an outcome).  Tried on a user's own module through the API and the CLI
in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import check, explore
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER_SOURCE = """
import sys

from odp_async import checkpoint, task_group


async def root_exits():
    await checkpoint("before")
    raise SystemExit(7)


async def child_exits():
    state = {"n": 0}

    async def worker():
        await checkpoint("work")
        state["n"] += 1

    async def quitter():
        await checkpoint("look")
        if state["n"] == 0:
            sys.exit(7)

    async with task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(quitter)


async def interrupted():
    await checkpoint("before")
    raise KeyboardInterrupt


async def ctrl_c():
    from odp_async._runtime.interrupts import CtrlC

    await checkpoint("before")
    raise CtrlC
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_sysexit")


@pytest.mark.parametrize("fn", ["root_exits", "child_exits"])
def test_check_reports_a_system_exit_as_an_error(user: ModuleType, fn: str) -> None:
    result = check(f"{user.__name__}:{fn}", schedules=200)
    assert result.failure is not None
    assert result.failure.violation.kind == "error"
    assert "SystemExit: 7" in result.failure.describe()
    assert result.failure.token is not None


def test_a_programs_own_keyboard_interrupt_is_its_error(user: ModuleType) -> None:
    result = explore(f"{user.__name__}:interrupted", schedules=10)
    assert result.failure is not None
    assert result.failure.violation.kind == "error"
    assert "KeyboardInterrupt" in result.failure.violation.detail


def test_ctrl_c_is_still_the_users(user: ModuleType) -> None:
    from odp_async.explore import ExploreInterrupted

    with pytest.raises(ExploreInterrupted):
        explore(f"{user.__name__}:ctrl_c", schedules=10)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )


@pytest.mark.parametrize("fn", ["root_exits", "child_exits"])
def test_the_cli_reports_it_and_the_token_replays_it(
    user: ModuleType, tmp_path: Path, fn: str
) -> None:
    proc = _cli(tmp_path, "explore", f"{user.__name__}:{fn}", "--schedules", "200", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] != "clean"
    assert "SystemExit: 7" in json.dumps(data)
    token = data["failure"]["token"]
    again = _cli(tmp_path, "replay", token)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "SystemExit: 7" in again.stdout
