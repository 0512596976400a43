"""A cycle that a task which could still run will break is no deadlock, however that task
reaches the stuck tasks' cancel scope: the early stop of a partial deadlock
(tests/test_partial_deadlock_early.py) must never turn such a run into a phantom
``deadlock`` (a wrong verdict).  Each program below is user code in its own modules (the
rescuer's helper in another module), run by `sim.run`, `odp_async.explore.check` and the
CLI; the full program finishes cleanly, so every verdict must be ``ok``.

The sibling-error case: a sibling that *raises* (an explicit ``raise``) cancels the group,
a way out the program wrote, like a deadline: no deadlock.  A sibling whose code raises
nothing explicitly but fails by accident (a ``KeyError``) is a second bug; the cycle is a
real deadlock that came first, and the run reports it on the block that closed it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from odp_async._runtime.rescue import code_raises, library
from odp_async._runtime.sim import run
from odp_async.explore import check, explore
from tests._usermod import forget, pythonpath_env, write_user_module

REGISTRY = """
# A module-global registry of cancel scopes, in a module of its own.
SCOPES = []


def reset():
    SCOPES.clear()


def register(scope):
    SCOPES.append(scope)


def cancel_all():
    for scope in SCOPES:
        scope.cancel()
"""

PROGRAMS = """
import weakref

import odp_async as oa
from odp_async import fail_after as deadline
from odp_async import (
    Completion,
    Mutex,
    SlotPool,
    WaitQueue,
    checkpoint,
    move_on_after,
    sleep,
    task_group,
)

import {reg} as reg
from {reg} import cancel_all


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


async def via_a_helper_of_another_module():
    # (a) the watchdog calls a helper of another module that reads its global registry
    try:  # the registry as it was when the run ends: no state left to the next run
        reg.reset()
        t1, t2 = _cycle()

        async def watchdog():
            await _spin(50)
            cancel_all()

        async with task_group() as tg:
            reg.register(tg.cancel_scope)
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
        return "rescued"
    finally:
        reg.reset()


class _State:
    def __init__(self):
        self.scopes = {{}}


class Service:
    def __init__(self):
        self.state = _State()

    async def watchdog(self):
        await _spin(50)
        for scope in self.state.scopes["main"]:
            scope.cancel()


async def via_a_deep_attribute():
    # (b) the scope sits in a list in a dict in an attribute of the watchdog's self
    t1, t2 = _cycle()
    svc = Service()
    async with task_group() as tg:
        svc.state.scopes["main"] = [tg.cancel_scope]
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(svc.watchdog, name="watchdog")
    return "rescued"


_BOX = {{}}


def _current_scope():
    return _BOX["scope"]


async def via_a_function_returning_the_scope():
    # (c) the watchdog gets the scope from a call
    try:  # the registry as it was when the run ends: no state left to the next run
        t1, t2 = _cycle()

        async def watchdog():
            await _spin(50)
            _current_scope().cancel()

        async with task_group() as tg:
            _BOX["scope"] = tg.cancel_scope
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
        return "rescued"
    finally:
        _BOX.clear()


async def _late_watchdog():
    cancel_all()


async def by_a_task_spawned_later():
    # (d) the rescuer does not exist yet when the cycle closes: a supervisor spawns it
    try:  # the registry as it was when the run ends: no state left to the next run
        reg.reset()
        t1, t2 = _cycle()

        async def stuck_part():
            async with task_group() as tg:
                reg.register(tg.cancel_scope)
                tg.start_soon(t1, name="t1")
                tg.start_soon(t2, name="t2")

        async def supervisor():
            await _spin(50)
            async with task_group() as own:
                own.start_soon(_late_watchdog, name="watchdog")

        async with task_group() as outer:
            outer.start_soon(stuck_part, name="stuck_part")
            outer.start_soon(supervisor, name="supervisor")
        return "rescued"
    finally:
        reg.reset()


