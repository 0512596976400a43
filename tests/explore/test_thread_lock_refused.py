"""A `threading` lock held across an await is refused before the first run, with one
line, as an asyncio/trio/anyio lock is (`odp_async._thread_blocking`): every task runs
on one OS thread, so a second task blocking in ``acquire()`` hung the explorer for good
(no report, no exit) before the fix.  A thread lock used without an await inside its
``with`` never blocks under the sim and is explored as usual.
"""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest

from odp_async.errors import ForeignAwait
from odp_async.explore import explore
from tests.conftest import UserModule
from tests.test_cli_user import cli_cmd, fresh_env, one_line_usage_error

PROGRAM = """
import contextlib
import threading

from odp_async import checkpoint, task_group

_lock = threading.Lock()
_rlock = threading.RLock()
_cond = threading.Condition()
_quiet = contextlib.nullcontext()


class Holder:
    lock = threading.Lock()


async def held_across_a_checkpoint():
    async def bump():
        with _lock:
            await checkpoint("inside")

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)


async def _helper():
    with Holder.lock:
        await checkpoint("inside")


async def held_in_a_helper():
    async with task_group() as tg:
        tg.start_soon(_helper)
        tg.start_soon(_helper)


async def rlock_and_condition():
    with _rlock:
        await checkpoint("inside")
    with _cond:
        await checkpoint("inside")


async def used_without_an_await():
    n = []

    async def bump():
        await checkpoint("before")
        with _lock:
            n.append(1)
        with _quiet:
            await checkpoint("a context manager that is no lock")

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert len(n) == 2
"""


@pytest.fixture
def program(user_module: UserModule) -> str:
    return user_module(PROGRAM, "thread_locks").__name__


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("held_across_a_checkpoint", "bump holds _lock (a threading.Lock) across an await"),
        ("held_in_a_helper", "_helper holds Holder.lock (a threading.Lock) across an await"),
        ("rlock_and_condition", "holds _rlock (a threading.RLock) across an await"),
    ],
)
def test_a_thread_lock_held_across_an_await_is_refused(
    program: str, name: str, needle: str
) -> None:
    with pytest.raises(ForeignAwait, match=needle.replace("(", r"\(").replace(")", r"\)")):
        explore(getattr(importlib.import_module(program), name), schedules=20)


def test_a_thread_lock_without_an_await_inside_is_explored(program: str) -> None:
    found = explore(importlib.import_module(program).used_without_an_await, chooser="dfs")
    assert found.failure is None
    assert found.complete, found.claim


def test_the_cli_answers_in_one_line(program: str, tmp_path: Path) -> None:
    done = subprocess.run(
        cli_cmd("explore", f"{program}:held_across_a_checkpoint", "--schedules", "20"),
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    one_line_usage_error(
        done.returncode, done.stdout, done.stderr, "holds _lock (a threading.Lock) across an await"
    )
