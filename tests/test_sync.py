"""The primitives of `odp_async.sync`, on the sim, asyncio and trio (one `runtime` fixture)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.errors import InvalidArgument, ProtocolViolation, WouldBlock
from odp_async.sync import (
    Completion,
    CompletionStatistics,
    Mutex,
    MutexStatistics,
    RWLock,
    RWLockStatistics,
    SlotPool,
    SlotPoolStatistics,
    WaitQueue,
)
from tests.conftest import Runner

# --- one generic test of "a lock", over every way of holding something exclusively ----


class _LockFactory:
    """Adapts each primitive to acquire()/release()/waiting() (trio's generic_lock_test
    idea): `waiting()` is how many tasks are queued on it."""

    def __init__(self, name: str, make: Callable[[], Any]) -> None:
        self.name = name
        self.make = make

    def __repr__(self) -> str:
        return self.name


LockOps = tuple[Callable[[], Awaitable[Any]], Callable[[Any], None], Callable[[], int]]


def _mutex() -> LockOps:
    m = Mutex("m")
    return m.acquire, lambda _: m.release(), lambda: m.statistics().tasks_waiting


def _write_lock() -> LockOps:
    lock = RWLock("rw")
    return (
        lock.acquire_write,
        lambda _: lock.release_write(),
        lambda: lock.statistics().writers_waiting,
    )


def _pool_of_one() -> LockOps:
    pool = SlotPool(1, "p")
    return pool.acquire, pool.release, lambda: pool.statistics().tasks_waiting


def _fast_mutex() -> LockOps:
    m = Mutex("m", fast_acquire=True)
    return m.acquire, lambda _: m.release(), lambda: m.statistics().tasks_waiting


async def until(predicate: Callable[[], bool]) -> None:
    """Yield until `predicate()` holds: ordering by observed state, not by the clock.
    A predicate still false after 10,000 checkpoints (far more than any wait here needs)
    fails the test at once instead of spinning to the run's step bound (a mutant of a
    primitive's accessor under tools/mutation.sh)."""
    for _ in range(10_000):
        if predicate():
            return
        await rt.checkpoint("until")
    raise AssertionError("until(): the predicate never held")


LOCKS = [
    _LockFactory("Mutex", _mutex),
    _LockFactory("Mutex(fast)", _fast_mutex),
    _LockFactory("RWLock.write", _write_lock),
    _LockFactory("SlotPool(1)", _pool_of_one),
]


@pytest.mark.parametrize("factory", LOCKS, ids=repr)
def test_lock_excludes_and_hands_off_in_fifo_order(runtime: Runner, factory: _LockFactory) -> None:
    async def main() -> list[int]:
        acquire, release, waiting = factory.make()
        inside: list[int] = []
        order: list[int] = []

        async def worker(i: int) -> None:
            grant = await acquire()
            inside.append(i)
            assert len(inside) == 1
            order.append(i)
            for _ in range(3):
                await rt.checkpoint()
            inside.remove(i)
            release(grant)

        grant = await acquire()
        async with rt.task_group() as tg:
            for i in range(5):
                tg.start_soon(worker, i)
                await until(lambda i=i: waiting() == i + 1)  # queued in order 0, 1, ...
            release(grant)
        return order

    assert runtime.run(main) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("factory", LOCKS, ids=repr)
def test_cancelled_waiter_leaves_no_trace(runtime: Runner, factory: _LockFactory) -> None:
    async def main() -> list[str]:
        acquire, release, waiting = factory.make()
        log: list[str] = []
        grant = await acquire()
        scope = rt.cancel_scope()

        async def gives_up() -> None:
            with scope:
                await acquire()
                log.append("gives_up acquired")
            log.append("gives_up left")

        async def patient() -> None:
            g = await acquire()
            log.append("patient acquired")
            release(g)

        async with rt.task_group() as tg:
            tg.start_soon(gives_up)
            await until(lambda: waiting() == 1)
            tg.start_soon(patient)
            await until(lambda: waiting() == 2)
            scope.cancel()
            await until(lambda: "gives_up left" in log)
            assert waiting() == 1
            release(grant)
        g = await acquire()  # free again: nothing stuck, nothing leaked
        release(g)
        return log

    assert runtime.run(main) == ["gives_up left", "patient acquired"]