async def by_a_task_blocked_on_a_completion():
    # (e) the rescuer is blocked on a completion that a busy task completes later
    try:  # the registry as it was when the run ends: no state left to the next run
        reg.reset()
        t1, t2 = _cycle()
        go = Completion("go")

        async def watchdog():
            await go.wait()
            cancel_all()

        async def busy():
            await _spin(50)
            go.complete_all()

        async with task_group() as tg:
            reg.register(tg.cancel_scope)
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
            tg.start_soon(busy, name="busy")
        return "rescued"
    finally:
        reg.reset()


async def by_a_task_asleep():
    # (e) the rescuer sleeps (no deadline on the stuck tasks), then cancels
    try:  # the registry as it was when the run ends: no state left to the next run
        reg.reset()
        t1, t2 = _cycle()

        async def watchdog():
            await sleep(5)
            cancel_all()

        async with task_group() as tg:
            reg.register(tg.cancel_scope)
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
        return "rescued"
    finally:
        reg.reset()


class _Watched:
    def __init__(self):
        self.scopes = weakref.WeakSet()


async def via_a_weak_set():
    # the scope is held only by a library object (a WeakSet) the watchdog's object holds
    t1, t2 = _cycle()
    watched = _Watched()

    async def watchdog():
        await _spin(50)
        for scope in list(watched.scopes):
            scope.cancel()

    async with task_group() as tg:
        watched.scopes.add(tg.cancel_scope)
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def by_a_task_releasing_a_pool_slot():
    # t1 keeps the pool's one slot and waits for t2's lock; t2 waits for the pool; the
    # watchdog takes the slot back from t1 (any task may release a slot)
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
        pool.release(0)

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def via_a_function_level_import():
    # both the registration and the rescue import the registry inside a function
    try:  # the registry as it was when the run ends: no state left to the next run
        import {reg2} as late

        late.reset()
        t1, t2 = _cycle()

        async def watchdog():
            await _spin(50)
            import {reg2}

            {reg2}.cancel_all()

        async with task_group() as tg:
            late.register(tg.cancel_scope)
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
        return "rescued"
    finally:
        late.reset()


async def via_globals():
    # a name computed at run time: the walk cannot follow it, so it is unsure
    try:  # the registry as it was when the run ends: no state left to the next run
        t1, t2 = _cycle()

        async def watchdog():
            await _spin(50)
            globals()["_BO" + "X"]["scope"].cancel()

        async with task_group() as tg:
            _BOX["scope"] = tg.cancel_scope
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
        return "rescued"
    finally:
        _BOX.clear()


async def under_a_deadline_around_the_group():
    # the stuck tasks inherit the deadline of a scope around their group
    t1, t2 = _cycle()

    async def busy():
        await _spin(200)

    with move_on_after(5):
        async with task_group() as tg:
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(busy, name="busy")
    return "rescued"


async def _rescued_by_a_timeout(watchdog, armed=None):
    # the watchdog's `fail_after` raises TimeoutError, which cancels the stuck tasks' group
    t1, t2 = _cycle()
    outcome = "not rescued"
    try:
        async with task_group() as tg:
            tg.start_soon(watchdog, name="watchdog")
            if armed is not None:  # the cycle closes only once the watchdog is in its scope
                await armed.wait()
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
    except* TimeoutError:
        outcome = "rescued"
    return outcome


async def by_a_sibling_inside_a_fail_after():
    # (trial 40, f1) entered by a name the walk cannot resolve: the scope itself says so
    armed = Completion("armed")

    async def watchdog():
        with getattr(oa, "fail_" + "after")(10):
            armed.complete_all()
            await sleep(100)

    return await _rescued_by_a_timeout(watchdog, armed)


async def by_a_sibling_that_will_enter_a_fail_after():
    # not entered yet when the cycle closes: its code names ``oa.fail_after``
    async def watchdog():
        await _spin(50)
        with oa.fail_after(10):
            await sleep(100)

    return await _rescued_by_a_timeout(watchdog)


async def by_a_sibling_that_will_enter_a_fail_after_under_an_alias():
    # not entered yet, and named ``deadline``: the function itself is met
    async def watchdog():
        await _spin(50)
        with deadline(10):
            await Completion("never").wait()

    return await _rescued_by_a_timeout(watchdog)


