"""dfs's symmetry and task identity: a program that tells merged tasks apart voids it.

Symmetry (`odp_async.explore.dfs`, "Symmetry") tries only the lowest-id task of a class of
identical unstarted tasks first.  That is sound only while nothing tells the tasks apart:
``current_task()`` (its ``id``, ``repr``, identity as a dict key...) and every primitive
surface that hands a task to the program (``Mutex.owner``, ``statistics()``,
``RWLock.readers``, ``SlotPool.statistics().holders``) do.  When the program learns the
identity of a task symmetry merged in that run, the search restarts without symmetry
(trial 19c, f9: ``complete for preemption bound 3: 3 schedules, no violation`` on a real
assertion failure).  A program that never asks keeps the reduction, unchanged.

User code lives outside the package: a module written to ``tmp_path``, imported by name
(``PYTHONPATH`` for the fresh CLI process)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import check
from odp_async.explore.dfs import DfsChooser, PrunedExecution
from odp_async.explore.target import Target
from tests._usermod import forget, import_user_module

pytest_plugins = ["pytester"]

USER_MODULE = '''
import contextvars

import odp_async as oa
from odp_async import checkpoint, task_group


async def _two(worker, *args):
    async with task_group() as tg:
        tg.start_soon(worker, *args, name="w")
        tg.start_soon(worker, *args, name="w")


# --- tell identical tasks apart (each has a bug only a later-spawned-first run shows) ---

async def _by_id(order):
    order.append(oa.current_task().id)
    await checkpoint()


async def spawn_order():
    """Trial 19c's f9, as written."""
    order = []
    await _two(_by_id, order)
    assert order == sorted(order), f"later task ran first: {order}"


async def _by_name(order):
    me = oa.current_task()
    order.append((oa.task_name(me), me.id))
    await checkpoint()


async def by_task_name():
    order = []
    await _two(_by_name, order)
    assert order == sorted(order), f"later task ran first: {order}"


async def _as_key(seen):
    seen[oa.current_task()] = len(seen)
    await checkpoint()


async def as_dict_key():
    seen = {}
    await _two(_as_key, seen)
    ranks = [seen[t] for t in sorted(seen, key=lambda t: t.id)]
    assert ranks == [0, 1], f"later task ran first: {ranks}"


async def _compare(first):
    me = oa.current_task()
    if not first:
        first.append(me)
    else:
        assert repr(first[0]) < repr(me), f"{first[0]!r} started after {me!r}"
    await checkpoint()


async def comparing_tasks():
    await _two(_compare, [])


async def _by_owner(order, lock):
    lock.acquire_nowait()
    order.append(lock.owner.id)
    lock.release()
    await checkpoint()


async def by_lock_owner():
    order = []
    await _two(_by_owner, order, oa.Mutex("m"))
    assert order == sorted(order), f"later task ran first: {order}"


async def _by_statistics(order, lock, pool):
    lock.acquire_read_nowait()
    slot = pool.acquire_nowait()
    order.append((lock.readers[-1].id, pool.statistics().holders[-1].id))
    pool.release(slot)
    lock.release_read()
    await checkpoint()


async def by_holders():
    order = []
    await _two(_by_statistics, order, oa.RWLock("rw"), oa.SlotPool(2, "p"))
    assert order == sorted(order), f"later task ran first: {order}"


async def _sometimes(order):
    if oa.draw(2, "ask"):
        order.append(oa.current_task().id)
    await checkpoint()


async def revealed_in_a_later_run():
    """Identity is asked only when a draw says so: not in dfs's first runs."""
    order = []
    await _two(_sometimes, order)
    assert order == sorted(order), f"later task ran first: {order}"


async def _asks_then_goes_on(order):
    order.append(oa.current_task().id)
    await checkpoint()
    order.append(-1)


async def asks_but_correct():
    order = []
    async with task_group() as tg:
        for _ in range(3):
            tg.start_soon(_asks_then_goes_on, order, name="w")
    assert sorted(order)[-3:] == [1, 2, 3], order


