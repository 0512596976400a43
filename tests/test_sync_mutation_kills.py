"""Mechanisms of `odp_async.sync` that no other test pinned (found by mutation testing,
tools/mutation.sh sync): what the non-blocking operations note in the sim step (footprint
and trace), the messages that name the holders, the give-back of a grant a cancelled task
will not keep, and what each primitive's invariant check reports."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import anyio
import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.choosers import FifoChooser
from odp_async._runtime.footprint import FieldOf, Footprint, GateOpened, ReadOf
from odp_async._runtime.sim import NOTE
from odp_async.errors import InvalidArgument, ProtocolViolation, WouldBlock
from odp_async.sync import (
    MAX_POOL_SIZE,
    Completion,
    CompletionStatistics,
    Condition,
    ConditionStatistics,
    Mutex,
    MutexStatistics,
    RWLock,
    SlotPool,
    WaitQueue,
    _Blocking,
)
from tests.conftest import Runner


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


class _FootprintRecorder:
    """A FIFO chooser that keeps each step's footprint (as DPOR's chooser would read it)."""

    wants_footprints = True
    footprints_noted_only = True
    ask_always = True

    def __init__(self) -> None:
        self.footprints: list[Footprint | None] = []

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        if last is not None:
            self.footprints.append(last.footprint)
        return 0

    def draw(self, n: int, label: object) -> int:
        return 0


def _noted(op: Callable[[], object]) -> tuple[set[object], list[tuple[str, str]], object]:
    """Run `op` alone in one sim step: what the step wrote (its footprint), the trace's
    notes, and what `op` returned (or the exception it raised)."""
    recorder = _FootprintRecorder()

    async def main() -> object:
        await rt.checkpoint("before")
        try:
            got: object = op()
        except (WouldBlock, ProtocolViolation) as e:
            got = e
        await rt.checkpoint("after")
        return got

    r = sim.run(main, chooser=recorder, trace=True)
    got = r.unwrap()
    writes: set[object] = set()
    for fp in recorder.footprints:
        assert fp is not None
        writes |= fp.writes
    assert r.trace is not None
    notes = [label for (_, _, op_, label) in r.trace if op_ == sim.NOTE]
    return writes, notes, got


# --- the non-blocking operations note their primitive and their event -----------------


def test_rwlock_nowait_and_try_operations_note_the_lock_and_the_event() -> None:
    for name, event in [
        ("acquire_read_nowait", "acquire-read"),
        ("try_acquire_read", "acquire-read"),
        ("acquire_write_nowait", "acquire-write"),
        ("try_acquire_write", "acquire-write"),
    ]:
        lock = RWLock("rw")
        writes, notes, got = _noted(getattr(lock, name))
        assert writes == {lock}, name
        assert notes == [(event, "RWLock 'rw'")], name
        assert got in (None, True), name
        held = lock.writer if event == "acquire-write" else (lock.readers or None)
        assert held is not None, name


def test_a_failed_trylock_notes_a_failed_attempt_not_a_hold() -> None:
    """A refused trylock still touches the primitive (footprint), but its trace note is
    ``try-<event>-failed``: a trace must not show a hold that never happened."""
    lock, pool = RWLock("rw"), SlotPool(1, "pool")

    async def main() -> None:
        done = False

        async def holder() -> None:
            lock.acquire_write_nowait()
            pool.acquire_nowait()
            await until(lambda: done)

        async with rt.task_group() as tg:
            tg.start_soon(holder)
            await until(lambda: lock.writer is not None)
            assert not lock.try_acquire_read()
            assert not lock.try_acquire_write()
            with pytest.raises(WouldBlock):
                pool.acquire_nowait()
            done = True

    r = sim.run(main, trace=True)
    r.unwrap()
    assert r.trace is not None
    notes = [label for (_, _, op, label) in r.trace if op == sim.NOTE]
    assert notes == [
        ("acquire-write", "RWLock 'rw'"),
        ("acquire", "SlotPool 'pool' (0 free)"),
        ("try-acquire-read-failed", "RWLock 'rw'"),
        ("try-acquire-write-failed", "RWLock 'rw'"),
        ("try-acquire-failed", "SlotPool 'pool' (0 free)"),
    ]


def test_rwlock_nowait_refusals_say_which_lock_and_what_for() -> None:
    lock = RWLock("rw")

    async def main() -> list[object]:
        out: list[object] = []

        async def writer() -> None:
            lock.acquire_write_nowait()
            await until(lambda: len(out) == 4)
            lock.release_write()

        async with rt.task_group() as tg:
            tg.start_soon(writer)
            await until(lambda: lock.writer is not None)
            for op in (lock.acquire_read_nowait, lock.acquire_write_nowait):
                try:
                    op()
                except WouldBlock as e:
                    out.append(str(e))
            out += [lock.try_acquire_read(), lock.try_acquire_write()]
        return out

    out = sim.run(main).unwrap()
    assert out[0] == "<RWLock 'rw' write-locked waiting=0> cannot be read-locked now"
    assert out[1] == "<RWLock 'rw' write-locked waiting=0> cannot be write-locked now"
    assert out[2:] == [False, False]


def test_a_reader_asking_to_write_without_blocking_is_refused(runtime: Runner) -> None:
    """No upgrade: a read holder's try_acquire_write/acquire_write_nowait is an error,
    not a plain "would block"."""

    async def main() -> list[str]:
        lock = RWLock("rw")
        await lock.acquire_read()
        out = []
        for op in (lock.try_acquire_write, lock.acquire_write_nowait):
            try:
                op()
            except ProtocolViolation as e:
                out.append(str(e))
        lock.release_read()
        return out

    out = runtime.run(main)
    assert len(out) == 2
    assert all("already held for reading" in m and "no upgrade" in m for m in out)


def test_slot_pool_acquire_nowait_notes_the_pool_and_records_the_holder() -> None:
    pool = SlotPool(2, "p")
    writes, notes, got = _noted(pool.acquire_nowait)
    # noted after the attempt: the pool as the acquire left it
    assert (writes, notes, got) == ({pool}, [("acquire", "SlotPool 'p' (1 free)")], 0)
    (holder,) = pool.statistics().holders
    assert holder is not None


def test_slot_pool_acquire_nowait_names_its_holder_in_the_pool_statistics(
    runtime: Runner,
) -> None:
    async def main() -> bool:
        pool = SlotPool(1, "p")
        slot = pool.acquire_nowait()
        me = rt.current_task()
        holders = pool.statistics().holders
        pool.release(slot)
        return holders == (me,)

    assert runtime.run(main)


def test_completion_try_and_nowait_note_the_completion() -> None:
    c = Completion("c")
    writes, notes, got = _noted(c.try_wait)
    assert (writes, notes, got) == ({c}, [], False)
    c = Completion("c")
    writes, notes, got = _noted(c.wait_nowait)
    assert writes == {c}
    assert isinstance(got, WouldBlock)
    assert str(got) == "<Completion 'c' done=0 waiting=0> is not completed"


def test_completion_wait_nowait_consumes_one_complete(runtime: Runner) -> None:
    async def main() -> list[object]:
        c = Completion("c")
        out: list[object] = [c.is_done()]
        c.complete()
        out.append(c.is_done())  # one complete() is enough for a wait to pass
        c.complete()
        c.wait_nowait()
        out.append(c.statistics().done)
        assert c.try_wait()
        out.append(c.is_done())
        try:
            c.wait_nowait()
        except WouldBlock as e:
            out.append(str(e))
        c.complete_all()
        c.wait_nowait()
        c.wait_nowait()
        out.append(c.try_wait())
        return out

    assert runtime.run(main) == [
        False,
        True,
        1,
        False,
        "<Completion 'c' done=0 waiting=0> is not completed",
        True,
    ]


# --- the invariant checks (tests call them after every step) report what broke ---------


class _FakeWaiter:
    """Stands for a parked task in a queue whose state a test breaks on purpose."""

    def __init__(self, task: object, kind: int = 0) -> None:
        self.task = task
        self.kind = kind


def _broken(check: Callable[[], None]) -> str:
    with pytest.raises(AssertionError) as info:
        check()
    return str(info.value).splitlines()[0]  # pytest may add its explanation below


def test_mutex_invariant_check_names_a_free_mutex_with_waiters() -> None:
    m = Mutex("m")
    m._check_invariants()
    m._queue._waiters[_FakeWaiter("t")] = None  # type: ignore[index]
    assert _broken(m._check_invariants) == "free mutex with waiters"
    m._owner = "holder"
    m._check_invariants()


def test_rwlock_invariant_check_names_each_broken_invariant() -> None:
    lock = RWLock("rw")
    lock._check_invariants()
    lock._writer, lock._readers = "w", {"r": 1}
    assert _broken(lock._check_invariants) == "writer and readers at once"

    lock = RWLock("rw")
    lock._queue._waiters[_FakeWaiter("t", 2)] = None  # type: ignore[index]
    assert _broken(lock._check_invariants) == "free RWLock with waiters"

    lock = RWLock("rw")
    lock._readers = {"r": 1}
    lock._queue._waiters[_FakeWaiter("w", 2)] = None  # type: ignore[index]
    lock._check_invariants()  # a writer waits behind the readers: fine
    lock._queue._waiters.clear()
    lock._queue._waiters[_FakeWaiter("r2", 1)] = None  # type: ignore[index]
    assert _broken(lock._check_invariants) == "reader at the head of the queue while readers hold"


def test_completion_invariant_check_names_a_completed_completion_with_waiters() -> None:
    c = Completion("c")
    c._queue._waiters[_FakeWaiter("t")] = None  # type: ignore[index]
    c._check_invariants()  # not completed: waiters are expected
    c._done = 1
    assert _broken(c._check_invariants) == "completed Completion with waiters"
    c._done, c._all = 0, True
    assert _broken(c._check_invariants) == "completed Completion with waiters"


def test_slot_pool_invariant_check_names_each_broken_invariant() -> None:
    pool = SlotPool(2, "p")
    pool._check_invariants()
    pool._holders[0] = "t"
    assert _broken(pool._check_invariants) == "a slot both free and held"
    pool = SlotPool(2, "p")
    pool._free.pop()
    assert _broken(pool._check_invariants) == "a slot went missing"
    pool = SlotPool(1, "p")
    pool._queue._waiters[_FakeWaiter("t")] = None  # type: ignore[index]
    assert _broken(pool._check_invariants) == "free slot with waiters"
    pool._holders[pool._free.pop()] = "holder"
    pool._check_invariants()  # every slot taken: waiters are expected


def test_condition_invariant_check_names_a_waiter_holding_the_lock() -> None:
    cond = Condition(Mutex("m"))
    cond._queue._waiters[_FakeWaiter("t")] = None  # type: ignore[index]
    cond._check_invariants()
    cond.lock._owner = "t"
    assert _broken(cond._check_invariants) == "a waiter holds the condition's lock"


# --- reprs, descriptions, statistics ---------------------------------------------------


def test_wait_queue_repr_description_and_statistics() -> None:
    named, bare = WaitQueue("q"), WaitQueue()
    assert repr(named) == "<WaitQueue 'q' waiting=0>"
    assert repr(bare) == "<WaitQueue waiting=0>"
    assert named.describe_wait() == ("WaitQueue 'q'", ())
    assert bare.describe_wait() == ("WaitQueue", ())
    named._waiters[_FakeWaiter("t")] = None  # type: ignore[index]
    assert named.statistics().tasks_waiting == 1
    assert repr(named) == "<WaitQueue 'q' waiting=1>"


def test_a_free_mutex_names_no_holder() -> None:
    assert Mutex("m").describe_wait() == ("Mutex 'm'", ())


def test_wake_one_and_complete_note_their_primitive() -> None:
    q, c = WaitQueue("q"), Completion("c")
    # Nobody parked: the wake reads the queue (two such wakes commute; a park writes it).
    assert _noted(q.wake_one) == ({ReadOf(q)}, [], False)
    assert _noted(q.wake_all) == ({ReadOf(q)}, [], 0)
    assert _noted(c.complete) == ({c}, [], None)
    assert c.statistics().done == 1


def test_notify_and_notify_all_note_the_condition() -> None:
    cond = Condition(Mutex("m"))

    def notify_under_the_lock() -> None:
        cond.acquire_nowait()
        cond.notify()
        cond.notify_all()
        cond.release()

    writes, _, _ = _noted(notify_under_the_lock)
    assert {cond, cond.lock} <= writes
    assert None not in writes


def test_rwlock_statistics_count_each_kind_of_waiter(runtime: Runner) -> None:
    async def main() -> tuple[bool, tuple[object, ...], int, int]:
        lock = RWLock("rw")

        async def reader() -> None:
            await lock.acquire_read()
            lock.release_read()

        async def writer() -> None:
            await lock.acquire_write()
            lock.release_write()

        await lock.acquire_write()
        async with rt.task_group() as tg:
            for task in (reader, writer, reader):
                tg.start_soon(task)
            await until(lambda: len(lock._queue) == 3)
            stats = lock.statistics()
            lock.release_write()
        return (
            stats.writer is rt.current_task(),
            stats.readers,
            stats.readers_waiting,
            stats.writers_waiting,
        )

    assert runtime.run(main) == (True, (), 2, 1)


def test_condition_statistics_count_the_waiters(runtime: Runner) -> None:
    async def main() -> int:
        cond = Condition(Mutex("m"))

        async def waiter() -> None:
            async with cond:
                await cond.wait()

        async with rt.task_group() as tg:
            tg.start_soon(waiter)
            tg.start_soon(waiter)
            await until(lambda: len(cond._queue) == 2)
            waiting = cond.statistics().tasks_waiting
            async with cond:
                cond.notify_all()
        return waiting

    assert runtime.run(main) == 2


# --- what the errors say ------------------------------------------------------------


def test_release_read_by_a_non_holder_names_who_holds_the_lock(runtime: Runner) -> None:
    async def main() -> list[str]:
        lock = RWLock("rw")
        out: list[str] = []

        def stray_release() -> None:
            try:
                lock.release_read()
            except ProtocolViolation as e:
                out.append(str(e))

        stray_release()
        done = Completion("done")

        async def holder(write: bool) -> None:
            await (lock.acquire_write() if write else lock.acquire_read())
            await done.wait()
            lock.release_write() if write else lock.release_read()

        for readers in ([True], [False, False]):
            done.reinit()
            async with rt.task_group() as tg:
                for i, write in enumerate(readers):
                    tg.start_soon(holder, write, name=f"h{i}")
                n = len(readers)
                await until(lambda n=n: lock.writer is not None or len(lock.readers) == n)
                stray_release()
                done.complete_all()
        return out

    out = runtime.run(main)
    assert len(out) == 3
    assert out[0].endswith("which does not hold it for reading (not held)")
    assert out[1].endswith("which does not hold it for reading (write-held by h0)")
    assert out[2].endswith(
        ("for reading (read-held by h0, h1)", "for reading (read-held by h1, h0)")
    )


def test_condition_misuse_names_the_call_the_caller_and_the_holder(runtime: Runner) -> None:
    async def main() -> list[str]:
        cond = Condition(Mutex("m"))
        out: list[str] = []
        for call in (cond.notify, cond.notify_all):
            try:
                call()
            except ProtocolViolation as e:
                out.append(str(e))
        release = Completion("release")

        async def holder() -> None:
            async with cond:
                await release.wait()

        async def caller() -> None:
            try:
                cond.notify()
            except ProtocolViolation as e:
                out.append(str(e))

        async with rt.task_group() as tg:
            tg.start_soon(holder, name="holder")
            await until(cond.locked)
            tg.start_soon(caller, name="caller")
            await until(lambda: len(out) == 3)
            release.complete()
        return out

    out = runtime.run(main)
    assert len(out) == 3
    assert out[0].startswith("notify() on a Condition over Mutex 'm' by task ")
    assert out[0].endswith(", which does not hold the lock (held by nobody)")
    assert out[1].startswith("notify_all() on a Condition over Mutex 'm' by task ")
    assert out[2] == (
        "notify() on a Condition over Mutex 'm' by task caller, "
        "which does not hold the lock (held by holder)"
    )


@pytest.mark.parametrize("bad", [True, "2", 1.0, -1])
def test_notify_refuses_a_count_that_is_not_a_non_negative_int(bad: object) -> None:
    async def main() -> str:
        cond = Condition()
        async with cond:
            with pytest.raises(InvalidArgument) as info:
                cond.notify(bad)  # type: ignore[arg-type]
        return str(info.value)

    assert sim.run(main).unwrap() == f"notify(n): n must be an int >= 0, got {bad!r}"


def test_notify_wakes_one_waiter_by_default(runtime: Runner) -> None:
    async def main() -> list[int]:
        cond = Condition()
        woken: list[int] = []

        async def waiter(i: int) -> None:
            async with cond:
                await cond.wait()
                woken.append(i)

        async with rt.task_group() as tg:
            tg.start_soon(waiter, 0)
            tg.start_soon(waiter, 1)
            await until(lambda: len(cond._queue) == 2)
            async with cond:
                cond.notify()
            await until(lambda: len(woken) == 1)
            still_waiting = len(cond._queue)
            async with cond:
                cond.notify()
        return [still_waiting, len(woken)]

    assert runtime.run(main) == [1, 2]


# --- a grant a cancelled task will not keep is given back --------------------------------


# A lock, a completion or a wake handed to a waiter that is then cancelled before it runs:
# the sim, as trio, lets the waiter return it (tests/test_woken_then_cancelled.py); the
# give-back is reached live on asyncio with native cancellation, tested there.


def test_a_cancelled_read_acquire_gives_its_grant_back(live: Runner) -> None:
    """On a live runtime a free lock is granted before the acquire's checkpoint; a
    cancelled reader gives the read hold back there (a nested one, only its own)."""

    async def main() -> list[object]:
        lock = RWLock("rw")
        out: list[object] = []
        with rt.cancel_scope() as scope:
            scope.cancel()
            await lock.acquire_read()
        out.append(lock.readers)
        await lock.acquire_read()
        with rt.cancel_scope() as scope:
            scope.cancel()
            await lock.acquire_read()  # nested: granted (count 2), then given back
        out.append(lock._readers[rt.current_task()])
        lock.release_read()
        out.append(lock.try_acquire_write())
        lock.release_write()
        return out

    assert live.run(main) == [(), 1, True]


def test_completion_repr_shows_its_state() -> None:
    c = Completion("c")
    assert repr(c) == "<Completion 'c' done=0 waiting=0>"
    c.complete()
    assert repr(c) == "<Completion 'c' done=1 waiting=0>"
    c.complete_all()
    assert repr(c) == "<Completion 'c' all waiting=0>"
    assert repr(Completion()) == "<Completion done=0 waiting=0>"


def test_a_condition_without_a_lock_makes_one_named_condition() -> None:
    cond = Condition()
    assert cond.lock.name == "condition"
    assert repr(cond) == "<Condition over <Mutex 'condition' unlocked waiting=0> waiting=0>"
    assert cond.describe_wait() == ("Condition over Mutex 'condition' (not notified)", ())


# --- every repr and error message, in full ------------------------------------------------


def test_reprs_show_the_state() -> None:
    assert repr(Mutex("m")) == "<Mutex 'm' unlocked waiting=0>"
    assert repr(Mutex()) == "<Mutex unlocked waiting=0>"
    assert repr(RWLock("rw")) == "<RWLock 'rw' unlocked waiting=0>"
    assert repr(RWLock()) == "<RWLock unlocked waiting=0>"
    assert repr(SlotPool(2, "p")) == "<SlotPool 'p' 2/2 free waiting=0>"
    assert repr(SlotPool(3)) == "<SlotPool 3/3 free waiting=0>"

    async def main() -> list[str]:
        m, lock, pool = Mutex("m"), RWLock("rw"), SlotPool(2, "p")
        m.acquire_nowait()
        lock.acquire_write_nowait()
        pool.acquire_nowait()
        out = [repr(m), repr(lock), repr(pool)]
        lock.downgrade()
        out.append(repr(lock))
        return out

    assert sim.run(main).unwrap() == [
        "<Mutex 'm' locked waiting=0>",
        "<RWLock 'rw' write-locked waiting=0>",
        "<SlotPool 'p' 1/2 free waiting=0>",
        "<RWLock 'rw' read-locked by 1 waiting=0>",
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Mutex(3), "name must be a str or None, got 3 (int)"),  # type: ignore[arg-type]
        (lambda: WaitQueue(b"q"), "name must be a str or None, got b'q' (bytes)"),  # type: ignore[arg-type]
        (lambda: SlotPool(0), "SlotPool size must be at least 1, got 0"),
        (lambda: SlotPool("2"), "SlotPool size must be an int, got '2' (str)"),  # type: ignore[arg-type]
        (lambda: SlotPool(True), "SlotPool size must be an int, got True (bool)"),
        (
            lambda: Condition(3),  # type: ignore[arg-type]
            "a Condition's lock must be a Mutex or None, got 3 (int)",
        ),
    ],
)
def test_bad_constructor_arguments_are_named(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        make()
    assert str(info.value) == message


def test_misuse_messages_name_the_primitive_the_task_and_the_holder(runtime: Runner) -> None:
    async def main() -> list[str]:
        m, lock, pool, c = Mutex("m"), RWLock("rw"), SlotPool(1, "p"), Completion("c")
        out: list[str] = []

        def attempt(op: Callable[[], object]) -> None:
            try:
                op()
            except (ProtocolViolation, WouldBlock) as e:
                out.append(str(e))

        async def holder() -> None:
            m.acquire_nowait()
            lock.acquire_write_nowait()
            pool.acquire_nowait()
            attempt(m.acquire_nowait)  # not reentrant
            attempt(lock.acquire_write_nowait)  # nor is the write lock
            await until(lambda: len(out) == 9)
            m.release()
            lock.release_write()
            pool.release(0)
            await lock.acquire_read()
            attempt(lock.try_acquire_write)  # no upgrade
            lock.release_read()

        async def intruder() -> None:
            await until(lambda: len(out) == 2)
            attempt(m.acquire_nowait)
            attempt(m.release)
            attempt(lock.release_write)
            attempt(lock.downgrade)
            attempt(pool.acquire_nowait)
            attempt(lambda: pool.release(5))
            attempt(c.reinit)  # nobody waits: allowed
            out.append("reinit ok")

        async with rt.task_group() as tg:
            tg.start_soon(holder, name="holder")
            tg.start_soon(intruder, name="intruder")
        return out

    assert runtime.run(main) == [
        "Mutex 'm' is already held by the current task holder; a Mutex is not reentrant",
        "RWLock 'rw' is already held for writing by the current task holder; "
        "only read locks nest, and there is no upgrade",
        "<Mutex 'm' locked waiting=0> is held by holder",
        "release() of Mutex 'm' by task intruder, which does not hold it (held by holder)",
        "release_write() of RWLock 'rw' by task intruder, which does not hold it for writing "
        "(write-held by holder)",
        "downgrade() of RWLock 'rw' by task intruder, which does not hold it for writing "
        "(write-held by holder)",
        "<SlotPool 'p' 0/1 free waiting=0> has no free slot",
        "release(5) of SlotPool 'p': that slot is not taken (taken: [0])",
        "reinit ok",
        "RWLock 'rw' is already held for reading by the current task holder; "
        "only read locks nest, and there is no upgrade",
    ]


@pytest.mark.parametrize(("waiters", "says"), [(1, "1 task waits"), (2, "2 tasks wait")])
def test_reinit_while_tasks_wait_says_how_many(waiters: int, says: str) -> None:
    async def main() -> str:
        c = Completion("c")
        async with rt.task_group() as tg:
            for _ in range(waiters):
                tg.start_soon(c.wait)
            await until(lambda: len(c._queue) == waiters)
            with pytest.raises(ProtocolViolation) as info:
                c.reinit()
            c.complete_all()
        return str(info.value)

    assert sim.run(main).unwrap() == f"reinit() of Completion 'c' while {says} on it"


def test_a_write_locked_block_that_released_the_lock_itself_says_so(runtime: Runner) -> None:
    """Not the ``release_read()`` error of a lock the task never read-locked: the end of
    the block names what it found (new-user report)."""

    async def main() -> str:
        rw = RWLock("rw")
        said: list[str] = []

        async def writer() -> None:
            with pytest.raises(ProtocolViolation) as info:
                async with rw.write_locked():
                    rw.release_write()
            said.append(str(info.value))

        async with rt.task_group() as tg:
            tg.start_soon(writer, name="the-writer")
        return said[0]

    said = runtime.run(main)
    assert said.startswith("the end of write_locked() of RWLock 'rw' in task the-writer, "), said
    assert said.endswith(
        ", which holds it neither for writing nor for reading (not held): was it released "
        "inside the block?"
    ), said


def test_slot_pool_notes_acquire_and_release_and_hands_out_the_lowest_slot() -> None:
    pool = SlotPool(3, "p")

    def take_all_give_back_two() -> int:
        for _ in range(3):
            pool.acquire_nowait()
        pool.release(2)
        pool.release(0)
        return pool.acquire_nowait()

    writes, notes, lowest = _noted(take_all_give_back_two)
    assert writes == {pool}
    assert lowest == 0
    assert [event for event, _ in notes] == ["acquire"] * 3 + ["release"] * 2 + ["acquire"]

    async def main() -> None:
        p = SlotPool(1, "q")
        slot = await p.acquire()
        p.release(slot)

    r = sim.run(main, trace=True)
    assert r.trace is not None
    assert [label[0] for (_, _, op, label) in r.trace if op == sim.NOTE] == ["acquire", "release"]


def test_a_slot_handed_to_a_waiter_is_held_by_it(runtime: Runner) -> None:
    async def main() -> bool:
        pool = SlotPool(1, "p")
        slot = await pool.acquire()
        waiter_task: list[object] = []
        done = Completion("done")

        async def waiter() -> None:
            waiter_task.append(rt.current_task())
            s = await pool.acquire()
            await done.wait()
            pool.release(s)

        async with rt.task_group() as tg:
            tg.start_soon(waiter)
            await until(lambda: len(pool._queue) == 1)
            pool.release(slot)  # handed straight to the waiter
            holders = pool.statistics().holders
            done.complete()
        return holders == (waiter_task[0],)

    assert runtime.run(main)


def test_mutex_acquire_nowait_notes_the_mutex_and_the_acquire() -> None:
    m = Mutex("m")
    writes, notes, got = _noted(m.acquire_nowait)
    assert (writes, notes, got) == ({m}, [("acquire", "Mutex 'm'")], None)
    assert m.locked()


def test_rwlock_release_read_notes_the_lock_and_the_release() -> None:
    lock = RWLock("rw")

    def read_and_release() -> None:
        lock.acquire_read_nowait()
        lock.release_read()

    writes, notes, _ = _noted(read_and_release)
    # The trylock writes the lock; the release, letting nobody in, reads it and writes
    # only the task's own read hold (the RWLock class's footprint rule).
    assert lock in writes
    assert ReadOf(lock) in writes
    assert {type(w) for w in writes} == {RWLock, ReadOf, FieldOf}
    assert [event for event, _ in notes] == ["acquire-read", "release"]


def test_a_granted_read_and_its_release_note_a_read_of_the_lock_and_the_task_s_part() -> None:
    """A blocking ``acquire_read`` that is granted at once, and a ``release_read`` that
    lets nobody in, each note exactly a read of the lock and a write of the task's own
    read hold, ``FieldOf(lock, ("reader", task id))``, with the event in the trace: two
    tasks' read steps commute under DPOR, a write acquire does not."""
    recorder = _FootprintRecorder()

    async def main() -> tuple[RWLock, object]:
        # Built here, not closed over: the noted-only walk judges a closure's cells, and a
        # plain list there would make every step unknown.
        lock = RWLock("rw")
        me = getattr(rt.current_task(), "id", None)
        await rt.checkpoint("before")
        await lock.acquire_read()
        await rt.checkpoint("held")
        lock.release_read()
        await rt.checkpoint("after")
        await lock.acquire_write()
        await rt.checkpoint("written")
        return lock, me

    r = sim.run(main, chooser=recorder, trace=True)
    lock, me = r.unwrap()
    assert me is not None
    part = FieldOf(lock, ("reader", me))
    noted = [fp.writes for fp in recorder.footprints if fp is not None and fp.writes]
    assert noted == [{ReadOf(lock), part}, {ReadOf(lock), part}, {lock}]
    assert r.trace is not None
    notes = [label for (_, _, op, label) in r.trace if op == sim.NOTE]
    assert notes == [
        ("acquire-read", "RWLock 'rw'"),
        ("release", "RWLock 'rw'"),
        ("acquire-write", "RWLock 'rw'"),
    ]


