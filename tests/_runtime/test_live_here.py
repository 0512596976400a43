"""The live hot path: the current task found through a per-context cache, checked.

`live_here` reuses the (runtime, task) it found last in this context while the runtime's
probe still names that task as running on this thread.  A child task inherits its parent's
context, and a thread may run a copy of it: neither may pass for the task that filled the
cache.  And the Mutex's own live path keeps the promises: a hand-off to a task cancelled
before it runs goes on to the next waiter.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading

import anyio
import pytest

from odp_async._runtime._base import live_here
from odp_async.errors import ProtocolViolation
from odp_async.sync import Mutex

BACKENDS = ["asyncio", "trio"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_child_task_is_not_taken_for_its_parent(backend: str) -> None:
    async def main() -> list[str]:
        m = Mutex("m")
        await m.acquire()  # fills the cache in this context; the child inherits it
        parent = live_here()[1]
        seen: list[str] = []

        async def child() -> None:
            assert live_here()[1] is not parent
            try:
                m.release()
            except ProtocolViolation:
                seen.append("refused")

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
        assert m.owner is parent
        m.release()
        return seen

    assert anyio.run(main, backend=backend) == ["refused"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_thread_running_a_copy_of_the_context_is_not_the_task(backend: str) -> None:
    async def main() -> list[str]:
        m = Mutex("m")
        await m.acquire()
        ctx = contextvars.copy_context()  # holds the cache entry of this task
        seen: list[str] = []

        def in_thread() -> None:
            try:
                ctx.run(m.release)
            except (ProtocolViolation, RuntimeError) as e:
                seen.append(type(e).__name__)
            else:
                seen.append("released from another thread")

        # The task stays the running one while the thread runs (the loop is blocked).
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        assert m.locked()
        m.release()
        return seen

    seen = anyio.run(main, backend=backend)
    assert seen
    assert seen != ["released from another thread"]


def test_a_hand_off_to_a_task_cancelled_before_it_runs_goes_to_the_next() -> None:
    """asyncio's own cancel (anyio's scopes wait for the task to run): the woken waiter's
    future already has its result, so the task sees CancelledError at the await and the
    Mutex passes the lock on."""

    async def main() -> list[str]:
        m = Mutex("m")
        log: list[str] = []
        await m.acquire()

        async def first() -> None:
            try:
                await m.acquire()
            except asyncio.CancelledError:
                log.append("first cancelled")
                raise
            log.append("first acquired")
            m.release()

        async def second() -> None:
            await m.acquire()
            log.append("second acquired")
            m.release()

        a = asyncio.create_task(first())
        while m.statistics().tasks_waiting < 1:  # noqa: ASYNC110 - polls state
            await asyncio.sleep(0)
        b = asyncio.create_task(second())
        while m.statistics().tasks_waiting < 2:  # noqa: ASYNC110 - polls state
            await asyncio.sleep(0)
        m.release()  # hands the lock to `first`...
        a.cancel()  # ...which is cancelled before it runs
        await asyncio.gather(a, b, return_exceptions=True)
        assert not m.locked()
        return log

    assert asyncio.run(main()) == ["first cancelled", "second acquired"]


def test_new_waiter_sets_every_slot_as_the_constructor_does() -> None:
    from odp_async._runtime._base import Waiter, new_waiter

    queue = Mutex("q")._queue
    fast = new_waiter(None, "task", queue, 2)  # type: ignore[arg-type]
    slow = Waiter(None, "task", queue, 2)  # type: ignore[arg-type]
    for slot in Waiter.__slots__:
        assert getattr(fast, slot) == getattr(slow, slot), slot


def _exchange(rounds: int) -> list[int]:
    """Two asyncio tasks hand one Mutex back and forth `rounds` times each (every acquire
    but the first parks): the order of the holders."""

    async def main() -> list[int]:
        m = Mutex("m")
        order: list[int] = []

        async def side(me: int) -> None:
            for _ in range(rounds):
                await m.acquire()
                order.append(me)
                await asyncio.sleep(0)  # the other side queues up behind
                m.release()

        await asyncio.gather(side(0), side(1))
        assert not m.locked()
        return order

    return asyncio.run(main())


def test_an_asyncio_hand_off_parks_and_wakes_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """On asyncio the contended Mutex parks on a future of `Runtime.future_maker` and its
    release resolves it (`Runtime.wakes_future`), with no call to the runtime's `park` or
    `wake` once a task's cache entry is there (its first acquire finds it)."""
    from odp_async._runtime._live import AsyncioRuntime

    calls = {"park": 0, "wake": 0}
    real_park, real_wake = AsyncioRuntime.park, AsyncioRuntime.wake

    def park(self: AsyncioRuntime, waiter: object) -> object:
        calls["park"] += 1
        return real_park(self, waiter)  # type: ignore[arg-type]

    def wake(self: AsyncioRuntime, waiter: object, value: object) -> None:
        calls["wake"] += 1
        real_wake(self, waiter, value)  # type: ignore[arg-type]

    monkeypatch.setattr(AsyncioRuntime, "park", park)
    monkeypatch.setattr(AsyncioRuntime, "wake", wake)
    order = _exchange(50)
    assert order == [0, 1] * 50  # FIFO hand-off: strict alternation
    # one park: the second task's first acquire, which parks before its cache entry is
    # there (found on that slow path); every other of the 99 parks and wakes is inline
    assert calls == {"park": 1, "wake": 0}


def test_the_inline_park_uses_a_loop_s_own_futures() -> None:
    """A loop that makes its own futures (overriding ``create_future``) gets them made by
    itself on the inline path too."""
    from odp_async._runtime._live import AsyncioRuntime

    made: list[object] = []

    class Loop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[object]:
            fut = super().create_future()
            made.append(fut)
            return fut

    async def main() -> list[int]:
        m = Mutex("m")
        order: list[int] = []

        async def side(me: int) -> None:
            for _ in range(10):
                await m.acquire()
                order.append(me)
                await asyncio.sleep(0)
                m.release()

        await asyncio.gather(side(0), side(1))
        return order

    loop = Loop()
    try:
        assert loop.run_until_complete(main()) == [0, 1] * 10
    finally:
        loop.close()
    assert len(made) >= 18  # every parked acquire, less at most each task's first
    assert AsyncioRuntime().future_maker("not a task") is None
