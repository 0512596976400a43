"""A kernel workqueue: deferred work items that run as tasks of their own.

Contract
    Modelled on ``kernel/workqueue.c`` (Linux v6.6): a `WorkItem` (``struct work_struct``)
    wraps an async function; `Workqueue.queue_work` (``queue_work`` / ``schedule_work``)
    makes it pending and starts a worker task for it, named ``kworker:<work name>``.  The
    kernel's rules, kept here:

    - queueing a pending item does nothing and returns False;
    - an item is non-reentrant: an execution queued while the previous one runs waits for
      it, so one item never runs twice at once;
    - `Workqueue.flush_work` waits until the item is neither pending nor running
      (``flush_work``), returning whether it waited;
    - `Workqueue.cancel_work_sync` takes a pending item off the queue and waits for a
      running execution to finish (``cancel_work_sync``), returning whether it was pending;
    - `Workqueue.flush` waits for every item queued so far (``flush_workqueue``).

    Work items run in the workqueue's task group: enter ``async with wq.running():`` once
    (`odp_async.world.run_world` does it around the scenario); leaving it waits for every
    queued item.  Queueing outside raises `InvalidArgument`.

    Lifetime (fed to the `Checker`): `WorkItem.free` frees the item (``kfree`` of the
    struct that embeds it); a freed item that is queued, flushed or cancelled is a
    ``use-after-free``, a second free a ``double-free``.  Queueing an item that is pending
    on *another* workqueue, or re-initialising (`WorkItem.init`) a pending item, is a
    ``double-queue`` (in the kernel: a corrupted list).

Concurrency
    Sync bookkeeping; the waits (`flush_work`, `cancel_work_sync`, `flush`) park on a
    `WaitQueue` whose holders, for deadlock reports, are the tasks running the item.  A
    flush of an item whose function needs a lock the flusher holds is a deadlock, and the
    explorer reports it as one.

See also
    `odp_async.mm.AddressSpace.mmput_async`, `odp_async.srcu.Srcu.call_srcu`.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from . import _runtime as rt
from .check import Checker
from .errors import InvalidArgument
from .sync import WaitQueue, reveal_tasks
from .tracked import TrackedDict, tracked

__all__ = ["WorkItem", "Workqueue"]


@tracked
class WorkItem:
    """One ``struct work_struct``: a name (for reports) and the function it runs."""

    __slots__ = (
        "__weakref__",
        "_done",
        "_gen",
        "_queued_on",
        "fn",
        "freed",
        "name",
        "pending",
        "running",
        "runs",
    )

    def __init__(self, name: str, fn: Callable[[], Awaitable[object]]) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"a work item needs a non-empty name, got {name!r}")
        if not callable(fn):
            raise InvalidArgument(f"work item {name!r}: fn must be an async function, got {fn!r}")
        self.name = name
        self.fn = fn
        #: Queued and not yet started.
        self.pending = False
        #: The task running it right now, or None.
        self.running: object | None = None
        #: Executions finished so far.
        self.runs = 0
        self.freed = False
        self._gen = 0
        self._queued_on: Workqueue | None = None
        self._done = WaitQueue(owner=_WorkOwner(self))

    @property
    def key(self) -> str:
        """The name the checker knows this item by."""
        return f"work {self.name}"

    @property
    def busy(self) -> bool:
        """Pending or running (``work_busy``)."""
        return self.pending or self.running is not None

    def init(self, checker: Checker, fn: Callable[[], Awaitable[object]] | None = None) -> None:
        """``INIT_WORK`` again (optionally with a new function).  Re-initialising a pending
        item is a ``double-queue``.  Sync."""
        if self.pending:
            checker.double_queue(self.key, "re-initialised while it is pending")
        if fn is not None:
            self.fn = fn

    def free(self, checker: Checker, why: str = "freed") -> None:
        """Free the item (``kfree`` of its container).  Freeing a pending or running item
        leaves its worker touching freed memory: reported when it runs.  Sync."""
        self.freed = True
        checker.freed(self.key, why)

    def __repr__(self) -> str:
        state = "pending" if self.pending else "running" if self.running else "idle"
        return f"<WorkItem {self.name} {state}>"


@tracked
class _WorkOwner:
    """Describes a wait for a work item (deadlock reports)."""

    __slots__ = ("_work",)

    def __init__(self, work: WorkItem) -> None:
        # Weak: the item holds its queue, which holds this (no reference cycle).
        self._work = weakref.ref(work)

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        work = self._work()
        if work is None:
            return "a freed work item to finish", ()
        running = work.running
        return f"{work.key} to finish", (() if running is None else reveal_tasks((running,)))


@tracked
class Workqueue:
    """A workqueue (``system_wq`` by default).  See the module docstring."""

    __slots__ = ("_idle", "_items", "_tg", "checker", "name")

    def __init__(self, checker: Checker, name: str = "system_wq") -> None:
        self.checker = checker
        self.name = name
        self._tg: rt.TaskGroupLike | None = None
        self._items: TrackedDict[WorkItem, None] = TrackedDict()
        self._idle = WaitQueue(f"{name} idle")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Workqueue]:
        """Serve work items inside this block; leaving it waits for all of them."""
        if self._tg is not None:
            raise InvalidArgument(f"workqueue {self.name} is already running")
        try:
            async with rt.task_group() as tg:
                self._tg = tg
                yield self
        finally:
            self._tg = None

    def queue_work(self, work: WorkItem) -> bool:
        """Make `work` pending and start a worker for it.  False if it was pending already.

        Sync; the item runs at a later step in task ``kworker:<name>``.
        Raises `InvalidArgument` outside `running`.
        """
        checker = self.checker
        checker.used(work.key, "queue_work")
        if work.pending:
            if work._queued_on is not self:
                checker.double_queue(
                    work.key,
                    f"queued on {self.name} while pending on "
                    f"{work._queued_on.name if work._queued_on else '?'}",
                )
            return False
        tg = self._tg
        if tg is None:
            raise InvalidArgument(
                f"queue_work({work.name}): workqueue {self.name} is not running "
                "(enter `async with wq.running():` first)"
            )
        work.pending = True
        work._queued_on = self
        work._gen += 1
        self._items[work] = None
        checker.event("work-queued", work.key, f"{work.key} queued on {self.name}")
        tg.start_soon(self._worker, work, work._gen, name=f"kworker:{work.name}")
        return True

    schedule_work = queue_work

    async def flush_work(self, work: WorkItem) -> bool:
        """Wait until `work` is neither pending nor running.  Returns whether it was busy
        when called (so had to be waited for).

        Blocks on the item's execution.  Checkpoint: always.  Cancellation leaves the item
        as it was (still pending or running): only this wait is abandoned.
        """
        self.checker.used(work.key, "flush_work")
        busy = work.busy
        await rt.checkpoint(("flush_work", work.name))
        while work.busy:
            await work._done.park()
        return busy

    async def cancel_work_sync(self, work: WorkItem) -> bool:
        """Cancel a pending execution of `work` and wait for a running one.

        Returns whether it was pending.  Blocks like `flush_work`.  Checkpoint: always.
        Cancellation during the wait leaves the pending execution cancelled and the running
        one running.
        """
        self.checker.used(work.key, "cancel_work_sync")
        was_pending = work.pending
        if was_pending:
            work.pending = False
            work._gen += 1  # the worker started for it finds itself cancelled
            self.checker.event("work-cancelled", work.key, f"{work.key} cancelled")
            self._settle(work)
        await rt.checkpoint(("cancel_work_sync", work.name))
        while work.running is not None:
            await work._done.park()
        return was_pending

    @property
    def busy(self) -> bool:
        """Whether some item of this queue is pending or running."""
        return bool(self._items)

    async def flush(self) -> None:
        """``flush_workqueue``: wait until no item of this queue is pending or running."""
        await rt.checkpoint(("flush_workqueue", self.name))
        while self._items:
            await self._idle.park()

    async def _worker(self, work: WorkItem, gen: int) -> None:
        task = rt.current_task()
        while work.running is not None:  # non-reentrant: wait for the previous execution
            await work._done.park()
        if work._gen != gen or not work.pending:
            return  # cancelled before it started
        work.pending = False
        work.running = task
        self.checker.used(work.key, "its worker")
        self.checker.event("work-begin", work.key, f"{work.key} runs")
        try:
            await work.fn()
        finally:
            work.running = None
            work.runs += 1
            self.checker.event("work-end", work.key, f"{work.key} done")
            self._settle(work)

    def _settle(self, work: WorkItem) -> None:
        work._done.wake_all()
        if not work.busy:
            self._items.pop(work, None)
            if not self._items:
                self._idle.wake_all()