def test_rwlock_statistics_and_misuse_texts_are_writes_of_the_lock() -> None:
    """`statistics` and the holder text of a misuse message list the readers in the
    order they came, so they count as writes of the lock (the class's footprint rule)."""
    lock = RWLock("rw")
    writes, notes, got = _noted(lock.statistics)
    assert (writes, notes) == ({lock}, [])
    writes, notes, got = _noted(lock.release_write)
    assert writes == {lock}
    assert isinstance(got, ProtocolViolation)
    assert "(not held)" in str(got)


def test_nested_read_holds_are_released_one_at_a_time(runtime: Runner) -> None:
    async def main() -> list[object]:
        lock = RWLock("rw")
        me = rt.current_task()
        for _ in range(3):
            await lock.acquire_read()
        out: list[object] = []
        for _ in range(3):
            out.append((lock.readers == (me,), lock._readers[me]))
            lock.release_read()
        out.append(lock.readers)
        return out

    assert runtime.run(main) == [(True, 3), (True, 2), (True, 1), ()]


def test_a_stray_release_read_names_the_calling_task(runtime: Runner) -> None:
    async def main() -> list[str]:
        lock = RWLock("rw")
        out: list[str] = []

        async def stray() -> None:
            try:
                lock.release_read()
            except ProtocolViolation as e:
                out.append(str(e))

        async with rt.task_group() as tg:
            tg.start_soon(stray, name="stray")
        return out

    assert runtime.run(main) == [
        "release_read() of RWLock 'rw' by task stray, which does not hold it for reading "
        "(not held)"
    ]


