"""Sleepable RCU: read sections that may block, a grace-period wait, and deferred callbacks.

Contract
    Modelled on ``kernel/rcu/srcutree.c`` (Linux v6.6), as the notifier core uses it
    (``mm/mmu_notifier.c``: callbacks run inside ``srcu_read_lock``; unregister waits with
    ``synchronize_srcu``; ``mmu_notifier_put`` frees with ``call_srcu``):

    - `Srcu.read_lock` / `Srcu.read_unlock` (sync) open and close a read section, named
      by the returned index; `Srcu.read_section` is the same as a ``with`` block;
    - `Srcu.synchronize` (``synchronize_srcu``) waits until every read section that was
      open when it was called has closed (sections opened later do not hold it up);
    - `Srcu.call_srcu(name, fn)` runs ``fn`` on the workqueue after such a grace period
      and returns at once: the deferred free.

    A task that finishes with a read section open is a ``lock-held-at-exit``
    (`odp_async.world.run_world` checks `open_sections`).

Concurrency
    Sync bookkeeping; `synchronize` parks on a `WaitQueue` whose holders, in deadlock
    reports, are the readers it waits for.  Calling `synchronize` inside a read section
    of the same `Srcu` deadlocks, as in the kernel.

See also
    `odp_async.workqueue`, `odp_async.mm.AddressSpace.unregister_notifier`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from . import _runtime as rt
from .errors import InvalidArgument
from .sync import WaitQueue, reveal_tasks
from .tracked import TrackedDict, tracked
from .workqueue import WorkItem, Workqueue

__all__ = ["Srcu"]


@tracked
class Srcu:
    """One ``srcu_struct``.  See the module docstring."""

    __slots__ = ("_changed", "_next", "_readers", "name", "workqueue")

    def __init__(self, name: str = "srcu", workqueue: Workqueue | None = None) -> None:
        self.name = name
        self.workqueue = workqueue
        self._next = 0
        # read-section index -> the task inside it
        self._readers: TrackedDict[int, object] = TrackedDict()
        self._changed = WaitQueue(owner=_Readers(self))

    def read_lock(self) -> int:
        """Open a read section in the calling task; returns its index.  Sync."""
        idx = self._next
        self._next += 1
        self._readers[idx] = rt.current_task()
        return idx

    def read_unlock(self, idx: int) -> None:
        """Close the read section `idx`.  Sync.  Raises `InvalidArgument` if not open."""
        if self._readers.pop(idx, None) is None:
            raise InvalidArgument(f"srcu_read_unlock({idx}) of {self.name}: no such section")
        self._changed.wake_all()

    @contextmanager
    def read_section(self) -> Iterator[int]:
        """``idx = srcu_read_lock(); ...; srcu_read_unlock(idx)`` as a ``with`` block."""
        idx = self.read_lock()
        try:
            yield idx
        finally:
            self.read_unlock(idx)

    async def synchronize(self) -> None:
        """Wait for the read sections open now to close (sections opened later are not
        waited for).  Blocks; checkpoint: always.  Cancellation abandons the wait and
        leaves the readers as they are."""
        await rt.checkpoint(("synchronize_srcu", self.name))
        waiting = set(self._readers)
        while waiting & self._readers.keys():
            await self._changed.park()

    def call_srcu(self, name: str, fn: Callable[[], Awaitable[object]]) -> WorkItem:
        """Run `fn` on the workqueue after a grace period; returns its work item.  Sync.

        Raises `InvalidArgument` when this `Srcu` has no workqueue.
        """
        wq = self.workqueue
        if wq is None:
            raise InvalidArgument(f"call_srcu on {self.name}: it was built without a workqueue")
        waiting = set(self._readers)

        async def after_grace_period() -> None:
            while waiting & self._readers.keys():
                await self._changed.park()
            await fn()

        work = WorkItem(f"call_srcu {name}", after_grace_period)
        wq.queue_work(work)
        return work

    def open_sections(self) -> list[object]:
        """The tasks inside a read section now (one entry per section)."""
        return list(reveal_tasks(tuple(self._readers.values())))


@tracked
class _Readers:
    __slots__ = ("_srcu",)

    def __init__(self, srcu: Srcu) -> None:
        self._srcu = srcu

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        readers = reveal_tasks(tuple(self._srcu._readers.values()))
        return f"{self._srcu.name} readers (synchronize_srcu)", readers