class Stuck(Exception):
    pass


async def by_a_sibling_raising():
    # a sibling raises on purpose: the group is cancelled, the error is handled
    t1, t2 = _cycle()

    async def watchdog():
        await _spin(50)
        raise Stuck("t1 and t2 made no progress")

    out = "not reached"
    try:
        async with task_group() as tg:
            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")
    except* Stuck:
        out = "rescued"
    return out


async def a_sibling_failing_by_accident():
    # a second bug in a sibling (no raise of its own): the deadlock came first
    t1, t2 = _cycle()

    async def busy():
        await _spin(50)
        return {{}}["missing"]

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")


class _Unrelated:
    def __init__(self):
        self.groups = {{"other": [Mutex("other")]}}
        self.scopes = []


_OTHER = _Unrelated()


async def bystanders_that_cannot_rescue():
    # a real partial deadlock: busy runs its own group and scopes, reads another
    # registry and the helper module (nothing of the stuck tasks); sleeper sleeps
    reg.reset()
    t1, t2 = _cycle()

    async def inner():
        await _spin(2)

    async def busy():
        for _ in range(2000):
            async with task_group() as own:
                _OTHER.scopes.append(own.cancel_scope)
                own.start_soon(inner)
            _OTHER.scopes.clear()
            reg.SCOPES.clear()

    async def sleeper():
        for _ in range(100):
            await sleep(1)

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")
        tg.start_soon(sleeper, name="sleeper")


_HUGE = [[object()] for _ in range(300_000)]


async def a_bystander_holding_too_much():
    # busy holds more than the walk looks at: no early stop; the deadlock is
    # reported when busy ends (late, still right)
    t1, t2 = _cycle()

    async def busy():
        for _ in range(300):
            await checkpoint(len(_HUGE))

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")


async def by_a_task_waking_a_queue_that_names_an_owner():
    # t1 holds a and parks on the program's own queue, which names m as its owner (a park
    # reads as a wait for m's holder, t2); t2 holds m and waits for a; the waker wakes the
    # queue, which any task may do (trial 18a f3b)
    a, m = Mutex("a"), Mutex("m")
    queue = WaitQueue("q", owner=m)

    async def t1():
        async with a:
            await checkpoint("t1")
            await queue.park()

    async def t2():
        async with m:
            await checkpoint("t2")
            async with a:
                pass

    async def waker():
        await _spin(50)
        queue.wake_all()

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(waker, name="waker")
    return "rescued"
"""

RESCUED = [
    "by_a_task_waking_a_queue_that_names_an_owner",
    "via_a_helper_of_another_module",
    "via_a_deep_attribute",
    "via_a_function_returning_the_scope",
    "by_a_task_spawned_later",
    "by_a_task_blocked_on_a_completion",
    "by_a_task_asleep",
    "by_a_sibling_raising",
    "via_a_weak_set",
    "by_a_task_releasing_a_pool_slot",
    "via_a_function_level_import",
    "via_globals",
    "under_a_deadline_around_the_group",
    "by_a_sibling_inside_a_fail_after",
    "by_a_sibling_that_will_enter_a_fail_after",
    "by_a_sibling_that_will_enter_a_fail_after_under_an_alias",
]


CLI_OPTIONS = ("--chooser", "random", "--schedules", "10", "--seed", "1")


def _write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """Write two registry modules and the programs (which import them by their names;
    the second only inside functions): their names, the programs' last."""
    reg = write_user_module(tmp_path, REGISTRY, "rescuereg", monkeypatch)
    reg2 = write_user_module(tmp_path, REGISTRY, "rescuelate", monkeypatch)
    source = PROGRAMS.format(reg=reg, reg2=reg2)
    return reg, reg2, write_user_module(tmp_path, source, "rescue", monkeypatch)


@pytest.fixture
def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    names = _write(tmp_path, monkeypatch)
    yield importlib.import_module(names[-1])
    for name in names:
        forget(name)