def test_rwlock_release_write_and_downgrade_note_the_lock_and_the_event() -> None:
    lock = RWLock("rw")

    def write_then_release() -> None:
        lock.acquire_write_nowait()
        lock.release_write()

    writes, notes, _ = _noted(write_then_release)
    assert writes == {lock}
    assert [event for event, _ in notes] == ["acquire-write", "release"]

    lock = RWLock("rw")

    def write_downgrade_release() -> None:
        lock.acquire_write_nowait()
        lock.downgrade()
        lock.release_read()

    writes, notes, _ = _noted(write_downgrade_release)
    assert lock in writes  # the release as above
    assert ReadOf(lock) in writes
    assert {type(w) for w in writes} == {RWLock, ReadOf, FieldOf}
    assert [event for event, _ in notes] == ["acquire-write", "downgrade", "release"]


def test_reinit_is_a_write_of_the_completion_and_clears_complete_all() -> None:
    """``reinit`` changes the completion (DPOR must see the write) and leaves it as new:
    ``completed_all`` False, a wait blocks again."""
    c = Completion("c")
    c.complete_all()
    writes, notes, got = _noted(c.reinit)
    assert (writes, notes, got) == ({c}, [], None)
    assert c.statistics() == CompletionStatistics(0, False, 0)
    assert c.statistics().completed_all is False
    assert not c.try_wait()


