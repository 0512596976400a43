"""At the step bound, a cycle of blocked tasks is a ``deadlock`` only if it is blocked
for good: no task that could still run could free it (the same test as the early stop of
a partial deadlock, asked afresh at the bound).  A cycle that some task will still break
(a watchdog slower than the bound; a supervisor that cancels its deadlocked workers and
starts them again, a livelock that keeps stepping) is a ``step-limit``: the bound, not a
deadlock.  A real deadlock whose would-be rescuer has finished without rescuing is still
a ``deadlock`` at the bound.  User code from a module outside the package."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async._runtime.sim import run
from odp_async.explore import check
from tests.conftest import UserModule

PROGRAMS = """
from odp_async import Completion, Mutex, checkpoint, task_group


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


async def a_supervisor_restarting_deadlocked_workers():
    while True:
        t1, t2 = _cycle()
        async with task_group() as tg:

            async def watchdog():
                await _spin(30)
                tg.cancel_scope.cancel()

            tg.start_soon(t1, name="t1")
            tg.start_soon(t2, name="t2")
            tg.start_soon(watchdog, name="watchdog")


async def a_watchdog_slower_than_the_bound():
    t1, t2 = _cycle()
    async with task_group() as tg:

        async def watchdog():
            await _spin(3000)
            tg.cancel_scope.cancel()

        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
    return "rescued"


async def a_watchdog_that_gives_up_beside_a_spinner():
    t1, t2 = _cycle()
    seen = []

    async def spinner():
        while True:
            await checkpoint("spin")

    async with task_group() as tg:

        async def watchdog():
            await _spin(30)
            if seen:  # never: it gives up
                tg.cancel_scope.cancel()

        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(watchdog, name="watchdog")
        tg.start_soon(spinner, name="spinner")
"""

BOUND = 1000


@pytest.fixture
def programs(user_module: UserModule) -> ModuleType:
    return user_module(PROGRAMS, "atbound")


@pytest.mark.parametrize(
    "fn", ["a_supervisor_restarting_deadlocked_workers", "a_watchdog_slower_than_the_bound"]
)
def test_a_cycle_someone_still_frees_is_the_bound(programs: ModuleType, fn: str) -> None:
    for seed in range(8):
        r = run(getattr(programs, fn), seed=seed, max_steps=BOUND)
        assert r.outcome == "step-limit", (fn, seed, r.outcome, r.deadlock)
        assert r.deadlock is None


def test_the_slow_watchdog_does_rescue_given_the_steps(programs: ModuleType) -> None:
    r = run(programs.a_watchdog_slower_than_the_bound, seed=0)
    assert (r.outcome, r.value) == ("ok", "rescued")


def test_check_calls_a_livelock_inconclusive_not_a_deadlock(programs: ModuleType) -> None:
    result = check(
        programs.a_supervisor_restarting_deadlocked_workers,
        chooser="random",
        schedules=3,
        seed=0,
        max_steps=BOUND,
    )
    assert result.failure is None, result.failure.describe() if result.failure else None
    assert result.inconclusive


def test_a_cycle_whose_rescuer_gave_up_is_a_deadlock_at_the_bound(programs: ModuleType) -> None:
    for seed in range(8):
        r = run(programs.a_watchdog_that_gives_up_beside_a_spinner, seed=seed, max_steps=BOUND)
        assert r.outcome == "deadlock", (seed, r.outcome)
        assert r.deadlock is not None
        assert r.deadlock.is_partial
        assert [b.task for b in r.deadlock.cycle] == ["t1", "t2"]
        assert r.deadlock.runnable == ("spinner",)