# --- never tells them apart: the reduction stays --------------------------------------

async def _locked_increment(state, lock, cond):
    async with lock:
        value = state["x"]
        await checkpoint()
        state["x"] = value + 1
        assert lock.locked()
        cond.notify_all()


async def identical_workers():
    state = {"x": 0}
    lock = oa.Mutex("m")
    cond = oa.Condition(lock)
    async with task_group() as tg:
        for _ in range(3):
            tg.start_soon(_locked_increment, state, lock, cond, name="w")
    assert state["x"] == 3


async def main_asks_who_it_is():
    """Only tasks symmetry never merges are revealed: main, and a task of its own name."""
    me = oa.current_task()

    async def lone():
        assert oa.current_task() is not me

    async with task_group() as tg:
        tg.start_soon(lone, name="lone")
        await identical_workers()
    assert oa.current_task() is me
    assert oa.Mutex("unused").owner is None


class _Method:
    async def increment(self, state, lock, cond):
        await _locked_increment(state, lock, cond)


async def identical_method_workers():
    """``identical_workers`` through a bound async method: merged all the same."""
    state = {"x": 0}
    lock = oa.Mutex("m")
    cond = oa.Condition(lock)
    worker = _Method()
    async with task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker.increment, state, lock, cond, name="w")
    assert state["x"] == 3


# --- told apart at spawn time: start_soon calls the callable, which numbers its task ----

class _Worker:
    """A callable worker object that numbers what it starts."""

    def __init__(self, log):
        self.log = log
        self.started = 0

    def __call__(self):
        self.started += 1
        k = self.started

        async def run():
            self.log.append(k)
            await checkpoint()

        return run()


async def spawn_order_worker_object():
    log = []
    worker = _Worker(log)
    async with task_group() as tg:
        tg.start_soon(worker, name="w")
        tg.start_soon(worker, name="w")
    assert log == sorted(log), f"later task ran first: {log}"


def _numbered(log, ids):
    """A sync factory returning a coroutine of a nested async def over a per-call value."""
    k = len(ids)
    ids.append(k)

    async def run():
        log.append(k)
        await checkpoint()

    return run()


async def spawn_order_factory():
    log = []
    ids = []
    async with task_group() as tg:
        tg.start_soon(_numbered, log, ids, name="w")
        tg.start_soon(_numbered, log, ids, name="w")
    assert log == sorted(log), f"later task ran first: {log}"


async def _ranked(log, rank=0):
    log.append(rank)
    await checkpoint()


async def spawn_order_defaults():
    """The same async def and arguments, a default rebound between the two spawns."""
    log = []
    async with task_group() as tg:
        _ranked.__defaults__ = (1,)
        tg.start_soon(_ranked, log, name="w")
        _ranked.__defaults__ = (2,)
        tg.start_soon(_ranked, log, name="w")
    assert log == sorted(log), f"later task ran first: {log}"


async def _ranked_kw(log, *, rank=0):
    log.append(rank)
    await checkpoint()


async def spawn_order_kwdefaults():
    """A keyword-only default changed in place between the two spawns."""
    log = []
    async with task_group() as tg:
        _ranked_kw.__kwdefaults__["rank"] = 1
        tg.start_soon(_ranked_kw, log, name="w")
        _ranked_kw.__kwdefaults__["rank"] = 2
        tg.start_soon(_ranked_kw, log, name="w")
    assert log == sorted(log), f"later task ran first: {log}"


async def _first(log):
    log.append(1)
    await checkpoint()


async def _second(log):
    log.append(2)
    await checkpoint()


async def _swapped(log):
    await checkpoint()


async def spawn_order_code():
    """The same function object, its code swapped between the two spawns."""
    log = []
    async with task_group() as tg:
        _swapped.__code__ = _first.__code__
        tg.start_soon(_swapped, log, name="w")
        _swapped.__code__ = _second.__code__
        tg.start_soon(_swapped, log, name="w")
    assert log == sorted(log), f"later task ran first: {log}"