def test_complete_and_complete_all_are_writes_of_the_completion() -> None:
    """Both change the completion even with nobody waiting: DPOR must see the write."""
    for op in ("complete", "complete_all"):
        c = Completion("c")
        writes, notes, got = _noted(getattr(c, op))
        assert c in writes, op  # complete_all also writes its wait queue (wake_all)
        assert (notes, got) == ([], None), op
        assert c.is_done(), op


def test_is_done_is_a_read_of_the_completion() -> None:
    """``completion_done`` reads the completion (a `complete()` in another step does not
    commute with it), writes nothing, and consumes nothing."""
    c = Completion("c")
    assert _noted(c.is_done) == ({ReadOf(c)}, [], False)
    c.complete()
    assert _noted(c.is_done) == ({ReadOf(c)}, [], True)
    assert c.statistics().done == 1


def test_a_wait_after_complete_all_reads_the_completion_one_that_consumes_writes_it() -> None:
    """The footprint of a granted ``wait``: after `complete_all` it only reads the
    completion (two such waits commute under DPOR); consuming a `complete` writes it."""
    for op, noted in (("complete_all", "read"), ("complete", "write")):
        c = Completion("c")
        getattr(c, op)()
        recorder = _FootprintRecorder()

        async def main(c: Completion = c) -> None:
            await c.wait()
            await rt.checkpoint("after")

        sim.run(main, chooser=recorder).unwrap()
        writes = [fp.writes for fp in recorder.footprints if fp is not None and fp.writes]
        assert writes == [{ReadOf(c) if noted == "read" else c}], op