@pytest.mark.parametrize("factory", LOCKS, ids=repr)
def test_acquire_in_cancelled_scope(runtime: Runner, factory: _LockFactory) -> None:
    """A blocking method is a checkpoint: cancelled -> raises and holds nothing.

    With ``fast_acquire``, a free lock is taken without yielding; trio still refuses a
    cancelled task (its cancellation check is cheap), asyncio takes the lock (as
    ``asyncio.Lock`` does), and the sim keeps every acquire a full checkpoint.
    """

    async def main() -> str:
        acquire, release, _ = factory.make()
        with rt.cancel_scope() as scope:
            scope.cancel()
            grant = await acquire()
            release(grant)
            return "acquired without a checkpoint"
        grant = await acquire()  # the lock must be free
        release(grant)
        return "cancelled"

    expected = "cancelled"
    if factory.name == "Mutex(fast)" and runtime.name == "asyncio":
        expected = "acquired without a checkpoint"
    assert runtime.run(main) == expected


def test_mutex_misuse(runtime: Runner) -> None:
    async def main() -> list[str]:
        m = Mutex("m")
        errors: list[str] = []
        try:
            m.release()
        except ProtocolViolation as e:
            errors.append(str(e))
        await m.acquire()
        try:
            if runtime.is_sim:
                # a blocking re-acquire self-deadlocks under the sim (tests/test_deadlock.py)
                m.acquire_nowait()
            else:
                await m.acquire()
        except ProtocolViolation as e:
            errors.append(str(e))

        async def other() -> None:
            try:
                m.release()
            except ProtocolViolation as e:
                errors.append(str(e))

        async with rt.task_group() as tg:
            tg.start_soon(other, name="intruder")
        m.release()
        return errors

    not_held, reentered, intruder = runtime.run(main)
    assert "release() of Mutex 'm'" in not_held
    assert "held by nobody" in not_held
    assert "not reentrant" in reentered
    assert "intruder" in intruder


def test_mutex_nowait_and_statistics(runtime: Runner) -> None:
    async def main() -> tuple[MutexStatistics, MutexStatistics, str]:
        m = Mutex("m")
        m.acquire_nowait()
        held = m.statistics()
        message = ""

        async def other() -> None:
            nonlocal message
            try:
                m.acquire_nowait()
            except WouldBlock as e:
                message = str(e)

        async with rt.task_group() as tg:
            tg.start_soon(other)
        m.release()
        return held, m.statistics(), message

    held, free, message = runtime.run(main)
    assert (held.locked, held.tasks_waiting) == (True, 0)
    assert held.owner is not None
    assert free == MutexStatistics(False, None, 0)
    assert "Mutex 'm'" in message


def test_rwlock_readers_share_writer_excludes(runtime: Runner) -> None:
    async def main() -> list[str]:
        lock = RWLock("rw")
        log: list[str] = []
        both_in = Completion("both readers in")

        async def reader(i: int) -> None:
            async with lock.read_locked():
                log.append(f"r{i} in")
                if len(lock.readers) == 2:
                    both_in.complete_all()
                await both_in.wait()
                await until(lambda: lock.statistics().writers_waiting == 1)
                log.append(f"r{i} out")

        async def writer() -> None:
            await both_in.wait()
            async with lock.write_locked():
                log.append("w in")
                log.append("w out")

        async with rt.task_group() as tg:
            tg.start_soon(reader, 0)
            tg.start_soon(reader, 1)
            tg.start_soon(writer)
        return log

    log = runtime.run(main)
    assert sorted(log[:2]) == ["r0 in", "r1 in"]
    assert log[-2:] == ["w in", "w out"]


def test_rwlock_downgrade_admits_readers_not_writers(runtime: Runner) -> None:
    async def main() -> list[str]:
        lock = RWLock("rw")
        log: list[str] = []
        await lock.acquire_write()

        async def reader() -> None:
            async with lock.read_locked():
                log.append("reader in")

        async def writer() -> None:
            async with lock.write_locked():
                log.append("writer in")

        async with rt.task_group() as tg:
            tg.start_soon(reader)
            await until(lambda: lock.statistics().readers_waiting == 1)
            tg.start_soon(writer)
            await until(lambda: lock.statistics().writers_waiting == 1)
            lock.downgrade()
            log.append("downgraded")
            await until(lambda: "reader in" in log)
            log.append("still reading")
            lock.release_read()
        return log

    assert runtime.run(main) == ["downgraded", "reader in", "still reading", "writer in"]


