"""`Condition`: trio's shape over `Mutex` and `WaitQueue`, on the sim, asyncio and trio."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import odp_async as oa
from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.errors import InvalidArgument, ProtocolViolation
from odp_async.explore.testing import ExplorationFailed, explore_test
from odp_async.sync import Condition, ConditionStatistics, Mutex, WaitQueue
from tests.conftest import Runner


async def until(predicate: Callable[[], bool]) -> None:
    """Yield until `predicate()` holds: ordering by observed state, not by the clock."""
    while not predicate():
        await rt.checkpoint("until")


def test_wait_returns_holding_the_lock_after_a_notify(runtime: Runner) -> None:
    async def main() -> list[str]:
        cond = Condition()
        items: list[int] = []
        log: list[str] = []

        async def consumer() -> None:
            async with cond:
                while not items:
                    await cond.wait()
                assert cond.lock.owner is rt.current_task()
                log.append(f"got {items.pop()}")

        async with rt.task_group() as tg:
            tg.start_soon(consumer)
            await until(lambda: cond.statistics().tasks_waiting == 1)
            assert not cond.locked()  # the waiter let the lock go
            async with cond:
                items.append(7)
                cond.notify()
                log.append("notified")
        return log

    assert runtime.run(main) == ["notified", "got 7"]


def test_notify_wakes_n_waiters_in_fifo_order_and_notify_all_the_rest(runtime: Runner) -> None:
    async def main() -> list[str]:
        cond = Condition(Mutex("m"))
        woken: list[str] = []

        async def waiter(name: str) -> None:
            async with cond:
                await cond.wait()
                woken.append(name)

        async with rt.task_group() as tg:
            for i, name in enumerate("abcd"):
                tg.start_soon(waiter, name)
                await until(lambda i=i: cond.statistics().tasks_waiting == i + 1)
            async with cond:
                cond.notify(2)
                assert cond.statistics() == ConditionStatistics(2, cond.lock.statistics())
            await until(lambda: len(woken) == 2)
            async with cond:
                cond.notify(0)  # wakes nobody
                cond.notify_all()
        return woken

    woken = runtime.run(main)
    # the two longest waiters first (in whichever order they then take the lock)
    assert sorted(woken[:2]) == ["a", "b"]
    assert sorted(woken[2:]) == ["c", "d"]


def test_a_notify_with_nobody_waiting_is_dropped(runtime: Runner) -> None:
    async def main() -> int:
        cond = Condition()
        async with cond:
            cond.notify()
            cond.notify_all()
        with rt.move_on_after(1):  # a wait now would never be woken
            async with cond:
                await cond.wait()
            return -1
        return cond.statistics().tasks_waiting

    assert runtime.run(main) == 0


def test_a_cancelled_wait_takes_the_lock_again_before_raising(runtime: Runner) -> None:
    async def main() -> list[str]:
        cond = Condition(Mutex("m"))
        log: list[str] = []
        scope = rt.cancel_scope()

        async def waiter() -> None:
            async with cond:
                with scope:
                    await cond.wait()
                    log.append("not reached")
                # cancelled, and still (again) the lock's owner
                log.append(f"left wait holding={cond.lock.owner is rt.current_task()}")

        async with rt.task_group() as tg:
            tg.start_soon(waiter)
            await until(lambda: cond.statistics().tasks_waiting == 1)
            async with cond:
                scope.cancel()
                # the waiter left the queue but cannot take the lock while we hold it
                await until(lambda: cond.lock.statistics().tasks_waiting == 1)
                assert cond.statistics().tasks_waiting == 0
                log.append("main releases")
        assert not cond.locked()
        return log

    assert runtime.run(main) == ["main releases", "left wait holding=True"]


def test_wait_in_an_already_cancelled_scope_still_returns_the_lock(runtime: Runner) -> None:
    async def main() -> bool:
        cond = Condition()
        async with cond:
            with rt.cancel_scope() as scope:
                scope.cancel()
                await cond.wait()
            return cond.lock.owner is rt.current_task()

    assert runtime.run(main) is True


def test_waiting_or_notifying_without_the_lock_is_a_protocol_violation(runtime: Runner) -> None:
    async def main() -> list[str]:
        cond = Condition(Mutex("state"))
        errors = []
        for call in (cond.wait, cond.notify, cond.notify_all):
            try:
                await call()  # type: ignore[func-returns-value]
            except ProtocolViolation as e:
                errors.append(str(e))
        return errors

    # notify/notify_all are sync: their error raises before the await of None
    errors = runtime.run(main)
    assert len(errors) == 3
    assert all("does not hold the lock (held by nobody)" in e for e in errors)
    assert errors[0].startswith("wait() on a Condition over Mutex 'state'")


def test_bad_arguments_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"lock must be a Mutex or None, got 3 \(int\)"):
        Condition(3)  # type: ignore[arg-type]

    async def main() -> None:
        cond = Condition()
        async with cond:
            cond.notify(-1)

    with pytest.raises(InvalidArgument, match=r"n must be an int >= 0, got -1"):
        sim.run(main).unwrap()


def test_two_conditions_share_one_lock(runtime: Runner) -> None:
    async def main() -> list[str]:
        lock = Mutex("buf")
        not_empty, not_full = Condition(lock), Condition(lock)
        assert not_empty.lock is not_full.lock
        buffer: list[int] = []
        got: list[str] = []

        async def producer() -> None:
            for i in range(4):
                async with not_full:
                    while len(buffer) == 1:
                        await not_full.wait()
                    buffer.append(i)
                    not_empty.notify()

        async def consumer() -> None:
            for _ in range(4):
                async with not_empty:
                    while not buffer:
                        await not_empty.wait()
                    got.append(str(buffer.pop()))
                    not_full.notify()

        async with rt.task_group() as tg:
            tg.start_soon(consumer)
            tg.start_soon(producer)
        return got

    assert runtime.run(main) == ["0", "1", "2", "3"]


def test_everyone_waiting_is_a_deadlock_naming_the_condition() -> None:
    async def main() -> None:
        cond = Condition(Mutex("ready"))
        async with cond:
            await cond.wait()

    result = sim.run(main)
    assert result.outcome == "deadlock"
    assert result.deadlock is not None
    assert "Condition over Mutex 'ready' (not notified)" in result.deadlock.describe()


# --- explored under the sim ----------------------------------------------------------------


async def _producer_consumer(recheck: bool) -> None:
    """Two consumers, one producer of two items, notify_all per item."""
    cond = Condition(Mutex("queue"))
    items: list[int] = []
    got: list[int] = []

    async def consumer() -> None:
        async with cond:
            if recheck:
                while not items:
                    await cond.wait()
            elif not items:  # broken: a wake is taken as "an item is there"
                await cond.wait()
            got.append(items.pop())

    async def producer() -> None:
        for i in range(2):
            async with cond:
                items.append(i)
                cond.notify_all()

    async with oa.task_group() as tg:
        tg.start_soon(consumer, name="consumer-1")
        tg.start_soon(consumer, name="consumer-2")
        tg.start_soon(producer, name="producer")
    assert sorted(got) == [0, 1]


@explore_test(schedules=2000, chooser="dfs")
async def test_producer_consumer_with_a_condition_has_no_lost_wakeup() -> None:
    await _producer_consumer(recheck=True)


@explore_test(schedules=300, chooser="random")
async def test_producer_consumer_with_a_condition_holds_under_random_schedules() -> None:
    await _producer_consumer(recheck=True)


def test_the_explorer_catches_a_wait_that_does_not_recheck() -> None:
    async def broken() -> None:
        await _producer_consumer(recheck=False)

    with pytest.raises(ExplorationFailed) as info:
        explore_test(schedules=2000, chooser="dfs")(broken)()
    result = info.value.result
    assert result is not None
    assert result.failure is not None
    error = result.failure.execution.sim.error
    while isinstance(error, BaseExceptionGroup):  # the task group wraps the child's error
        error = error.exceptions[0]
    assert isinstance(error, IndexError)  # the second consumer popped an empty list


def test_the_explorer_catches_a_hand_made_condition_with_a_lost_wakeup() -> None:
    """Why `Condition` exists: release, yield, then park loses a wake in between."""

    async def hand_made() -> None:
        lock, queue = Mutex("lock"), WaitQueue("wake")
        ready: list[bool] = []

        async def waiter() -> None:
            await lock.acquire()
            while not ready:
                lock.release()
                await oa.checkpoint()  # the window: a wake here is lost
                await queue.park()
                await lock.acquire()
            lock.release()

        async def setter() -> None:
            async with lock:
                ready.append(True)
                queue.wake_one()

        async with oa.task_group() as tg:
            tg.start_soon(waiter, name="waiter")
            tg.start_soon(setter, name="setter")

    with pytest.raises(ExplorationFailed, match="deadlock"):
        explore_test(schedules=2000, chooser="dfs")(hand_made)()
