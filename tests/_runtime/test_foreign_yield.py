"""Whatever a task yields that is not one of the sim's traps is a `ForeignAwait`.

New-user trial 16a, defect 3: awaiting an asyncio future in the sim (``run_in_executor``, a
raw ``asyncio.Future``) crashed the driver with ``RuntimeError: await wasn't used with
future`` (it unpacked the yielded future as a trap, which iterates it), an internal error
with a traceback and exit 3 in the CLI.  It is a usage error like awaiting an
``asyncio.Event``: `sim.run` and `check` raise `ForeignAwait` naming the object, the CLI
prints one line and exits 2.  The user's programs live in tmp_path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async._runtime import sim
from odp_async.cli import ExitCode
from odp_async.errors import ForeignAwait
from odp_async.explore import check
from tests._usermod import pythonpath_env, write_user_module
from tests.conftest import UserModule

PROGRAMS = """
import asyncio
import types

import odp_async as oa


async def in_executor():
    loop = asyncio.new_event_loop()
    try:
        return await loop.run_in_executor(None, sum, [1, 2])
    finally:
        loop.close()


async def raw_future():
    loop = asyncio.new_event_loop()
    try:
        await asyncio.Future(loop=loop)
    finally:
        loop.close()


class FutureLike:
    _asyncio_future_blocking = False

    def __await__(self):
        self._asyncio_future_blocking = True
        yield self
        return 1

    def __iter__(self):
        raise RuntimeError("iterated")


async def future_like():
    await oa.checkpoint()
    return await FutureLike()


@types.coroutine
def _yield(value):
    return (yield value)


async def yields_a_number():
    await _yield(5)


async def yields_a_park_without_a_waiter():
    await _yield((1, "not a waiter"))


async def yields_a_sleep_without_a_time():
    await _yield((2, "soon"))


async def yields_an_unknown_op():
    await _yield((7, "no such op"))


async def yields_a_bool_op():
    await _yield((False, "False == CHECKPOINT, but not an int op"))


async def yields_a_list():
    await _yield([0, "a list, not a trap"])


async def calls_get_running_loop():
    await oa.checkpoint()
    loop = asyncio.get_running_loop()
    return loop


async def calls_current_task_in_a_child():
    async def child():
        await oa.checkpoint()
        return asyncio.current_task()

    async with oa.task_group() as g:
        g.start_soon(child, name="child")


async def event_in_the_group_body():
    # The task that opens the group awaits: its error reaches the run inside the group's
    # exception group.
    event = asyncio.Event()

    async def setter():
        await oa.checkpoint()
        event.set()

    async with oa.task_group() as g:
        g.start_soon(setter)
        await event.wait()


async def queue_get_in_the_group_body():
    queue = asyncio.Queue()

    async def producer():
        await oa.checkpoint()
        queue.put_nowait(1)

    async with oa.task_group() as g:
        g.start_soon(producer)
        await queue.get()


async def creates_a_task():
    task = asyncio.create_task(asyncio.sleep(0))
    await task


async def in_a_child():
    async def child():
        await oa.checkpoint()
        await _yield(5)

    async with oa.task_group() as g:
        g.start_soon(child, name="child")
"""

CASES = [
    ("in_executor", "an asyncio future <Future"),
    ("raw_future", "an asyncio future <Future pending>"),
    ("future_like", "an asyncio future <"),
    ("yields_a_number", "awaited 5,"),
    ("yields_a_park_without_a_waiter", "awaited (1, 'not a waiter')"),
    ("yields_a_sleep_without_a_time", "awaited (2, 'soon')"),
    ("yields_an_unknown_op", "awaited (7, 'no such op')"),
    ("yields_a_bool_op", "awaited (False, 'False == CHECKPOINT"),
    ("yields_a_list", "awaited [0, 'a list, not a trap']"),
]


@pytest.fixture
def programs(user_module: UserModule) -> ModuleType:
    return user_module(PROGRAMS, "s14_foreign")


@pytest.mark.parametrize(("name", "named"), CASES)
@pytest.mark.parametrize("trace", [False, True])
def test_sim_run_raises_foreign_await_naming_it(
    programs: ModuleType, name: str, named: str, trace: bool
) -> None:
    with pytest.raises(ForeignAwait, match="which is not an odp_async runtime call") as caught:
        sim.run(getattr(programs, name), trace=trace)
    assert named in str(caught.value)
    assert "task 'main'" in str(caught.value)


@pytest.mark.parametrize(("name", "named"), CASES[:3])
def test_check_raises_foreign_await(programs: ModuleType, name: str, named: str) -> None:
    with pytest.raises(ForeignAwait) as caught:
        check(getattr(programs, name), schedules=5)
    assert named in str(caught.value)


def test_a_child_that_yields_a_foreign_value_is_named(programs: ModuleType) -> None:
    for seed in range(3):
        with pytest.raises(ForeignAwait, match="task 'child' awaited 5,"):
            sim.run(programs.in_a_child, seed=seed)


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("event_in_the_group_body", "asyncio.locks.Event.wait()"),
        ("queue_get_in_the_group_body", "asyncio.queues.Queue.get()"),
    ],
)
def test_a_foreign_call_in_a_task_group_body_is_named(
    programs: ModuleType, name: str, named: str
) -> None:
    # Was the program's "error" verdict (found, exit 1): the AttributeError from asyncio
    # reached the run inside the task group's exception group.
    for seed in range(3):
        with pytest.raises(ForeignAwait) as caught:
            sim.run(getattr(programs, name), seed=seed)
        message = str(caught.value)
        assert f"task 'main' called {named}" in message
        assert "(AttributeError: " in message  # the call's own error, not the group's
    with pytest.raises(ForeignAwait, match="asyncio"):
        check(getattr(programs, name), schedules=10)


def test_asyncios_c_functions_called_with_no_loop_are_named(programs: ModuleType) -> None:
    # asyncio.get_running_loop() is a C function: no frame of asyncio's is on the
    # traceback, yet the call is asyncio's, not the program's error; current_task()
    # leaves asyncio's frame.
    with pytest.raises(ForeignAwait, match=r"task 'main' called asyncio's get_running_loop\(\)"):
        sim.run(programs.calls_get_running_loop)
    for seed in range(3):
        with pytest.raises(
            ForeignAwait, match=r"task 'child' called asyncio.tasks.current_task\(\)"
        ):
            sim.run(programs.calls_current_task_in_a_child, seed=seed)
    with pytest.raises(ForeignAwait, match="get_running_loop"):
        check(programs.calls_get_running_loop, schedules=5)


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("in_executor", "an asyncio future"),
        ("raw_future", "an asyncio future"),
        ("calls_get_running_loop", "asyncio's get_running_loop()"),
        ("event_in_the_group_body", "asyncio.locks.Event.wait()"),
        ("creates_a_task", "asyncio.tasks.create_task()"),
    ],
)
def test_explore_is_a_one_line_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, named: str
) -> None:
    module = write_user_module(tmp_path, PROGRAMS, "s14_foreign_cli", monkeypatch)
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{module}:{name}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.USAGE, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("odp-async:")]
    assert len(errors) == 1, done.stderr
    assert named in errors[0]
    assert "Traceback" not in done.stderr
    # Nothing after it: not the refused create_task's "coroutine was never awaited".
    assert done.stderr.strip().splitlines()[-1] == errors[0], done.stderr
