"""The RDMA device: per-region translation tables, checked DMA, a fault queue and its handlers.

Contract
    A `TranslationTable` is one memory region's page list / DMA list on the device (the
    MTT): virtual page -> frame id and permission.  The device holds no frame reference
    (ODP does not pin); every install, zap and DMA is reported to the checker, which
    compares it with the page table at that moment.

    `Device.dma` reads or writes one address through a table.  A missing translation (or
    a read-only one for a write) is a device page fault: the request goes on the fault
    queue, a fault handler task runs the fault path the ODP core installed as
    `Device.fault_handler`, and the DMA retries.  ``async with device.fault_handlers(n):``
    runs `n` handler tasks for the block (structured: they end with it); with no handler
    running, `dma` runs the fault path in its own task.

Concurrency
    A table is changed only by sync code (callers hold the region's mutex); the queue is
    a list plus a `WaitQueue`.  A notifier callback zaps in the invalidating task; a fault
    is handled in a handler task.

See also
    `odp_async.odp` (the fault path), `odp_async.check` (``stale-dma``).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs

from . import _runtime as rt
from .addr import PAGE_SHIFT, AddrRange
from .check import Checker, FrameId
from .errors import InvalidArgument, OdpError, ProtocolViolation
from .sync import Completion, WaitQueue
from .tracked import TrackedDict, TrackedList, tracked

__all__ = [
    "Device",
    "DmaError",
    "FaultOutcome",
    "FaultRequest",
    "Translation",
    "TranslationTable",
]


class DmaError(OdpError):
    """A DMA could not be completed: its page fault failed (the QP would go to error)."""


class FaultOutcome(enum.Enum):
    """How a device page fault ended."""

    #: The translations are installed.
    RESOLVED = "resolved"
    #: No page can be provided (EFAULT): unmapped, no permission, the mm or region is gone.
    FAILED = "failed"
    #: Retried or kept waiting past its bound (reported as ``starvation``).
    STARVED = "starved"


@attrs.frozen
class Translation:
    """One device translation: the frame it points to and whether writes are allowed."""

    frame: FrameId
    writable: bool


@tracked
@attrs.define(eq=False)
class TranslationTable:
    """One region's translations on the device.  Sync methods; callers serialise."""

    name: str
    range: AddrRange
    checker: Checker
    entries: TrackedDict[int, Translation] = attrs.field(factory=TrackedDict)
    #: How many times each page was installed (by anyone): a fault's commit that says
    #: "installed" is checked against it (`odp_async.odp.ucontext`), noted per page.
    installs: TrackedDict[int, int] = attrs.field(factory=TrackedDict)
    #: Dropped by `Device.drop_table` (its region deregistered): a later write of it by
    #: the driver (`install`, `zap`) is a ``use-after-release``.  The device's own reads
    #: (`get`, a DMA through the revoked key) are not the driver's use.
    released: bool = False

    def get(self, vpn: int) -> Translation | None:
        return self.entries.get(vpn)

    def _used(self, what: str) -> None:
        if self.released:
            self.checker.violation(
                "use-after-release", f"{what} touched {self.name} after its deregistration"
            )

    def install(self, vpn: int, frame: FrameId, writable: bool) -> None:
        self._used("a device page-table install")
        if not self.range.start >> PAGE_SHIFT <= vpn < self.range.end >> PAGE_SHIFT:
            raise ProtocolViolation(
                f"install of {vpn << PAGE_SHIFT:#x} into {self.name}, which covers {self.range}"
            )
        self.entries[vpn] = Translation(frame, writable)
        self.installs[vpn] = self.installs.get(vpn, 0) + 1
        self.checker.translation_installed(self.name, vpn, frame, writable)

    def zap(self, rng: AddrRange) -> int:
        """Drop the translations inside `rng`; returns how many there were."""
        self._used("a device page-table zap")
        gone = [vpn for vpn in rng.vpns() if vpn in self.entries]
        for vpn in gone:
            del self.entries[vpn]
            self.checker.translation_removed(self.name, vpn)
        return len(gone)

    def zap_all(self) -> int:
        return self.zap(self.range)

    def __len__(self) -> int:
        return len(self.entries)