def test_blocking_rwlock_acquires_note_which_hold_they_took() -> None:
    """The trace of an ``acquire_read``/``acquire_write`` (the blocking methods) says
    which hold was taken: a replay reader tells a shared hold from an exclusive one."""
    lock = RWLock("rw")

    async def main() -> None:
        await lock.acquire_read()
        lock.release_read()
        await lock.acquire_write()
        lock.release_write()

    r = sim.run(main, trace=True)
    r.unwrap()
    assert r.trace is not None
    notes = [label for (_, _, op, label) in r.trace if op == sim.NOTE]
    assert notes == [
        ("acquire-read", "RWLock 'rw'"),
        ("release", "RWLock 'rw'"),
        ("acquire-write", "RWLock 'rw'"),
        ("release", "RWLock 'rw'"),
    ]


def test_an_rwlock_acquire_granted_after_a_park_notes_which_hold_it_took() -> None:
    """A reader parked behind a writer, and a writer parked behind a reader, note the
    hold they were handed when they wake (`RWLock._hold_event`): the replay of a trace
    tells the shared hold from the exclusive one after a hand-off too."""
    lock = RWLock("rw")

    async def main() -> None:
        async def reader() -> None:
            await lock.acquire_read()  # parks: the writer holds
            lock.release_read()

        async def writer() -> None:
            await lock.acquire_write()  # parks: the reader holds
            lock.release_write()

        await lock.acquire_write()
        async with rt.task_group() as tg:
            tg.start_soon(reader, name="R")
            await until(lambda: lock.statistics().readers_waiting == 1)
            lock.release_write()  # hands the lock to R
        await lock.acquire_read()
        async with rt.task_group() as tg:
            tg.start_soon(writer, name="W")
            await until(lambda: lock.statistics().writers_waiting == 1)
            lock.release_read()  # hands the lock to W

    r = sim.run(main, trace=True)
    r.unwrap()
    assert r.trace is not None
    events = [label[0] for (_, _, op, label) in r.trace if op == sim.NOTE]
    # each hand-off: the release, then the woken task's note of the hold it now has
    assert events == [
        "acquire-write",
        "release",
        "acquire-read",
        "release",
        "acquire-read",
        "release",
        "acquire-write",
        "release",
    ]


class _Turnstile(_Blocking):
    """A minimal primitive that notes its own grants (``attempt_notes_itself``) but keeps
    `_Blocking`'s default `_note_grant`: every attempt passes."""

    attempt_notes_itself: ClassVar[bool] = True
    fast_acquire = False
    name = "turnstile"

    def __init__(self) -> None:
        self._queue = WaitQueue("turnstile")

    def _try(self, task: object, kind: int) -> object:
        return "in"

    def _give_back(self, task: object, kind: int, grant: object) -> None:
        pass

    def _hold_event(self, kind: int) -> str | None:
        return "pass" if kind == 1 else None

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        return "turnstile", ()


def test_a_primitive_noting_its_own_grants_notes_its_hold_event_by_default() -> None:
    """`_Blocking._note_grant`, the default for a primitive whose granted attempts note
    themselves: a write of the primitive with the hold event of the attempt's kind."""
    recorder = _FootprintRecorder()

    async def main() -> tuple[object, int]:
        # built here and kept here (the noted-only walk judges a closure's cells and
        # state handed on: returning the gate itself would lose the promise); its id is
        # a value, and the footprints keep the gate alive
        gate = _Turnstile()
        got = await gate._blocking(1)
        await rt.checkpoint("after")
        return got, id(gate)

    r = sim.run(main, chooser=recorder, trace=True)
    got, gate_id = r.unwrap()
    assert got == "in"
    assert r.trace is not None
    assert [label for (_, _, op, label) in r.trace if op == sim.NOTE] == [("pass", "turnstile")]
    assert any(
        fp is not None and any(id(w) == gate_id for w in fp.writes) for fp in recorder.footprints
    )


# --- Mutex on a live runtime (`Mutex._acquire_live`, the inlined hot path) -----------------


def test_live_mutex_hands_off_in_order_and_owner_is_the_acquiring_task(live: Runner) -> None:
    """A child task started after its parent used the lock (so it inherits the parent's
    cached runtime lookup) is the owner of what it acquires; waiters get the lock FIFO."""

    async def main() -> list[object]:
        m = Mutex("m")
        out: list[object] = []
        async with m:  # the parent's own acquire (fills the lookup cache)
            out.append(m.owner is rt.current_task())

        async def worker(name: str) -> None:
            await m.acquire()
            out.append((name, m.owner is rt.current_task(), m.statistics().tasks_waiting))
            await rt.checkpoint("hold")
            m.release()

        await m.acquire()
        async with rt.task_group() as tg:
            tg.start_soon(worker, "a")
            await until(lambda: len(m._queue) == 1)
            tg.start_soon(worker, "b")
            await until(lambda: len(m._queue) == 2)
            assert m.statistics().tasks_waiting == 2
            m.release()  # hands the lock to "a", then "a" to "b"
        out.append((m.locked(), m.owner))
        return out

    assert live.run(main) == [True, ("a", True, 1), ("b", True, 0), (False, None)]


def test_live_mutex_recursive_acquire_raises_and_keeps_the_hold(live: Runner) -> None:
    async def main() -> tuple[str, bool, int]:
        m = Mutex("m")
        await m.acquire()
        with rt.cancel_scope() as scope:

            async def cancel_once_parked() -> None:
                # only reached if the recursive acquire parked instead of raising
                await until(lambda: len(m._queue) == 1)
                scope.cancel()

            async with rt.task_group() as tg:
                tg.start_soon(cancel_once_parked)
                try:
                    await m.acquire()
                except ProtocolViolation as e:
                    message = str(e)
                    scope.cancel()
                else:
                    message = "acquired twice"
        held = m.owner is rt.current_task()
        m.release()
        return message, held, len(m._queue)

    message, held, waiting = live.run(main)
    assert message.startswith("Mutex 'm' is already held by the current task ")
    assert message.endswith("; a Mutex is not reentrant")
    assert (held, waiting) == (True, 0)


def test_live_mutex_cancelled_waiter_leaves_the_queue(live: Runner) -> None:
    async def main() -> list[object]:
        m = Mutex("m")
        out: list[object] = []
        await m.acquire()
        scope = rt.cancel_scope()

        async def waiter() -> None:
            with scope:
                await m.acquire()
                out.append("acquired")
            out.append(("cancelled", scope.cancel_called))

        async with rt.task_group() as tg:
            tg.start_soon(waiter)
            await until(lambda: len(m._queue) == 1)
            scope.cancel()
            for _ in range(100):  # bounded: a waiter that cannot be cancelled fails the test
                if out:
                    break
                await rt.checkpoint("wait")
            else:
                m.release()  # hands it the lock, so the task group ends (no hang)
        out.append(m.statistics().tasks_waiting)
        m.release()
        out.append(m.locked())
        m.acquire_nowait()  # the lock went to nobody else
        out.append(m.owner is rt.current_task())
        m.release()
        return out

    assert live.run(main) == [("cancelled", True), 0, False, True]


def test_live_mutex_cancelled_waiter_leaves_within_a_few_checkpoints(live: Runner) -> None:
    """The waiter a contended live acquire parks is cancellable (trio's `park` shields one
    that is not): a cancel takes it out of the queue at once.  A waiter still parked after
    100 checkpoints is ended by handing it the lock, so a regression fails, never hangs."""

    async def main() -> list[object]:
        m = Mutex("m")
        out: list[object] = []
        await m.acquire()
        scope = rt.cancel_scope()

        async def waiter() -> None:
            with scope:
                await m.acquire()
                out.append("acquired")
                m.release()
            out.append("left")

        async with rt.task_group() as tg:
            tg.start_soon(waiter)
            await until(lambda: len(m._queue) == 1)
            scope.cancel()
            for _ in range(100):
                if out:
                    break
                await rt.checkpoint("wait")
            out.append(len(m._queue))
            m.release()
        return out

    assert live.run(main) == ["left", 0]


def test_live_mutex_cancelled_free_acquire_is_not_taken(live: Runner) -> None:
    """A free lock acquired in a cancelled scope: granted, then given straight back at
    the checkpoint.  With ``fast_acquire`` there is no yield, and only trio checks the
    cancellation without one (``checkpoint_if_cancelled``): asyncio keeps the grant."""

    async def main(fast: bool) -> tuple[bool, bool]:
        m = Mutex("m", fast_acquire=fast)
        taken = False
        with rt.cancel_scope() as scope:
            scope.cancel()
            await m.acquire()
            taken = True
        return taken, m.locked()

    assert live.run(main, False) == (False, False)
    kept = live.name == "asyncio"
    assert live.run(main, True) == (kept, kept)


