"""Properties of the primitives, checked in the sim over many seeded schedules.

Each ``check_*`` function runs a small concurrent program under many schedules and returns
a description of the first schedule that breaks the property, or None.  The real
primitives must pass; deliberately broken ones (a lock that forgets to wake, a queue that
drops a wake, a reader-preferring RWLock, ...) must be caught by the same checks, which is
what shows the checks can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.sync import _READ, _WRITE, Completion, Mutex, RWLock, SlotPool, WaitQueue

SEEDS = range(150)


def _first_failure(program: Callable[[], Any], seeds: range = SEEDS) -> str | None:
    for seed in seeds:
        r = sim.run(program, seed=seed, max_steps=20_000)
        if r.outcome != "ok":
            detail = r.deadlock.describe() if r.deadlock else repr(r.error)
            return f"seed {seed}: {r.outcome}: {detail}"
    return None


# --- the checks -------------------------------------------------------------------------


def check_mutual_exclusion(make: Callable[[], tuple[Any, Any]]) -> str | None:
    async def program() -> None:
        acquire, release = make()
        inside: list[str] = []

        async def worker(name: str) -> None:
            for _ in range(3):
                grant = await acquire()
                inside.append(name)
                await rt.checkpoint("critical section")
                assert inside == [name], f"mutual exclusion broken: {inside} inside at once"
                inside.remove(name)
                release(grant)

        async with rt.task_group() as tg:
            for i in range(3):
                tg.start_soon(worker, f"w{i}")

    return _first_failure(program)


def check_reader_writer_exclusion(make: Callable[[], RWLock]) -> str | None:
    async def program() -> None:
        lock = make()
        readers: set[str] = set()
        writers: set[str] = set()

        async def reader(name: str) -> None:
            for _ in range(2):
                async with lock.read_locked():
                    readers.add(name)
                    await rt.checkpoint()
                    assert not writers, f"{name} reads while {writers} write"
                    readers.discard(name)

        async def writer(name: str) -> None:
            for _ in range(2):
                async with lock.write_locked():
                    writers.add(name)
                    await rt.checkpoint()
                    assert writers == {name}, f"writers {writers} at once"
                    assert not readers, f"{name} writes while {readers} read"
                    writers.discard(name)

        async with rt.task_group() as tg:
            for i in range(2):
                tg.start_soon(reader, f"r{i}")
                tg.start_soon(writer, f"w{i}")

    return _first_failure(program)


def check_downgrade_atomicity(make: Callable[[], RWLock]) -> str | None:
    """What a writer wrote is still there after `downgrade`, and no writer got in between."""

    async def program() -> None:
        lock = make()
        shared = {"value": ""}

        async def downgrader(name: str) -> None:
            async with lock.write_locked():
                shared["value"] = name
                lock.downgrade()
                await rt.checkpoint("after downgrade")
                assert shared["value"] == name, f"a writer got in after {name}'s downgrade"
                assert lock.writer is None

        async def writer(name: str) -> None:
            async with lock.write_locked():
                shared["value"] = name
                await rt.checkpoint()

        async def reader() -> None:
            async with lock.read_locked():
                await rt.checkpoint()

        async with rt.task_group() as tg:
            tg.start_soon(downgrader, "d0")
            tg.start_soon(writer, "w0")
            tg.start_soon(reader)
            tg.start_soon(downgrader, "d1")
            tg.start_soon(writer, "w1")

    return _first_failure(program)


def check_no_writer_starvation(make: Callable[[], RWLock], readers: int = 3) -> str | None:
    """While a writer waits, at most `readers` read grants (those queued ahead of it)."""

    async def program() -> None:
        lock = make()
        done = {"writer": False}
        grants_while_writer_waits = 0

        async def reader() -> None:
            nonlocal grants_while_writer_waits
            while not done["writer"]:
                async with lock.read_locked():
                    if lock.statistics().writers_waiting:
                        grants_while_writer_waits += 1
                    assert grants_while_writer_waits <= readers, "a waiting writer is starved"
                    await rt.checkpoint()

        async def writer() -> None:
            await rt.checkpoint()
            async with lock.write_locked():
                done["writer"] = True

        async with rt.task_group() as tg:
            for _ in range(readers):
                tg.start_soon(reader)
            tg.start_soon(writer)

    return _first_failure(program)


def check_no_reader_starvation(make: Callable[[], RWLock], writers: int = 3) -> str | None:
    """While a reader waits, at most `writers` write grants (those queued ahead of it)."""

    async def program() -> None:
        lock = make()
        done = {"reader": False}
        grants_while_reader_waits = 0

        async def writer() -> None:
            nonlocal grants_while_reader_waits
            while not done["reader"]:
                async with lock.write_locked():
                    if lock.statistics().readers_waiting:
                        grants_while_reader_waits += 1
                    assert grants_while_reader_waits <= writers, "a waiting reader is starved"
                    await rt.checkpoint()

        async def reader() -> None:
            await rt.checkpoint()
            async with lock.read_locked():
                done["reader"] = True

        async with rt.task_group() as tg:
            for _ in range(writers):
                tg.start_soon(writer)
            tg.start_soon(reader)

    return _first_failure(program)


def check_no_lost_wakeup_under_cancellation(make: Callable[[], tuple[Any, Any]]) -> str | None:
    """Waiters cancelled at chooser-picked moments never take a wake with them.

    Each waiter either gets the primitive or is cancelled; at the end it is free, and a
    last acquire succeeds.  A waiter cancelled while queued must leave the queue, and one
    the grant reached before its cancellation holds it to its next checkpoint and
    releases it there (the sim follows trio); otherwise some waiter (or the final
    acquire) blocks forever: a deadlock.  (The give-back of a grant whose task was
    cancelled after it arrived happens live on asyncio with native cancellation:
    tests/test_woken_then_cancelled.py.)
    """

    async def program() -> None:
        acquire, release = make()
        scopes = [rt.cancel_scope() for _ in range(4)]

        async def waiter(i: int) -> None:
            with scopes[i]:
                grant = await acquire()
                try:
                    await rt.checkpoint()
                finally:
                    release(grant)

        async def canceller() -> None:
            for scope in scopes:
                if rt.draw(2, "cancel?"):
                    scope.cancel()
                await rt.checkpoint()

        grant = await acquire()
        async with rt.task_group() as tg:
            for i in range(4):
                tg.start_soon(waiter, i)
            tg.start_soon(canceller)
            await rt.checkpoint()
            release(grant)
        final = await acquire()
        release(final)

    return _first_failure(program)


def check_completion_semantics(make: Callable[[], Completion]) -> str | None:
    """complete() lets exactly one wait pass; complete_all() lets all pass."""

    async def program() -> None:
        c = make()
        passed = [0]

        async def waiter() -> None:
            await c.wait()
            passed[0] += 1

        async with rt.task_group() as tg:
            for _ in range(4):
                tg.start_soon(waiter)
            for _ in range(2):
                await rt.checkpoint()
                c.complete()
            while passed[0] < 2:
                await rt.checkpoint("let the two completions through")
            for _ in range(5):
                await rt.checkpoint()
                assert passed[0] == 2, f"{passed[0]} waits passed after 2 complete() calls"
            c.complete_all()
        assert passed[0] == 4
        await c.wait()  # complete_all holds for later waits too
        assert c.is_done()

    return _first_failure(program)


# --- the real primitives pass -----------------------------------------------------------


def _mutex() -> tuple[Any, Any]:
    m = Mutex("m")
    return m.acquire, lambda _: m.release()


def _rw_write() -> tuple[Any, Any]:
    lock = RWLock("rw")
    return lock.acquire_write, lambda _: lock.release_write()


def _pool() -> tuple[Any, Any]:
    pool = SlotPool(1, "p")
    return pool.acquire, pool.release


def _completion_as_lock() -> tuple[Any, Any]:
    c = Completion("c")
    c.complete()
    return c.wait, lambda _: c.complete()


@pytest.mark.parametrize("make", [_mutex, _rw_write, _pool, _completion_as_lock])
def test_mutual_exclusion(make: Callable[[], tuple[Any, Any]]) -> None:
    assert check_mutual_exclusion(make) is None


@pytest.mark.parametrize("make", [_mutex, _rw_write, _pool, _completion_as_lock])
def test_no_lost_wakeup_under_cancellation(make: Callable[[], tuple[Any, Any]]) -> None:
    assert check_no_lost_wakeup_under_cancellation(make) is None


def test_rwlock_properties() -> None:
    assert check_reader_writer_exclusion(RWLock) is None
    assert check_downgrade_atomicity(RWLock) is None
    assert check_no_writer_starvation(RWLock) is None
    assert check_no_reader_starvation(RWLock) is None


def test_completion_properties() -> None:
    assert check_completion_semantics(Completion) is None


# --- and deliberately broken ones are caught --------------------------------------------


class MutexThatForgetsToWake(Mutex):
    def _release(self) -> None:
        self._owner = None  # the waiter stays parked forever


class MutexThatDoesNotExclude(Mutex):
    def _try(self, task: object, kind: int) -> object:
        self._owner = task
        return None

    def release(self) -> None:
        self._owner = None


class ReaderPreferringRWLock(RWLock):
    def _try(self, task: object, kind: int) -> object:
        if kind == _READ and self._writer is None:
            self._readers[task] = 1  # barges past queued writers
            return None
        return super()._try(task, kind)


class WriterPreferringRWLock(RWLock):
    def _grant(self) -> None:
        queue = self._queue
        if self._writer is not None or self._readers:
            return
        for w in list(queue._waiters):
            if w.kind == _WRITE:  # any queued writer before every reader
                del queue._waiters[w]
                self._writer = w.task
                WaitQueue._hand(w, None)
                return
        super()._grant()

    def _try(self, task: object, kind: int) -> object:
        if kind == _WRITE and self._writer is None and not self._readers:
            self._writer = task  # barges past queued readers
            return None
        return super()._try(task, kind)


class RWLockWithDowngradeWindow(RWLock):
    def downgrade(self) -> None:
        task = rt.current_task()
        self.release_write()  # a writer at the head gets in here
        self._readers[task] = 1  # and the downgrader reads alongside it


class CompletionThatWakesEveryone(Completion):
    def complete(self) -> None:
        if not self._queue.wake_all("one"):
            self._done += 1


def _make_lock(cls: type[Mutex]) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        m = cls("m")
        return m.acquire, lambda _: m.release()

    return make


def test_a_lock_that_forgets_to_wake_is_caught() -> None:
    failure = check_mutual_exclusion(_make_lock(MutexThatForgetsToWake))
    assert failure is not None
    assert "deadlock" in failure


def test_a_lock_that_does_not_exclude_is_caught() -> None:
    failure = check_mutual_exclusion(_make_lock(MutexThatDoesNotExclude))
    assert failure is not None
    assert "mutual exclusion broken" in failure


def test_a_reader_preferring_rwlock_is_caught() -> None:
    failure = check_no_writer_starvation(ReaderPreferringRWLock)
    assert failure is not None
    assert "starved" in failure or "step-limit" in failure


def test_a_writer_preferring_rwlock_is_caught() -> None:
    failure = check_no_reader_starvation(WriterPreferringRWLock)
    assert failure is not None
    assert "starved" in failure or "step-limit" in failure


def test_a_downgrade_with_a_window_is_caught() -> None:
    failure = check_downgrade_atomicity(RWLockWithDowngradeWindow)
    assert failure is not None
    assert "got in after" in failure


def test_a_completion_that_wakes_everyone_is_caught() -> None:
    failure = check_completion_semantics(CompletionThatWakesEveryone)
    assert failure is not None
    assert "waits passed after 2 complete() calls" in failure


def test_invariants_hold_after_every_step() -> None:
    """Run a mixed workload and check every primitive's invariants at each checkpoint."""

    async def program() -> None:
        m, lock, pool, c = Mutex("m"), RWLock("rw"), SlotPool(2, "p"), Completion("c")

        def check() -> None:
            for p in (m, lock, pool, c):
                p._check_invariants()

        async def worker(i: int) -> None:
            for _ in range(3):
                async with m:
                    check()
                async with lock.read_locked() if i % 2 else lock.write_locked():
                    check()
                    await rt.checkpoint()
                    if i % 2 == 0 and rt.draw(2, "downgrade?"):
                        lock.downgrade()
                    check()
                slot = await pool.acquire()
                check()
                pool.release(slot)
                check()
            c.complete()

        async with rt.task_group() as tg:
            for i in range(4):
                tg.start_soon(worker, i)
        for _ in range(4):
            await c.wait()
        check()

    assert _first_failure(program, range(60)) is None