@tracked
@attrs.define(eq=False)
class FaultRequest:
    """A device page fault waiting for a handler."""

    table: TranslationTable
    address: int
    write: bool
    done: Completion = attrs.field(factory=lambda: Completion("fault request"))
    outcome: FaultOutcome | None = None


FaultHandler = Callable[[FaultRequest], Awaitable[FaultOutcome]]


@tracked
@attrs.define(eq=False)
class Device:
    """The RDMA device.  `fault_handler` is installed by the ODP core (the world wires it)."""

    checker: Checker
    name: str = "mlx5_0"
    max_faults_per_dma: int = 8
    fault_handler: FaultHandler | None = None
    tables: TrackedDict[str, TranslationTable] = attrs.field(factory=TrackedDict)
    _queue: TrackedList[FaultRequest] = attrs.field(factory=TrackedList)
    _queue_ready: WaitQueue = attrs.field(factory=lambda: WaitQueue("device fault queue"))
    _handlers: int = 0
    _closing: bool = False

    def create_table(self, name: str, rng: AddrRange) -> TranslationTable:
        if name in self.tables:
            raise InvalidArgument(f"{self.name} already has a translation table named {name!r}")
        table = TranslationTable(name, rng, self.checker)
        self.tables[name] = table
        return table

    def drop_table(self, table: TranslationTable) -> None:
        table.zap_all()
        table.released = True
        self.tables.pop(table.name, None)

    async def dma(self, table: TranslationTable, address: int, *, write: bool) -> FrameId:
        """One DMA access at `address` through `table`; returns the frame it touched.

        Blocks: while a page fault it raised is handled.  Checkpoint: always.
        Raises: `DmaError` when a fault fails or faults repeat past `max_faults_per_dma`;
        `InvalidArgument` for an address outside the table's region.
        """
        if not table.range.start <= address < table.range.end:
            raise InvalidArgument(f"DMA at {address:#x} is outside {table.name} {table.range}")
        vpn = address >> PAGE_SHIFT
        for _ in range(self.max_faults_per_dma):
            await rt.checkpoint(("dma", table.name, vpn))
            t = table.get(vpn)
            if t is not None and (t.writable or not write):
                self.checker.dma(table.name, vpn, write)
                return t.frame
            outcome = await self.page_fault(table, address, write=write)
            if outcome is not FaultOutcome.RESOLVED:
                raise DmaError(f"DMA at {address:#x} via {table.name}: page fault {outcome.value}")
        raise DmaError(f"DMA at {address:#x} via {table.name}: still faulting after retries")

    async def page_fault(
        self, table: TranslationTable, address: int, *, write: bool
    ) -> FaultOutcome:
        """Raise a page fault and wait until a handler resolved it (or handle it here)."""
        handler = self.fault_handler
        if handler is None:
            raise ProtocolViolation(f"{self.name} has no fault handler installed")
        request = FaultRequest(table, address, write)
        if not self._handlers:
            return await handler(request)
        self._queue.append(request)
        self._queue_ready.wake_one()
        await request.done.wait()
        assert request.outcome is not None
        return request.outcome

    @asynccontextmanager
    async def fault_handlers(self, n: int = 1) -> AsyncIterator[None]:
        """Run `n` fault handler tasks for the duration of the block."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidArgument(f"fault_handlers() needs a positive number of tasks, got {n!r}")
        async with rt.task_group() as tg:
            self._closing = False
            for i in range(n):
                self._handlers += 1
                tg.start_soon(self._serve, name=f"fault-handler-{i}")
            try:
                yield
            finally:
                self._closing = True
                self._queue_ready.wake_all()

    async def _serve(self) -> None:
        handler = self.fault_handler
        assert handler is not None
        try:
            while True:
                while not self._queue:
                    if self._closing:
                        return
                    await self._queue_ready.park()
                request = self._queue.pop(0)
                request.outcome = await handler(request)
                request.done.complete()
        finally:
            self._handlers -= 1