def test_live_mutex_acquire_yields_unless_fast(live: Runner) -> None:
    """A free lock: the acquire yields once (on asyncio, another ready task runs first)
    unless the lock was built with ``fast_acquire=True`` (then nothing runs in between)."""

    async def main(fast: bool) -> list[str]:
        m = Mutex("m", fast_acquire=fast)
        out: list[str] = []

        async def other() -> None:
            out.append("other")

        async with rt.task_group() as tg:
            tg.start_soon(other)
            await m.acquire()
            out.append("acquired")
            m.release()
        return out

    assert live.run(main, True) == ["acquired", "other"]
    if live.name == "asyncio":  # trio runs a batch of ready tasks in a random order
        assert live.run(main, False) == ["other", "acquired"]


def test_live_mutex_acquire_in_a_no_sleep_section_calls_the_hook(live: Runner) -> None:
    """``no_sleep``: a live acquire calls the hook with the lock (a spinlock's does not),
    only in the task that opened the section."""
    from odp_async.sync import no_sleep

    async def main() -> list[object]:
        seen: list[object] = []
        m = Mutex("m")
        spin = Mutex("s", spins=True)
        other_lock = Mutex("o")

        async def other_task() -> None:
            await other_lock.acquire()
            other_lock.release()

        with no_sleep(seen.append):
            await m.acquire()
            m.release()
            await spin.acquire()
            spin.release()
            async with rt.task_group() as tg:
                tg.start_soon(other_task)
        await m.acquire()  # outside the section
        m.release()
        return seen

    seen = live.run(main)
    assert len(seen) == 1
    assert seen[0].name == "m"  # type: ignore[attr-defined]


def test_rwlock_context_managers_taken_as_a_bool_name_the_lock_and_the_use() -> None:
    """``if lock.read_locked():`` is a usage error whose one line names the lock, the
    context manager and what to ask instead (`_ReadLocked.__bool__`, `_WriteLocked.__bool__`)."""
    rw = RWLock("rw")
    with pytest.raises(TypeError) as read:
        bool(rw.read_locked())
    assert str(read.value) == (
        "<RWLock 'rw' unlocked waiting=0>.read_locked() is a context manager, not a "
        "predicate: use `async with lock.read_locked():`, or `lock.readers` to ask who holds it"
    )
    with pytest.raises(TypeError) as write:
        bool(rw.write_locked())
    assert str(write.value) == (
        "<RWLock 'rw' unlocked waiting=0>.write_locked() is a context manager, not a "
        "predicate: use `async with lock.write_locked():`, or `lock.writer` to ask who holds it"
    )


class _NewestFirst(_FootprintRecorder):
    """`_FootprintRecorder` running the newest runnable task first."""

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        super().choose(runnable, last)
        return len(runnable) - 1


def test_the_last_read_release_letting_a_writer_in_is_a_write_of_the_lock() -> None:
    """The last reader's ``release_read`` with a writer queued hands the lock over: its
    step notes a write of the lock itself (not of the reader's part), with the event."""
    lock = RWLock("rw")
    recorder = _NewestFirst()

    async def writer() -> None:
        await lock.acquire_write()
        lock.release_write()

    async def main() -> None:
        await lock.acquire_read()
        async with rt.task_group() as tg:
            tg.start_soon(writer)
            await until(lambda: len(lock._queue) == 1)
            await rt.checkpoint("before")
            lock.release_read()
            await rt.checkpoint("released")

    r = sim.run(main, chooser=recorder, trace=True)
    r.unwrap()
    assert r.trace is not None
    notes = [label for (_, _, op, label) in r.trace if op == sim.NOTE]
    assert notes == [
        ("acquire-read", "RWLock 'rw'"),
        ("release", "RWLock 'rw'"),
        ("acquire-write", "RWLock 'rw'"),
        ("release", "RWLock 'rw'"),
    ]
    assert [fp.writes for fp in recorder.footprints if fp is not None and fp.writes][-1] == {lock}


def test_a_read_release_by_a_non_holder_is_a_write_of_the_lock() -> None:
    """A misused ``release_read`` (the task holds no read lock) notes a write of the lock
    with the ``release`` event before it raises, as a misused ``release_write`` does."""
    lock = RWLock("rw")
    writes, notes, got = _noted(lock.release_read)
    assert (writes, notes) == ({lock}, [("release", "RWLock 'rw'")])
    assert isinstance(got, ProtocolViolation)
    assert "which does not hold it for reading (not held)" in str(got)


# --- the run of 15:38 (c6b92ea's model code) --------------------------------------------


def test_condition_statistics_and_repr_read_its_waiters_and_its_lock() -> None:
    """`Condition.statistics` and its repr read who waits on the condition (its queue)
    besides the lock: both are noted reads, so a wait in another step does not commute
    with them."""
    cond = Condition(Mutex("m"))
    reads = {ReadOf(cond._queue), ReadOf(cond.lock)}
    writes, notes, got = _noted(cond.statistics)
    assert (writes, notes) == (reads, [])
    assert got == ConditionStatistics(0, MutexStatistics(False, None, 0))
    writes, notes, got = _noted(lambda: repr(cond))
    assert (writes, notes, got) == (
        reads,
        [],
        "<Condition over <Mutex 'm' unlocked waiting=0> waiting=0>",
    )


def test_completion_statistics_is_a_read_of_the_completion_with_its_counts() -> None:
    completion = Completion("k")
    writes, notes, got = _noted(completion.statistics)
    assert (writes, notes) == ({ReadOf(completion)}, [])
    assert got == CompletionStatistics(done=0, completed_all=False, tasks_waiting=0)


def test_who_waits_on_a_gate_is_refused_word_for_word() -> None:
    """A gate's waiters are not observable (DPOR runs a wait on a closed gate only when
    nothing else can run): its `statistics` raises, naming the gate, before noting."""
    gate = Completion("g", gate=True)
    writes, notes, got = _noted(gate.statistics)
    assert (writes, notes) == (set(), [])
    assert isinstance(got, ProtocolViolation)
    assert str(got) == (
        "statistics() of the gate Completion 'g': who waits on a gate is not observable "
        "(DPOR runs a wait on a closed gate only when nothing else can run)"
    )


def test_only_a_gate_before_complete_all_holds_its_waiters_back() -> None:
    """What DPOR asks a pending wait (`_gate_closed`): a gate is closed until its
    `complete_all`; a plain completion never holds a waiter back, done or not."""
    gate, plain = Completion("g", gate=True), Completion("p")
    assert gate._gate_closed()
    assert not plain._gate_closed()
    gate.complete_all()
    plain.complete_all()
    assert not gate._gate_closed()
    assert not plain._gate_closed()


_GATED = """
from odp_async import task_group
from odp_async.scenarios import Scenario
from odp_async.shared import SharedCell
from odp_async.sync import Completion

def after_a(gate):
    async def body():
        x = SharedCell(0, "x")
        done = Completion("a done", gate=gate)

        async def a():
            await x.store(1)
            done.complete_all()

        async def b():  # program order: after a
            await done.wait()
            assert x.get() == 1

        async with task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)
            tg.start_soon(b)

    return Scenario("after-a", "", body, (), needs_world=False, noted_only=True)
"""


def test_dpor_runs_the_waiters_of_a_gate_after_it_opens(user_module: Any) -> None:
    """Two waiters on a gate are one trace under DPOR (each waits once the gate is open);
    on a plain completion each may park first or pass later, and DPOR explores those."""
    from odp_async.explore import explore

    mod = user_module(_GATED, "gated_waiters")
    gated = explore(mod.after_a(True), chooser="dpor", schedules=200)
    plain = explore(mod.after_a(False), chooser="dpor", schedules=200)
    assert gated.claim == "complete: 1 trace, no violation"
    assert plain.claim.startswith("complete: ")
    assert plain.claim != gated.claim


