"""A `KeyboardInterrupt` the program raises itself is its error; Ctrl-C still stops.

A new user's program that raised ``KeyboardInterrupt`` in a task was taken for Ctrl-C:
``interrupted: ... nothing explored`` and exit 130, though nobody pressed anything.  Like
a `SystemExit`, it is now the program's ``error``: found, shrunk, named (the task and the
line), with a token that replays it, in this process, on worker processes and from the
CLI in a fresh process (exit 1).  The user's Ctrl-C is told apart by the SIGINT handler
the explorer and the CLI install (`odp_async._runtime.interrupts`): a SIGINT sent while
a task runs still stops the exploration and reports what was explored so far (exit 130).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async._runtime.interrupts import CtrlC, is_ctrl_c, marking_ctrl_c
from odp_async.errors import ExploreInterrupted
from odp_async.explore import check, replay
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER = """
import os
import signal

from odp_async import checkpoint, task_group


async def raises_at_once() -> None:
    await checkpoint("start")
    raise KeyboardInterrupt


async def raises_in_a_race() -> None:
    seen = []

    async def step() -> None:
        count = len(seen)
        await checkpoint("read")
        seen.append(count)

    async def check_it() -> None:
        await checkpoint("look")
        if len(seen) == 2 and seen[0] == seen[1]:
            raise KeyboardInterrupt("two steps saw the same count")

    async with task_group() as tg:
        tg.start_soon(step, name="a")
        tg.start_soon(step, name="b")
        tg.start_soon(check_it, name="checker")


CALLS = [0]


async def ctrl_c_on_call_5() -> None:
    CALLS[0] += 1
    await checkpoint("start")
    if CALLS[0] == 5:
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, while a task runs
    await checkpoint("end")
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "kbi_user")


@pytest.mark.parametrize("fn", ["raises_at_once", "raises_in_a_race"])
@pytest.mark.parametrize("chooser", ["portfolio", "random", "dpor"])
def test_a_programs_keyboard_interrupt_is_its_error(
    user: ModuleType, fn: str, chooser: str
) -> None:
    result = check(getattr(user, fn), chooser=chooser, schedules=300)
    assert not result.interrupted
    failure = result.failure
    assert failure is not None, result.claim
    assert failure.violation.kind == "error"
    assert "KeyboardInterrupt" in failure.violation.detail
    assert "kbi_user" in failure.violation.detail  # the user's file and line
    token = failure.shrunk_token or failure.token
    assert token is not None
    replayed = replay(token)
    assert replayed.failure is not None
    assert replayed.failure.kind == "error"


def test_on_worker_processes_too(user: ModuleType) -> None:
    kw = {"chooser": "random", "schedules": 600, "stop_on_first": False, "shrink": False}
    here = check(user.raises_in_a_race, **kw)
    there = check(user.raises_in_a_race, jobs=2, **kw)
    assert here.failing
    assert here.failing == there.failing
    assert not there.interrupted


def test_ctrl_c_is_marked_only_while_exploring() -> None:
    plain = KeyboardInterrupt()
    assert is_ctrl_c(plain)  # nothing marks Ctrl-C: every one is taken for it
    with marking_ctrl_c():
        assert not is_ctrl_c(plain)
        assert is_ctrl_c(CtrlC())
    assert is_ctrl_c(plain)


def test_ctrl_c_still_stops_it_with_what_ran_so_far(user: ModuleType) -> None:
    user.CALLS[0] = 0
    with pytest.raises(ExploreInterrupted) as caught:
        check(user.ctrl_c_on_call_5, chooser="random", schedules=100)
    assert caught.value.result.interrupted
    # call 1 is the FIFO schedule's run before the search (odp_async.explore.start_check)
    assert caught.value.result.schedules == 3


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )


def test_the_cli_reports_it_as_the_programs_error(user: ModuleType, tmp_path: Path) -> None:
    proc = _cli(tmp_path, "explore", f"{user.__name__}:raises_in_a_race", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "interrupted" not in proc.stderr
    import json

    data = json.loads(proc.stdout)
    assert data["verdict"] == "found"
    assert data["failure"]["kind"] == "error"
    assert "KeyboardInterrupt: two steps saw the same count" in data["failure"]["detail"]
    token = data["failure"]["shrunk_token"] or data["failure"]["token"]
    again = _cli(tmp_path, "replay", token)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "KeyboardInterrupt" in again.stdout


def test_the_cli_still_stops_on_ctrl_c(user: ModuleType, tmp_path: Path) -> None:
    name = f"{user.__name__}:ctrl_c_on_call_5"
    proc = _cli(tmp_path, "explore", name, "--chooser", "random", "--schedules", "100")
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "interrupted: " in proc.stdout
    assert "3 schedules" in proc.stdout  # (and the run before the search)
    assert "Traceback" not in proc.stderr