@pytest.mark.parametrize("fn", RESCUED)
def test_a_rescued_cycle_is_no_deadlock(programs: ModuleType, fn: str) -> None:
    for seed in range(10):
        r = run(getattr(programs, fn), seed=seed)
        assert r.outcome == "ok", (fn, seed, r.outcome, r.deadlock, r.error)
        assert r.value == "rescued"


@pytest.mark.parametrize("fn", RESCUED)
def test_check_finds_no_deadlock_in_a_rescued_cycle(programs: ModuleType, fn: str) -> None:
    result = check(getattr(programs, fn), chooser="random", schedules=30, seed=3)
    assert result.failure is None, result.failure.describe() if result.failure else None
    assert not result.inconclusive


def test_dfs_finds_no_deadlock_in_a_rescued_cycle(programs: ModuleType) -> None:
    result = check(programs.via_a_deep_attribute, chooser="dpor", schedules=200, seed=0)
    assert result.failure is None, result.failure.describe() if result.failure else None


def test_a_sibling_failing_by_accident_reports_the_deadlock_first(programs: ModuleType) -> None:
    for seed in range(10):
        r = run(programs.a_sibling_failing_by_accident, seed=seed)
        assert r.outcome == "deadlock", (seed, r.outcome, r.error)
        assert r.deadlock is not None
        assert r.deadlock.is_partial
        assert r.steps < 80, r.steps


def test_bystanders_that_cannot_rescue_do_not_delay_the_stop(programs: ModuleType) -> None:
    for seed in range(10):
        r = run(programs.bystanders_that_cannot_rescue, seed=seed, max_steps=100_000)
        assert r.outcome == "deadlock", (seed, r.outcome)
        assert r.deadlock is not None
        assert r.deadlock.is_partial
        assert [b.task for b in r.deadlock.cycle] == ["t1", "t2"]
        assert r.steps < 80, r.steps


def test_too_much_to_walk_is_no_early_stop_but_the_deadlock_stays(programs: ModuleType) -> None:
    r = run(programs.a_bystander_holding_too_much, seed=0)
    assert r.outcome == "deadlock", r.outcome
    assert r.deadlock is not None
    assert not r.deadlock.is_partial
    assert r.steps > 300


def test_the_cli_finds_no_deadlock_in_a_rescued_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _write(tmp_path, monkeypatch)[-1]
    for fn in ("via_a_helper_of_another_module", "by_a_task_spawned_later"):
        proc = subprocess.run(
            [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:{fn}", *CLI_OPTIONS],
            capture_output=True,
            text=True,
            env=pythonpath_env(tmp_path),
            timeout=300,
        )
        assert proc.returncode == 0, (fn, proc.stdout, proc.stderr)
        assert "deadlock" not in proc.stdout, proc.stdout


def test_a_model_task_holding_the_group_in_its_state_does_not_delay_the_stop() -> None:
    """The model's tasks reach the workqueue's task group (through the world) but no
    program code: library code cancels nothing of its own accord, so the pool deadlock of
    thp-split-during-fault under hmm-pool stops while the model's other tasks could run."""
    result = explore("thp-split-during-fault", "hmm-pool", schedules=3, seed=0, shrink=False)
    assert result.failure is not None
    sim = result.failure.execution.sim
    assert sim.outcome == "deadlock"
    assert sim.deadlock is not None
    assert sim.deadlock.is_partial, sim.deadlock.describe()


def test_library_code_is_told_from_the_program(programs: ModuleType) -> None:
    """Library code (its module state not walked): the standard library, installed
    packages, odp_async; the user's modules are the program's."""
    assert library("json")
    assert library("attrs")  # an installed package
    assert library("odp_async.sync")
    assert not library(programs.__name__)
    assert not library("tests.conftest")


def test_an_explicit_raise_or_assert_is_seen_in_nested_code() -> None:
    def quiet() -> int:
        return {1: 2}[1]

    def raises() -> None:
        def inner() -> None:
            raise ValueError

        inner()

    def asserts(x: int) -> None:
        assert x

    assert not code_raises(quiet.__code__)
    assert code_raises(raises.__code__)
    assert code_raises(asserts.__code__)