class _PerTask(_FootprintRecorder):
    """`_FootprintRecorder` keeping which task took each step (newest task first)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[int, Footprint | None]] = []

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        if last is not None:
            self.steps.append((last.id, last.footprint))
        return len(runnable) - 1


@pytest.mark.parametrize("wake", ["wake_one", "wake_all"])
def test_a_wake_that_wakes_a_parked_task_is_a_write_of_the_queue(wake: str) -> None:
    """A wake with nobody parked only reads the queue; one that wakes a task writes it
    (it takes the task off the queue), so it conflicts with a concurrent wake too."""
    q = WaitQueue("q")
    recorder = _PerTask()

    async def parker() -> None:
        await q.park()

    async def main() -> None:
        async with rt.task_group() as tg:
            tg.start_soon(parker)
            await until(lambda: len(q) == 1)
            await rt.checkpoint("before")
            getattr(q, wake)()  # wakes the parker
            await rt.checkpoint("after")
            getattr(q, wake)()  # wakes nobody
            await rt.checkpoint("again")

    sim.run(main, chooser=recorder).unwrap()
    mains = [fp for task, fp in recorder.steps if task == 0]
    wake_step = mains.index(next(fp for fp in mains if fp is not None and q in fp.writes))
    assert mains[wake_step + 1] == Footprint(writes=frozenset({ReadOf(q)}))


def test_a_gate_refuses_complete_and_reinit_word_for_word() -> None:
    """A gate opens once, with `complete_all`: `complete` and `reinit` raise, naming it."""
    gate = Completion("g", gate=True)
    with pytest.raises(ProtocolViolation) as one:
        gate.complete()
    assert (
        str(one.value) == "complete() of the gate Completion 'g': a gate opens with complete_all()"
    )
    with pytest.raises(ProtocolViolation) as again:
        gate.reinit()
    assert str(again.value) == "reinit() of the gate Completion 'g': a gate opens once"


def test_a_gate_s_repr_says_closed_then_open() -> None:
    """A gate's repr names it and whether it is open (who waits on it is not shown)."""
    gate = Completion("g", gate=True)
    assert repr(gate) == "<Completion 'g' gate closed>"
    gate.complete_all()
    assert repr(gate) == "<Completion 'g' gate open>"
    assert repr(Completion(gate=True)) == "<Completion gate closed>"


def test_a_read_queued_behind_writers_names_them_in_the_deadlock_report() -> None:
    """`WaitQueue.waits_behind` asks its owner (`RWLock.waits_behind`): the writers
    queued before a waiter, not the readers.  A nested read queued behind a writer waits
    behind it; the first writer waits behind no one; a writer queued after that writer
    and the reader waits behind the writer only; a bare queue (no owner) names nobody."""

    async def main() -> None:
        rw = RWLock("rw")
        have_read = Completion("have read")
        queued = Completion("writers queued")

        async def reader() -> None:
            async with rw.read_locked():
                have_read.complete_all()
                await queued.wait()
                async with rw.read_locked():
                    pass

        async def writer() -> None:
            await have_read.wait()
            async with rw.write_locked():
                pass

        async def last_writer() -> None:
            await have_read.wait()
            await until(lambda: len(rw._queue) == 1)
            queued.complete_all()
            async with rw.write_locked():
                pass

        async def idle() -> None:
            await WaitQueue("bare").park()

        async with rt.task_group() as tg:
            tg.start_soon(reader, name="reader")
            tg.start_soon(writer, name="writer")
            tg.start_soon(last_writer, name="last")
            tg.start_soon(idle, name="idle")

    result = sim.run(main, seed=0)
    assert result.outcome == "deadlock", result.error
    assert result.deadlock is not None
    behind = {b.task: b.behind for b in result.deadlock.blocked}
    assert behind == {
        "main": (),
        "reader": ("writer",),
        "writer": (),
        "last": ("writer",),
        "idle": (),
    }


def test_a_condition_wait_in_a_no_sleep_section_names_the_condition_s_lock() -> None:
    """A `Condition` parks on a wait queue of its own named after its lock: that is the
    name a sleep-in-nonblock report shows (`no_sleep`'s hook gets the queue)."""
    from odp_async.sync import no_sleep

    async def main() -> list[tuple[str, object]]:
        seen: list[tuple[str, object]] = []
        cond = Condition(Mutex("pt_lock"))

        async def notifier() -> None:
            async with cond.lock:
                cond.notify()

        async with rt.task_group() as tg, cond.lock:
            tg.start_soon(notifier)
            with no_sleep(lambda p: seen.append((type(p).__name__, p.name))):  # type: ignore[attr-defined]
                await cond.wait()
        return seen

    assert sim.run(main, seed=0).unwrap() == [("WaitQueue", "pt_lock"), ("Mutex", "pt_lock")]


def test_a_loop_in_another_thread_with_a_copied_context_finds_its_own_task() -> None:
    """The live acquire's cache of (runtime, task) is checked against the thread: a
    context copied into another thread, which runs a loop of its own while the task that
    filled the cache is mid-step on its loop (blocked in ``join``), still finds the
    other thread's task (the cache's probe names the first task there)."""
    import asyncio
    import contextvars
    import threading

    async def inner() -> bool:
        m = Mutex("m")
        await m.acquire()
        owner = m.statistics().owner
        m.release()
        return owner is asyncio.current_task()

    async def outer() -> list[object]:
        warm = Mutex("warm")
        await warm.acquire()  # finds this task, and caches it in this context
        warm.release()
        ctx = contextvars.copy_context()
        out: list[object] = []

        def other() -> None:
            try:
                out.append(ctx.run(asyncio.run, inner()))
            except BaseException as e:  # reported by the assert below
                out.append(repr(e))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()  # blocks this loop: its current task stays this one
        return out

    assert asyncio.run(outer()) == [True]


# --- issue 15, the survivors of the 2026-11-30 runs -------------------------------------


def test_a_condition_s_holder_check_is_a_noted_read_of_its_lock() -> None:
    """`notify` and `notify_all` read who holds the lock (raising if not the caller):
    the step notes a read of the lock, so DPOR orders it against the lock's acquires
    and releases by other tasks."""
    cond = Condition(Mutex("m"))
    for call in (cond.notify, cond.notify_all):
        writes, _, got = _noted(call)
        assert isinstance(got, ProtocolViolation)
        assert writes == {cond, ReadOf(cond.lock)}

    def notify_under_the_lock() -> None:
        cond.acquire_nowait()
        cond.notify()
        cond.release()

    writes, _, _ = _noted(notify_under_the_lock)
    assert ReadOf(cond.lock) in writes
    assert ReadOf(None) not in writes


class _IdentityRecorder(FifoChooser):
    """A chooser that runs another task than the last one when it can, told which tasks
    the program learnt the identity of (what dfs's symmetry asks, `SimRuntime.reveal`)."""

    __slots__ = ("revealed",)

    def __init__(self) -> None:
        self.revealed: list[str] = []

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return next((i for i, t in enumerate(runnable) if t is not last), 0)

    def note_identity(self, task: Any) -> None:
        self.revealed.append(task.name)


def test_statistics_of_a_held_lock_reveal_the_holder_and_of_a_free_one_nobody() -> None:
    """`Mutex.statistics().owner` and `RWLock.statistics().writer` hand a task to the
    program: the sim is told (dfs then stops merging that task with its twins); a free
    lock's statistics hand out no task and reveal none."""

    async def main() -> list[object]:
        m, rw = Mutex("m"), RWLock("rw")
        out: list[object] = [m.statistics().owner, rw.statistics().writer]
        release = Completion("release")

        async def holder() -> None:
            async with m:
                await rw.acquire_write()
                await release.wait()
                rw.release_write()

        async with rt.task_group() as tg:
            tg.start_soon(holder, name="holder")
            await until(lambda: rw._writer is not None)  # not revealing
            out.append(chooser.revealed.copy())
            out += [rt.task_name(m.statistics().owner), chooser.revealed.copy()]
            out += [rt.task_name(rw.statistics().writer), chooser.revealed.copy()]
            release.complete()
        return out

    chooser = _IdentityRecorder()
    assert sim.run(main, chooser=chooser).unwrap() == [
        None,
        None,
        [],
        "holder",
        ["holder"],
        "holder",
        ["holder", "holder"],
    ]


def test_a_slot_pool_may_have_max_pool_size_slots_and_no_more() -> None:
    assert SlotPool(MAX_POOL_SIZE).size == MAX_POOL_SIZE == 1 << 20
    with pytest.raises(InvalidArgument) as info:
        SlotPool(MAX_POOL_SIZE + 1)
    assert str(info.value) == (
        "SlotPool size must be at most odp_async.sync.MAX_POOL_SIZE = 1048576 "
        "(the pool allocates its slots), got 1048577"
    )