VAR = contextvars.ContextVar("rank")


async def _by_context(order):
    order.append(VAR.get())
    await checkpoint()


async def context_differs():
    """Set apart by the context they were spawned with: never merged (main as well)."""
    order = []
    async with task_group() as tg:
        VAR.set(1)
        tg.start_soon(_by_context, order, name="w")
        VAR.set(2)
        tg.start_soon(_by_context, order, name="w")
    assert order == [1, 2], f"later task ran first: {order}"
'''

TELLING = [
    "spawn_order",
    "by_task_name",
    "as_dict_key",
    "comparing_tasks",
    "by_lock_owner",
    "by_holders",
    "revealed_in_a_later_run",
]

#: Told apart by the callable start_soon calls at spawn time, before either task runs: no
#: identity is revealed, so nothing restarts; symmetry must never merge them.
SPAWN_TIME = [
    "spawn_order_worker_object",
    "spawn_order_factory",
    "spawn_order_defaults",
    "spawn_order_kwdefaults",
    "spawn_order_code",
]

#: Schedules (and pruned executions) of ``identical_workers`` under dfs with reduction,
#: as measured before task identity was tracked (main at 2c9c05a): unchanged.
IDENTICAL_WORKERS_COUNTS = (79, 0)


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = import_user_module(tmp_path, USER_MODULE, "symident", monkeypatch)
    yield module
    forget(module.__name__)


@pytest.mark.parametrize("name", TELLING)
def test_dfs_with_symmetry_finds_a_bug_seen_through_task_identity(
    usermod: ModuleType, name: str
) -> None:
    result = check(getattr(usermod, name), chooser="dfs", schedules=300)
    assert result.failure is not None, result.claim
    assert not result.complete
    assert "later task ran first" in str(result.failure.violation) or name == "comparing_tasks"


@pytest.mark.parametrize("name", TELLING)
def test_the_chooser_restarts_without_symmetry(usermod: ModuleType, name: str) -> None:
    chooser = DfsChooser(preemption_bound=3)
    target = Target.resolve(getattr(usermod, name), None, None)
    failing = 0
    while chooser.has_more:
        with contextlib.suppress(PrunedExecution):
            failing += target.run(chooser, max_steps=1000).is_failure
    assert failing
    assert chooser.symmetry_dropped
    assert chooser.statistics().symmetry_dropped
    assert not chooser.symmetry


def test_a_chooser_whose_program_never_asks_keeps_symmetry(usermod: ModuleType) -> None:
    chooser = DfsChooser(preemption_bound=3)
    target = Target.resolve(usermod.identical_workers, None, None)
    runs = 0
    while chooser.has_more:
        with contextlib.suppress(PrunedExecution):
            target.run(chooser, max_steps=1000)
            runs += 1
    assert chooser.is_complete
    assert chooser.symmetry
    assert not chooser.symmetry_dropped
    assert (runs, chooser.executions_pruned) == IDENTICAL_WORKERS_COUNTS


@pytest.mark.parametrize("bound", [1, 3])
def test_a_correct_program_that_asks_is_complete_after_the_restart(
    usermod: ModuleType, bound: int
) -> None:
    # The first (symmetric) run reveals a merged task: the search restarts without
    # symmetry, and its claim is the full search's, that run still counted.
    restarted = check(usermod.asks_but_correct, chooser="dfs", preemption_bound=bound)
    full = check(usermod.asks_but_correct, chooser="dfs", preemption_bound=bound, symmetry=False)
    assert restarted.failure is None
    assert restarted.complete
    assert full.complete
    assert restarted.bound == full.bound == bound
    assert restarted.schedules == full.schedules + 1


def test_revealing_tasks_never_merged_keeps_symmetry(usermod: ModuleType) -> None:
    chooser = DfsChooser(preemption_bound=3)
    target = Target.resolve(usermod.main_asks_who_it_is, None, None)
    while chooser.has_more:
        with contextlib.suppress(PrunedExecution):
            assert not target.run(chooser, max_steps=1000).is_failure
    assert chooser.is_complete
    assert chooser.symmetry
    assert not chooser.symmetry_dropped


def test_a_program_that_never_asks_keeps_the_reduction(usermod: ModuleType) -> None:
    reduced = check(usermod.identical_workers, chooser="dfs", schedules=2000)
    full = check(usermod.identical_workers, chooser="dfs", schedules=2000, symmetry=False)
    assert reduced.failure is None
    assert reduced.complete
    assert full.failure is None
    assert full.complete
    assert (reduced.schedules, reduced.pruned) == IDENTICAL_WORKERS_COUNTS
    assert full.schedules == 474  # symmetry still prunes


def test_bound_async_methods_keep_the_reduction(usermod: ModuleType) -> None:
    result = check(usermod.identical_method_workers, chooser="dfs", schedules=2000)
    assert result.failure is None
    assert result.complete
    assert (result.schedules, result.pruned) == IDENTICAL_WORKERS_COUNTS


@pytest.mark.parametrize("name", SPAWN_TIME)
def test_dfs_with_symmetry_finds_a_bug_set_up_at_spawn_time(
    usermod: ModuleType, name: str
) -> None:
    # trial 19b, n2: "complete for preemption bound 3: 3 schedules, no violation".
    result = check(getattr(usermod, name), chooser="dfs", preemption_bound=3)
    assert result.failure is not None, result.claim
    assert "later task ran first" in str(result.failure.violation)


@pytest.mark.parametrize("name", SPAWN_TIME)
def test_tasks_a_callable_sets_apart_at_spawn_are_never_merged(
    usermod: ModuleType, name: str
) -> None:
    # Not a restart: nothing reveals a task, the two are simply not one class.
    chooser = DfsChooser(preemption_bound=3)
    target = Target.resolve(getattr(usermod, name), None, None)
    failing = 0
    while chooser.has_more:
        with contextlib.suppress(PrunedExecution):
            failing += target.run(chooser, max_steps=1000).is_failure
    assert failing
    assert chooser.is_complete
    assert chooser.symmetry
    assert not chooser.symmetry_dropped


def test_tasks_spawned_in_different_contexts_are_told_apart(usermod: ModuleType) -> None:
    result = check(usermod.context_differs, chooser="dfs", schedules=300)
    assert result.failure is not None, result.claim


@pytest.mark.parametrize("chooser", ["dpor", "portfolio", "random", "pct"])
def test_the_other_choosers_find_it_too(usermod: ModuleType, chooser: str) -> None:
    # DPOR and the portfolio's claims use no symmetry (the sweep's classes only order it).
    result = check(usermod.spawn_order, chooser=chooser, schedules=300)
    assert result.failure is not None, result.claim


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, PYTHONPATH=pythonpath, PYTHONHASHSEED="7"),
        cwd=tmp_path,
    )


# dfs runs in the CLI's own process (``--jobs 2`` with dfs is a usage error since 325d7b2).
@pytest.mark.parametrize("name", ["spawn_order", "spawn_order_factory"])
def test_the_cli_dfs_finds_it_in_a_fresh_process(
    usermod: ModuleType, tmp_path: Path, name: str
) -> None:
    proc = _cli(
        tmp_path,
        "explore",
        f"{usermod.__name__}:{name}",
        "--chooser",
        "dfs",
        "--schedules",
        "300",
        "--json",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "found"
    assert "later task ran first" in proc.stdout


def test_the_pytest_plugin_with_dfs_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=USER_MODULE
        + textwrap.dedent(
            """
            from odp_async.explore.testing import explore_test

            test_spawn_order = explore_test(schedules=300)(spawn_order)
            """
        )
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--odp-chooser=dfs", "--odp-database=none"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*later task ran first*"])
