"""A wake from a worker thread is refused before it takes anyone out of the queue.

Live, a parked task can only be resumed from its loop's thread.  ``Completion.complete``
(and ``complete_all``, ``WaitQueue.wake_one``/``wake_all``) called from
``anyio.to_thread.run_sync`` used to pop the waiter, mark it woken, and then fail in
trio's ``reschedule`` (a ``RuntimeError``) with the waiter out of the queue: the wake was
lost, and the waiter left only at its own timeout; on asyncio it set the future from the
foreign thread, which is not thread-safe (new-user report).  Now each raises
`ProtocolViolation` naming the thread rule, the waiter stays parked, and the same call
from the loop wakes it.
"""

from __future__ import annotations

import anyio
import pytest

from odp_async.errors import ProtocolViolation
from odp_async.sync import Completion, WaitQueue


@pytest.mark.parametrize("what", ["complete", "complete_all", "wake_one", "wake_all"])
@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_a_wake_from_a_worker_thread_is_refused_and_loses_nothing(backend: str, what: str) -> None:
    async def main() -> list[str]:
        completion = Completion("c")
        queue = WaitQueue("q")
        prim = completion if what.startswith("complete") else queue
        out: list[str] = []

        async def waiter() -> None:
            if prim is completion:
                await completion.wait()
            else:
                await queue.park()
            out.append("woken")

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            while completion.statistics().tasks_waiting + len(queue) == 0:
                await anyio.lowlevel.checkpoint()
            wake = getattr(prim, what)
            try:
                await anyio.to_thread.run_sync(wake)
            except ProtocolViolation as e:
                out.append(str(e))
            out.append(f"still parked: {completion.statistics().tasks_waiting + len(queue)}")
            wake()  # from the loop's thread: the waiter is there to wake
        return out

    refused, parked, woken = anyio.run(main, backend=backend)
    assert refused.startswith("no async runtime is running on this thread"), refused
    assert "from a worker thread, hand the call to the loop's thread" in refused
    assert (parked, woken) == ("still parked: 1", "woken")