def test_rwlock_misuse(runtime: Runner) -> None:
    async def main() -> list[str]:
        lock = RWLock("rw")
        errors: list[str] = []
        for call in (lock.release_read, lock.release_write, lock.downgrade):
            try:
                call()
            except ProtocolViolation as e:
                errors.append(str(e))
        # Under the sim a blocking recursive acquire self-deadlocks (tests/test_deadlock.py):
        # there the sync twins show the same misuse.
        await lock.acquire_read()
        try:
            if runtime.is_sim:
                lock.acquire_write_nowait()
            else:
                await lock.acquire_write()
        except ProtocolViolation as e:
            errors.append(str(e))
        lock.release_read()
        await lock.acquire_write()
        for acquire, nowait in (
            (lock.acquire_read, lock.acquire_read_nowait),
            (lock.acquire_write, lock.acquire_write_nowait),
        ):
            try:
                if runtime.is_sim:
                    nowait()
                else:
                    await acquire()
            except ProtocolViolation as e:
                errors.append(str(e))
        lock.release_write()
        return errors

    errors = runtime.run(main)
    assert len(errors) == 6
    assert "release_read() of RWLock 'rw'" in errors[0]
    assert "not held" in errors[0]
    assert "held for reading" in errors[3]
    assert all("there is no upgrade" in e for e in errors[3:])
    assert all("held for writing" in e for e in errors[4:])


def test_rwlock_read_locks_nest(runtime: Runner) -> None:
    async def main() -> tuple[int, int, bool]:
        lock = RWLock("rw")
        await lock.acquire_read()
        await lock.acquire_read()
        twice = len(lock.readers)
        lock.release_read()
        still = len(lock.readers)
        lock.release_read()
        return twice, still, lock.try_acquire_write()

    assert runtime.run(main) == (1, 1, True)


def test_rwlock_try_variants_and_statistics(runtime: Runner) -> None:
    async def main() -> tuple[bool, bool, RWLockStatistics, bool]:
        lock = RWLock("rw")
        got_read = lock.try_acquire_read()
        seen: list[bool] = []

        async def other() -> None:
            seen.append(lock.try_acquire_write())
            try:
                lock.acquire_write_nowait()
            except WouldBlock:
                seen.append(False)

        async with rt.task_group() as tg:
            tg.start_soon(other)
        stats = lock.statistics()
        lock.release_read()
        return got_read, any(seen), stats, lock.try_acquire_write()

    got_read, other_got_write, stats, later_write = runtime.run(main)
    assert got_read
    assert not other_got_write
    assert (stats.writer, len(stats.readers), stats.writers_waiting) == (None, 1, 0)
    assert later_write


def test_completion_semantics(runtime: Runner) -> None:
    async def main() -> list[object]:
        c = Completion("c")
        out: list[object] = [c.is_done(), c.try_wait()]
        c.complete()
        c.complete()
        out += [c.statistics(), c.try_wait()]
        await c.wait()  # the second remembered complete()
        out.append(c.try_wait())
        c.complete_all()
        for _ in range(3):
            await c.wait()  # every wait passes after complete_all
        out.append(c.is_done())
        c.reinit()
        out.append(c.is_done())
        return out

    assert runtime.run(main) == [
        False,
        False,
        CompletionStatistics(2, False, 0),
        True,
        False,
        True,
        False,
    ]


def test_completion_complete_wakes_exactly_one(runtime: Runner) -> None:
    async def main() -> list[int]:
        c = Completion("c")
        passed: list[int] = []

        async def waiter(i: int) -> None:
            await c.wait()
            passed.append(i)

        async with rt.task_group() as tg:
            for i in range(3):
                tg.start_soon(waiter, i)
            await until(lambda: c.statistics().tasks_waiting == 3)
            c.complete()
            await until(lambda: len(passed) == 1)
            for _ in range(10):
                await rt.checkpoint()  # room for a wrong second wake to show
            first = list(passed)
            c.complete_all()
        return [*first, -1, *sorted(passed)]

    result = runtime.run(main)
    assert len(result[: result.index(-1)]) == 1
    assert sorted(result[result.index(-1) + 1 :]) == [0, 1, 2]


def test_completion_reinit_with_waiters_is_refused(runtime: Runner) -> None:
    async def main() -> str:
        c = Completion("c")
        message = ""

        async def waiter() -> None:
            await c.wait()

        async with rt.task_group() as tg:
            tg.start_soon(waiter)
            await until(lambda: c.statistics().tasks_waiting == 1)
            try:
                c.reinit()
            except ProtocolViolation as e:
                message = str(e)
            c.complete()
        return message

    assert "while 1 task waits" in runtime.run(main)


def test_slot_pool_hands_out_distinct_slots(runtime: Runner) -> None:
    async def main() -> tuple[list[int], SlotPoolStatistics, str]:
        pool = SlotPool(3, "p")
        slots = [await pool.acquire() for _ in range(3)]
        stats = pool.statistics()
        message = ""
        try:
            pool.acquire_nowait()
        except WouldBlock as e:
            message = str(e)
        for s in slots:
            pool.release(s)
        return slots, stats, message

    slots, stats, message = runtime.run(main)
    assert sorted(slots) == [0, 1, 2]
    assert (stats.size, stats.free, stats.tasks_waiting, len(stats.holders)) == (3, 0, 0, 3)
    assert "SlotPool 'p'" in message


