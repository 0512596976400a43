"""Trial 22b f7: a watchdog that reaches the stuck tasks' way out (a cancel scope, a pool
they wait on) only through *library* state (an attribute of a logger, which the logging
module keeps; a global registry of an installed package) is a rescuer: the early stop
of a partial deadlock must not call the cycle a ``deadlock`` (the full run finishes
cleanly).  The walk back from the way out finds the library module that holds it, and
the watchdog's code names that module.  A real partial deadlock (nobody who can still
run reaches the way out, whatever library it names) is still stopped early."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from odp_async._runtime.sim import run
from odp_async.explore import check
from tests._usermod import forget, write_user_module

# An "installed package" (a directory named site-packages): library code to the walk.
LIBRARY = """
import logging

_HELD = {}


def cancel_logged(name):
    logging.getLogger(name).scope.cancel()


def keep(name, obj):
    _HELD[name] = obj


def get(name):
    return _HELD[name]


def cancel(name):
    _HELD.pop(name).cancel()


def clear():
    _HELD.clear()
"""

PROGRAMS = """
import logging

from odp_async import Completion, Mutex, SlotPool, cancel_scope, checkpoint, task_group

import {lib} as lib


def _cycle():
    a, b = Mutex("a"), Mutex("b")
    ev1, ev2 = Completion("e1"), Completion("e2")

    async def t1():
        async with a:
            ev1.complete_all()
            await ev2.wait()
            async with b:
                pass

    async def t2():
        async with b:
            ev2.complete_all()
            await ev1.wait()
            async with a:
                pass

    return t1, t2


async def _spin(n):
    for _ in range(n):
        await checkpoint("watch")


async def via_a_logger_attribute():
    t1, t2 = _cycle()

    async def watchdog():
        await _spin(50)
        logging.getLogger("watchdog-22b").scope.cancel()

    async with task_group() as tg:
        logging.getLogger("watchdog-22b").scope = tg.cancel_scope
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def via_an_installed_packages_registry():
    lib.clear()
    t1, t2 = _cycle()

    async def watchdog():
        await _spin(50)
        lib.cancel("main")

    async with task_group() as tg:
        lib.keep("main", tg.cancel_scope)
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def via_a_library_reaching_another_librarys_state():
    # the watchdog names only the package; the package's code reaches the logger
    t1, t2 = _cycle()

    async def watchdog():
        await _spin(50)
        lib.cancel_logged("watchdog-22b-lib")

    async with task_group() as tg:
        logging.getLogger("watchdog-22b-lib").scope = tg.cancel_scope
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def via_a_name_set_in_builtins():
    # the watchdog names WD_SCOPE_22B bare: the interpreter finds it in builtins
    import builtins

    t1, t2 = _cycle()

    async def watchdog():
        await _spin(50)
        WD_SCOPE_22B.cancel()  # noqa: F821

    try:
        async with task_group() as tg:
            builtins.WD_SCOPE_22B = tg.cancel_scope
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
    finally:
        del builtins.WD_SCOPE_22B
    return "rescued"


async def via_a_stuck_tasks_own_scope_in_a_logger():
    a, b = Mutex("a"), Mutex("b")
    ev1, ev2 = Completion("e1"), Completion("e2")

    async def t1():
        with cancel_scope() as scope:
            logging.getLogger("watchdog-22b-inner").scopes = [scope]
            async with a:
                ev1.complete_all()
                await ev2.wait()
                async with b:
                    pass

    async def t2():
        async with b:
            ev2.complete_all()
            await ev1.wait()
            async with a:
                pass

    async def watchdog():
        await _spin(50)
        for scope in logging.getLogger("watchdog-22b-inner").scopes:
            scope.cancel()

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def via_a_pool_in_an_installed_packages_registry():
    lib.clear()
    pool, a = SlotPool(1, "pool"), Mutex("a")
    ev1, ev2 = Completion("e1"), Completion("e2")

    async def t1():
        await pool.acquire()
        ev1.complete_all()
        await ev2.wait()
        async with a:
            pass

    async def t2():
        async with a:
            ev2.complete_all()
            await ev1.wait()
            pool.release(await pool.acquire())

    async def watchdog():
        await _spin(50)
        lib.get("pool").release(0)

    lib.keep("pool", pool)
    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def a_bystander_naming_a_library_that_holds_nothing_of_theirs():
    lib.clear()
    t1, t2 = _cycle()

    async def busy():
        for i in range(2000):
            logging.getLogger("busy-22b").last = i
            lib.keep("other", i)
            await checkpoint("busy")

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")


async def a_scope_in_a_library_nobody_left_names():
    lib.clear()
    t1, t2 = _cycle()

    async def busy():
        for _ in range(2000):
            await checkpoint("busy")

    async with task_group() as tg:
        lib.keep("main", tg.cancel_scope)
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")
"""

RESCUED = [
    "via_a_logger_attribute",
    "via_an_installed_packages_registry",
    "via_a_stuck_tasks_own_scope_in_a_logger",
    "via_a_library_reaching_another_librarys_state",
    "via_a_name_set_in_builtins",
    "via_a_pool_in_an_installed_packages_registry",
]
STUCK = [
    "a_bystander_naming_a_library_that_holds_nothing_of_theirs",
    "a_scope_in_a_library_nobody_left_names",
]


@pytest.fixture
def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    site = tmp_path / "site-packages"
    site.mkdir()
    lib = write_user_module(site, LIBRARY, "wdlib", monkeypatch)
    name = write_user_module(tmp_path, PROGRAMS.format(lib=lib), "libstate", monkeypatch)
    yield importlib.import_module(name)
    forget(name)
    forget(lib)


@pytest.mark.parametrize("fn", RESCUED)
def test_a_way_out_in_library_state_is_no_deadlock(programs: ModuleType, fn: str) -> None:
    for seed in range(6):
        r = run(getattr(programs, fn), seed=seed)
        assert r.outcome == "ok", (fn, seed, r.outcome, r.deadlock, r.error)
        assert r.value == "rescued"


@pytest.mark.parametrize("fn", RESCUED[:2])
def test_check_finds_no_deadlock(programs: ModuleType, fn: str) -> None:
    result = check(getattr(programs, fn), chooser="random", schedules=20, seed=3)
    assert result.failure is None, result.failure.describe() if result.failure else None
    assert not result.inconclusive


@pytest.mark.parametrize("fn", STUCK)
def test_a_real_partial_deadlock_still_stops_early(programs: ModuleType, fn: str) -> None:
    for seed in range(6):
        r = run(getattr(programs, fn), seed=seed, max_steps=100_000)
        assert r.outcome == "deadlock", (fn, seed, r.outcome)
        assert r.deadlock is not None
        assert r.deadlock.is_partial
        assert [b.task for b in r.deadlock.cycle] == ["t1", "t2"]
        assert r.steps < 80, r.steps