def _gates(noted: set[object]) -> list[object]:
    return [n.gate for n in noted if isinstance(n, GateOpened)]


def test_only_the_complete_all_that_opens_a_gate_notes_it_open() -> None:
    c = Completion("c", gate=True)
    first, _, _ = _noted(c.complete_all)
    second, _, _ = _noted(c.complete_all)
    assert _gates(first) == [c]
    assert c in first
    assert _gates(second) == []
    assert c in second


def test_a_complete_all_of_a_plain_completion_notes_no_gate() -> None:
    c = Completion("c")
    first, _, _ = _noted(c.complete_all)
    assert c in first
    assert _gates(first) == []


def test_a_nested_read_admitted_from_the_queue_counts_both_holds(runtime: Runner) -> None:
    """A reader asking again behind a queued writer waits (FIFO); when the writer leaves
    the queue, the second hold is granted from the queue on top of the first: two
    ``release_read`` calls, not one, free the lock (``_grant`` adds to the task's count)."""

    async def main() -> list[str]:
        lock = RWLock("rw")
        scope = rt.cancel_scope()
        log: list[str] = []

        async def writer() -> None:
            with scope:
                await lock.acquire_write()
                log.append("the cancelled writer got in")

        await lock.acquire_read()
        async with rt.task_group() as tg:
            tg.start_soon(writer)
            await until(lambda: len(lock._queue) == 1)

            async def cancel_when_queued() -> None:
                await until(lambda: len(lock._queue) == 2)
                scope.cancel()  # the writer leaves; the nested read at the head gets in

            tg.start_soon(cancel_when_queued)
            await lock.acquire_read()
            lock.release_read()
            log.append(repr(lock))
            lock.release_read()
            log.append(repr(lock))
        return log

    assert runtime.run(main) == [
        "<RWLock 'rw' read-locked by 1 waiting=0>",
        "<RWLock 'rw' unlocked waiting=0>",
    ]


def _in_a_thread_during_the_step(call: Callable[[], object]) -> None:
    """Run `call` in a thread that carries this task's context, started and joined
    inside the task's step (a blocking call in a coroutine): on asyncio, the loop's
    running task is then the caller's, as the thread sees it.  Re-raises its error."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:
            failed.append(e)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,))
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


@pytest.mark.parametrize("how", ["to_thread", "thread_in_step"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_release_from_another_thread_is_not_taken_for_the_task_s(backend: str, how: str) -> None:
    """A thread that inherits the task's context inherits the cached (runtime, task)
    pair of `live_here`; on asyncio, during the task's step, the cache's probe even names
    the task as the loop's running one.  Only the thread check keeps the release from
    passing as the task's: it is refused, with the error of a call outside any loop (not
    the RuntimeError of asyncio or trio asked from the thread), and the lock stays held."""

    async def main() -> tuple[BaseException | None, bool]:
        lock = Mutex("m")
        await lock.acquire()
        refused: BaseException | None = None
        try:
            if how == "to_thread":
                await anyio.to_thread.run_sync(lock.release)
            else:
                _in_a_thread_during_the_step(lock.release)
        except ProtocolViolation as e:
            refused = e
        held = lock.locked()
        lock.release()
        return refused, held

    refused, held = anyio.run(main, backend=backend)
    assert str(refused).startswith("no async runtime is running on this thread: call odp_async")
    assert held


@pytest.mark.parametrize(
    ("kind", "cancel", "notes"),
    [
        ("read", False, [("acquire-read", "RWLock 'rw'"), ("release", "RWLock 'rw'")]),
        ("write", False, [("acquire-write", "RWLock 'rw'"), ("release", "RWLock 'rw'")]),
        ("read", True, [("acquire-read", "RWLock 'rw'"), ("release", "RWLock 'rw'")]),
        ("write", True, [("acquire-write", "RWLock 'rw'"), ("release", "RWLock 'rw'")]),
    ],
)
def test_a_waiter_s_grant_and_its_give_back_are_noted_as_such(
    kind: str, cancel: bool, notes: list[tuple[str, str]]
) -> None:
    """What a queued waiter's own steps note in the sim's trace (the timeline's lock bars
    and DPOR's footprints read them): the hold of its kind once it runs with the grant,
    and its release; cancelled after the grant reached it, the same (the sim follows
    trio: the grant is the task's, the cancellation waits for its next checkpoint, and
    this waiter releases before any)."""

    async def main() -> None:
        lock = RWLock("rw")
        scope = rt.cancel_scope()

        async def waiter() -> None:
            with scope:
                if kind == "read":
                    await lock.acquire_read()
                    lock.release_read()
                else:
                    await lock.acquire_write()
                    lock.release_write()

        await lock.acquire_write()
        async with rt.task_group() as tg:
            tg.start_soon(waiter, name="waiter")
            await until(lambda: len(lock._queue) == 1)
            lock.release_write()  # hands the lock to the waiter...
            if cancel:
                scope.cancel()  # ...cancelled before it runs: it gives the grant back

    result = sim.run(main, trace=True)
    result.unwrap()
    waiter_ids = {tid for tid, name in result.tasks if name == "waiter"}
    noted = [label for _, tid, op, label in result.trace or () if op == NOTE and tid in waiter_ids]
    assert noted == notes


def test_an_acquire_on_another_loop_in_a_thread_is_that_loop_s_task_s() -> None:
    """The same thread check on the path of every other primitive's acquire: a thread
    carrying the task's context that runs a loop of its own acquires as that loop's
    task, not as the task whose step it runs in (`_blocking`'s inlined `live_here`)."""

    async def main() -> tuple[list[bool], bool]:
        lock = RWLock("rw")
        await lock.acquire_read()
        lock.release_read()  # the task's (runtime, task) pair is cached in its context
        seen: list[bool] = []

        async def take() -> None:
            await lock.acquire_write()
            seen.append(lock.writer is asyncio.current_task())

        _in_a_thread_during_the_step(lambda: asyncio.run(take()))
        try:
            lock.release_write()
        except ProtocolViolation:
            return seen, False
        return seen, True

    assert anyio.run(main, backend="asyncio") == ([True], False)


@pytest.mark.parametrize("kind", ["completion", "queue"])
def test_a_wake_given_back_by_a_cancelled_parker_is_noted_as_no_release(kind: str) -> None:
    """A Completion's or a WaitQueue's wake is no hold: the parker cancelled after the
    wake reached it returns from its wait (the sim follows trio: the wake is the task's,
    so the ``complete()`` is used up) and notes neither an acquire nor a release (the
    timeline would draw a lock bar)."""

    async def main() -> str:
        prim = Completion("c") if kind == "completion" else WaitQueue("q")
        scope = rt.cancel_scope()

        async def waiter() -> None:
            with scope:
                if isinstance(prim, Completion):
                    await prim.wait()
                else:
                    await prim.park()

        async with rt.task_group() as tg:
            tg.start_soon(waiter, name="waiter")
            await until(lambda: prim.statistics().tasks_waiting == 1)
            if isinstance(prim, Completion):
                prim.complete()
            else:
                prim.wake_one()
            scope.cancel()
        return repr(prim)

    result = sim.run(main, trace=True)
    shown = result.unwrap()
    waiter_ids = {tid for tid, name in result.tasks if name == "waiter"}
    assert [
        label for _, tid, op, label in result.trace or () if op == NOTE and tid in waiter_ids
    ] == []
    used = "<Completion 'c' done=0 waiting=0>"  # the woken waiter took the complete()
    assert shown == (used if kind == "completion" else "<WaitQueue 'q' waiting=0>")


def test_a_completion_wait_returns_none_whichever_wake_ends_it(runtime: Runner) -> None:
    """``wait`` is typed to return None: it did return the wake's inner tag ("one",
    "all") to a waiter that parked (new-user review of the mutation survivors)."""

    async def main() -> list[object]:
        got: list[object] = []
        for how in ("complete", "complete_all", "already"):
            c = Completion(how)
            if how == "already":
                c.complete()
                got.append(await c.wait())
                continue

            async def waiter(c: Completion = c) -> None:
                got.append(await c.wait())

            async with rt.task_group() as tg:
                tg.start_soon(waiter)
                await until(lambda c=c: c.statistics().tasks_waiting == 1)  # type: ignore[misc]
                c.complete() if how == "complete" else c.complete_all()
        return got

    assert runtime.run(main) == [None, None, None]