def test_slot_pool_release_unknown_slot(runtime: Runner) -> None:
    async def main() -> str:
        pool = SlotPool(2, "p")
        try:
            pool.release(1)
        except ProtocolViolation as e:
            return str(e)
        return ""

    assert "release(1) of SlotPool 'p': that slot is not taken" in runtime.run(main)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: SlotPool(-1), "at least 1, got -1"),
        (lambda: SlotPool(0), "at least 1, got 0"),
        (lambda: SlotPool("3"), "'3' (str)"),  # type: ignore[arg-type]
        (lambda: Mutex(name=5), "5 (int)"),  # type: ignore[arg-type]
    ],
)
def test_bad_construction_names_the_value(make: Callable[[], object], needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_wait_queue_park_and_wake(runtime: Runner) -> None:
    async def main() -> list[object]:
        q = WaitQueue("q")
        got: list[object] = []

        async def parker(i: int) -> None:
            got.append((i, await q.park()))

        async with rt.task_group() as tg:
            for i in range(3):
                tg.start_soon(parker, i)
                await until(lambda i=i: len(q) == i + 1)
            assert q.wake_one("first")
            await until(lambda: len(got) == 1)
            assert q.wake_all("rest") == 2
        assert not q.wake_one()
        return got

    got = runtime.run(main)
    assert got[0] == (0, "first")
    assert sorted(got[1:]) == [(1, "rest"), (2, "rest")]


def test_every_acquire_is_a_choice_point_in_the_sim() -> None:
    async def main() -> None:
        m = Mutex("m", fast_acquire=True)
        await m.acquire()
        m.release()
        await m.acquire()
        m.release()

    r = sim.run(main, trace=True)
    assert r.trace is not None
    assert [label for (_, _, op, label) in r.trace if op == sim.CHECKPOINT] == [
        "Mutex 'm'",
        "Mutex 'm'",
    ]
    # and the trace shows the holds, for timelines
    assert [label for (_, _, op, label) in r.trace if op == sim.NOTE] == [
        ("acquire", "Mutex 'm'"),
        ("release", "Mutex 'm'"),
        ("acquire", "Mutex 'm'"),
        ("release", "Mutex 'm'"),
    ]


def test_a_cancelled_writer_lets_the_readers_behind_it_in(runtime: Runner) -> None:
    """rwsem: a writer that gives up while readers hold must not strand later readers."""

    async def main() -> list[str]:
        lock = RWLock("rw")
        log: list[str] = []
        go = Completion("go")
        scope = rt.cancel_scope()

        async def first_reader() -> None:
            async with lock.read_locked():
                log.append("r1 in")
                await go.wait()

        async def impatient_writer() -> None:
            with scope:
                await lock.acquire_write()
                lock.release_write()
            log.append("writer gave up")

        async def second_reader() -> None:
            async with lock.read_locked():
                log.append("r2 in")
                go.complete()

        def queued() -> tuple[int, int]:
            stats = lock.statistics()
            return stats.writers_waiting, stats.readers_waiting

        async with rt.task_group() as tg:
            tg.start_soon(first_reader)
            await until(lambda: len(lock.readers) == 1)
            tg.start_soon(impatient_writer)
            await until(lambda: queued() == (1, 0))
            tg.start_soon(second_reader)
            await until(lambda: queued() == (1, 1))  # r2 queued behind the writer
            scope.cancel()
        lock._check_invariants()
        return log

    log = runtime.run(main)
    assert log[0] == "r1 in"
    assert sorted(log[1:]) == ["r2 in", "writer gave up"]  # r2 got in: nothing stranded


def test_a_task_group_body_error_is_grouped_everywhere(runtime: Runner) -> None:
    async def main() -> None:
        async with rt.task_group() as tg:
            tg.start_soon(rt.sleep, 10)
            raise KeyError("body")

    with pytest.raises(ExceptionGroup) as info:
        runtime.run(main)
    assert [type(e) for e in info.value.exceptions] == [KeyError]


def test_a_shield_raised_after_a_cancel_does_not_fake_a_wake() -> None:
    async def main() -> tuple[list[str], bool]:
        q = WaitQueue("q")
        log: list[str] = []
        outer = rt.cancel_scope()
        inner = rt.cancel_scope()

        async def parker() -> None:
            with outer, inner:
                await q.park()
                log.append("woken")
            log.append("left")

        async with rt.task_group() as tg:
            tg.start_soon(parker)
            await rt.sleep(1)
            outer.cancel()
            inner.shield = True
        return log, q.wake_one()

    assert sim.run(main).unwrap() == (["left"], False)
