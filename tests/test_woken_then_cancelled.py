"""A waiter woken and cancelled in one step of another task: the sim does what trio does.

Woken first, then cancelled: the park returns the wake's value (the grant is the task's)
and the cancellation is raised at its next checkpoint: trio's ``reschedule`` before the
abort, and anyio on asyncio, whose future is then done.  Cancelled first, then woken: the
waiter left its queue at the cancellation (trio's abort), so the wake goes to the next
waiter at once.  Before, the sim raised ``Cancelled`` out of the park after the wake and
the primitive gave the grant back: the explorer then reported a lock leaked by a waiter
cancelled with it (a hang on trio and on asyncio, every time) as ``complete: 1 trace, no
violation`` (new-user report).  The give-back path is still reached live, on asyncio
with native cancellation (``task.cancel()``, what ``asyncio.timeout`` does): the last
tests drive it there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import odp_async as oa
from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.explore import check
from odp_async.scenarios import Verdict
from odp_async.sync import Completion, Mutex, RWLock, WaitQueue

BACKENDS = ("trio", "asyncio")


async def until(predicate: Callable[[], bool]) -> None:
    """Yield until `predicate()` holds (ordering by observed state, never by the clock)."""
    for _ in range(1_000):
        if predicate():
            return
        await rt.checkpoint()
    raise AssertionError("the state waited for never came")


async def leaky_waiter(live: bool = False) -> str:
    """The user's bug: a waiter takes the lock, has no ``try/finally``, and is cancelled
    in the step that hands it the lock: it holds the lock at its next checkpoint, where
    the cancellation ends it, and the second waiter waits for good.  Explored, the main
    task sleeps for the waiters to queue (the sim's clock moves only when no task can
    run); live, it yields until they have."""

    async def settle(queued: int) -> None:
        if live:
            await until(lambda: len(lock._queue) == queued)
        else:
            await oa.sleep(1)

    lock = oa.Mutex("m")
    scopes: dict[str, Any] = {}

    async def waiter(name: str) -> None:
        with oa.cancel_scope() as scope:
            scopes[name] = scope
            await lock.acquire()
            await oa.checkpoint("inside")
            lock.release()

    await lock.acquire()
    async with oa.task_group() as tg:
        tg.start_soon(waiter, "B", name="B")
        await settle(1)
        tg.start_soon(waiter, "C", name="C")
        await settle(2)
        lock.release()  # hands the lock to B...
        scopes["B"].cancel()  # ...which is cancelled in the same step
    return "ok"


@pytest.mark.parametrize("chooser", ["random", "pct", "dfs", "dpor", "portfolio"])
def test_a_lock_leaked_by_a_waiter_cancelled_with_it_is_a_deadlock(chooser: str) -> None:
    result = check(leaky_waiter, chooser=chooser, schedules=200)
    assert result.verdict is Verdict.DEADLOCK, result.claim
    assert not result.claim.startswith("complete"), result.claim


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_the_leaked_lock_hangs_the_second_waiter(backend: str) -> None:
    async def bounded() -> str:
        # the hang, seen without waiting for it: the second waiter is still queued when
        # the group is left to a cancellation of the whole program
        with anyio.CancelScope() as outer:

            async def watch() -> None:
                await leaky_waiter(live=True)

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                for _ in range(200):
                    await anyio.lowlevel.checkpoint()
                outer.cancel()
        return "hung" if outer.cancelled_caught else "returned"

    assert anyio.run(bounded, backend=backend) == "hung"


async def _woken_then_cancelled(kind: str) -> list[object]:
    """A waiter of `kind` parks; the main task wakes it (a hand-off, a complete(), a
    wake) and cancels it in one step.  What the waiter saw, and the primitive after."""
    seen: list[object] = []
    scope = rt.cancel_scope()
    lock = RWLock("rw")
    mutex = Mutex("m")
    done = Completion("c")
    queue = WaitQueue("q")

    async def waiter() -> None:
        with scope:
            if kind == "mutex":
                await mutex.acquire()
            elif kind == "read":
                await lock.acquire_read()
            elif kind == "write":
                await lock.acquire_write()
            elif kind == "completion":
                await done.wait()
            else:
                seen.append(await queue.park())
            seen.append("returned")
            await rt.checkpoint()
            seen.append("ran past the checkpoint")
        seen.append("cancelled at the checkpoint" if scope.cancelled_caught else "not cancelled")

    if kind == "mutex":
        await mutex.acquire()
    elif kind in ("read", "write"):
        await lock.acquire_write()
    async with rt.task_group() as tg:
        tg.start_soon(waiter)
        waiting = {
            "mutex": lambda: len(mutex._queue) == 1,
            "read": lambda: len(lock._queue) == 1,
            "write": lambda: len(lock._queue) == 1,
            "completion": lambda: done.statistics().tasks_waiting == 1,
            "queue": lambda: len(queue) == 1,
        }[kind]
        await until(waiting)
        if kind == "mutex":
            mutex.release()
        elif kind in ("read", "write"):
            lock.release_write()
        elif kind == "completion":
            done.complete()
        else:
            queue.wake_one("the value")
        scope.cancel()
    # the grant is the waiter's: a lock stays held by the task that ended (the leak)
    seen.append(
        {
            "mutex": mutex.locked(),
            "read": bool(lock.readers),
            "write": lock.writer is not None,
            "completion": done.statistics().done,
            "queue": len(queue),
        }[kind]
    )
    return seen


KINDS = ["mutex", "read", "write", "completion", "queue"]
EXPECTED = {
    "mutex": ["returned", "cancelled at the checkpoint", True],
    "read": ["returned", "cancelled at the checkpoint", True],
    "write": ["returned", "cancelled at the checkpoint", True],
    "completion": ["returned", "cancelled at the checkpoint", 0],
    "queue": ["the value", "returned", "cancelled at the checkpoint", 0],
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_sim_delivers_the_wake_and_cancels_at_the_next_checkpoint(kind: str) -> None:
    for seed in range(3):
        assert sim.run(lambda: _woken_then_cancelled(kind), seed=seed).unwrap() == EXPECTED[kind]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_trio_and_anyio_on_asyncio_do_the_same(kind: str, backend: str) -> None:
    assert anyio.run(_woken_then_cancelled, kind, backend=backend) == EXPECTED[kind]


async def _cancelled_then_woken() -> list[object]:
    """Two parkers; the first is cancelled, then a ``wake_all`` comes in the same step:
    on trio (and in the sim) the cancelled one left the queue at once, so ``wake_all``
    counts one task; anyio on asyncio cancels the task's future and takes the waiter out
    only when the task runs, so it counts two (the one it reached gives its wake back,
    to nobody).  Either way the second gets the value and no wake is left over."""
    queue = WaitQueue("q")
    scope = rt.cancel_scope()
    seen: list[object] = []

    async def first() -> None:
        with scope:
            seen.append(("first", await queue.park()))
        seen.append("first cancelled")

    async def second() -> None:
        seen.append(("second", await queue.park()))

    async with rt.task_group() as tg:
        tg.start_soon(first)
        await until(lambda: len(queue) == 1)
        tg.start_soon(second)
        await until(lambda: len(queue) == 2)
        scope.cancel()
        seen.append(("parked after the cancel", len(queue)))
        seen.append(("woken by wake_all", queue.wake_all("all")))
    return sorted(seen, key=repr)


@pytest.mark.parametrize("backend", ["sim", *BACKENDS])
def test_a_cancelled_parker_leaves_its_queue_at_the_cancellation(backend: str) -> None:
    if backend == "sim":
        got = sim.run(_cancelled_then_woken).unwrap()
    else:
        got = anyio.run(_cancelled_then_woken, backend=backend)
    counted = 2 if backend == "asyncio" else 1
    assert got == [
        "first cancelled",
        ("parked after the cancel", counted),
        ("second", "all"),
        ("woken by wake_all", counted),
    ]


# --- the give-back path, live on asyncio with native cancellation ------------------------


def _natively(
    prim: Any,
    wait_a: Callable[[], Awaitable[object]],
    wait_b: Callable[[], Awaitable[object]],
    waiting: Callable[[], int],
    wake: Callable[[], None],
    after: Callable[[asyncio.Task[None]], object],
    *,
    hold: Callable[[], Awaitable[object]] | None = None,
    b_is_woken: bool = True,
) -> tuple[list[object], object]:
    """On plain asyncio: the main task takes `prim` first (`hold`, if given); tasks A
    then B wait on it (`wait_a`, `wait_b`); in one step the main task wakes the first
    (`wake`) and cancels A's task with ``task.cancel()``.  A's park raises
    ``CancelledError`` after the wake reached it, so the primitive must pass the wake
    on to B.  Returns what A and B saw, and ``after(B's task)`` once A has unwound (no
    waiting on the clock: B's wake, if any, is given while A unwinds).  B is then
    awaited, or, when `b_is_woken` is False (a primitive that may drop the wake), it
    is cancelled."""

    async def main() -> tuple[list[object], object]:
        if hold is not None:
            await hold()
        seen: list[object] = []

        async def a() -> None:
            try:
                await wait_a()
                seen.append("A got it")
            except asyncio.CancelledError:
                seen.append("A cancelled")
                raise

        async def b() -> None:
            await wait_b()
            seen.append("B got it")

        task_a = asyncio.create_task(a())
        await until(lambda: waiting() == 1)
        task_b = asyncio.create_task(b())
        await until(lambda: waiting() == 2)
        wake()
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        state = after(task_b)
        if not b_is_woken:
            task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=not b_is_woken)
        return seen, state

    return asyncio.run(main())


def test_native_cancel_a_wake_one_goes_to_the_next_parker() -> None:
    q = WaitQueue("q")
    got: list[object] = []

    async def park_b() -> None:
        got.append(await q.park())

    seen, state = _natively(
        q, q.park, park_b, q.__len__, lambda: q.wake_one("the value"), lambda b: len(q)
    )
    assert seen == ["A cancelled", "B got it"]
    assert state == 0  # B was woken while A unwound
    assert got == ["the value"]  # with the value A was woken with


@pytest.mark.parametrize(
    ("first", "second"),
    [("mutex", "mutex"), ("read", "read"), ("write", "write"), ("read", "write")],
)
def test_native_cancel_a_lock_handed_over_goes_to_the_next_waiter(first: str, second: str) -> None:
    """A (a `first` waiter) is handed the lock the main task held and natively cancelled
    in the same step; B (a `second` waiter, queued behind A) holds it once A unwound:
    a read hold given back lets a writer queued behind in."""
    if first == "mutex":
        m = Mutex("m")
        seen, state = _natively(
            m, m.acquire, m.acquire, lambda: len(m._queue), m.release,
            lambda b: (m._owner is b, len(m._queue)), hold=m.acquire,
        )  # fmt: skip
    else:
        rw = RWLock("rw")
        modes = {"read": rw.acquire_read, "write": rw.acquire_write}

        def holders() -> set[object]:
            return {rw.writer} if rw.writer is not None else set(rw.readers)

        seen, state = _natively(
            rw, modes[first], modes[second], lambda: len(rw._queue), rw.release_write,
            lambda b: (holders() == {b}, len(rw._queue)), hold=rw.acquire_write,
        )  # fmt: skip
    assert seen == ["A cancelled", "B got it"]
    assert state == (True, 0)  # B holds it, nobody queued: the grant went on


class CompletionThatDropsGivenBackWakes(Completion):
    def _give_back(self, task: object, kind: int, grant: object) -> None:
        pass  # the complete() that reached a cancelled waiter is lost


@pytest.mark.parametrize(
    ("cls", "waiting_after"), [(Completion, 0), (CompletionThatDropsGivenBackWakes, 1)]
)
def test_native_cancel_a_complete_goes_to_the_next_wait(cls: type, waiting_after: int) -> None:
    """The give-back is what keeps the ``complete()``: dropped, B waits for good."""
    c = cls("c")
    seen, left = _natively(
        c, c.wait, c.wait, lambda: c.statistics().tasks_waiting, c.complete,
        lambda b: c.statistics().tasks_waiting, b_is_woken=False,
    )  # fmt: skip
    assert seen[0] == "A cancelled"
    assert left == waiting_after


def test_native_cancel_a_wake_all_is_not_passed_on_to_a_later_parker() -> None:
    """A ``wake_all`` reached every task parked then; the one cancelled before it ran
    passes nothing on, so a task that parks after it (here the main task, in the same
    step) stays parked until a wake of its own: it was woken with the old wake
    (new-user report)."""

    async def run() -> list[object]:
        queue = WaitQueue("q")
        seen: list[object] = []

        async def a() -> None:
            await queue.park()

        async def waker() -> None:
            with pytest.raises(asyncio.CancelledError):
                await task_a  # A has unwound: whatever it passed on is given
            seen.append(("still parked", len(queue)))
            queue.wake_one("its own")

        task_a = asyncio.create_task(a())
        await until(lambda: len(queue) == 1)
        queue.wake_all("old")
        task_a.cancel()
        task_waker = asyncio.create_task(waker())
        seen.append(("main", await queue.park()))
        await task_waker
        return seen

    assert asyncio.run(run()) == [("still parked", 1), ("main", "its own")]
