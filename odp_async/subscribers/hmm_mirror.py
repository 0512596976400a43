"""An HMM-mirror-style subscriber: its own lock and notifier counter, and a device driver
lock for the mirror's page-table update, each taken with a trylock on a non-blockable range.

Contract
    Modelled on ``mm/hmm.c`` of Linux v5.2 (``hmm_invalidate_range_start``: ``hmm->lock``
    then ``hmm->notifiers++`` and the ranges marked invalid, then each mirror's
    ``sync_cpu_device_pagetables`` under the driver's lock; ``hmm_range_wait_until_valid``
    for faults):

    - start: under `lock`, raise `notifiers` and bump `seq`; then under `driver_lock`
      zap the range.  On a non-blockable range both locks are trylocks; if the driver
      lock is busy the start refuses (`WouldBlock`).  With ``undo_on_refusal=True`` (the
      fix) the refusal first lowers `notifiers` again; with False (the mistake) it leaves
      it raised -- and a refused subscriber never gets an end, so it stays raised;
    - end: under `lock`, lower `notifiers`, bump `seq`, wake faults at 0;
    - `HmmMirror.fault`: wait until `notifiers` is 0, read `seq`, gup, then under
      `driver_lock` install only if nothing is running and `seq` is unchanged, else retry.

Concurrency
    `lock` guards `notifiers` and `seq`; `driver_lock` the device's page table.
"""

from __future__ import annotations

from ..check import Checker
from ..errors import InvalidArgument, WouldBlock
from ..mm import AddressSpace, Invalidation
from ..sync import Mutex, WaitQueue
from ..tracked import tracked
from .base import Subscriber, check_max_retries

__all__ = ["HmmMirror"]


@tracked
class HmmMirror(Subscriber):
    """One device mirroring `mm`.  See the module docstring."""

    def __init__(
        self,
        mm: AddressSpace,
        checker: Checker,
        table: str = "hmm",
        *,
        undo_on_refusal: bool = True,
        max_retries: int = 12,
    ) -> None:
        super().__init__(mm, checker, table)
        if not isinstance(undo_on_refusal, bool):
            raise InvalidArgument(f"undo_on_refusal must be a bool, got {undo_on_refusal!r}")
        self.undo_on_refusal = undo_on_refusal
        self.max_retries = check_max_retries(max_retries)
        self.lock = Mutex(f"{table}.lock")
        self.driver_lock = Mutex(f"{table}.driver_lock")
        self.notifiers = 0
        self.seq = 0
        self._valid = WaitQueue(f"{table} notifiers == 0")

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if inv.blockable:
            await self.lock.acquire()
        else:
            self.lock.acquire_nowait()  # WouldBlock: refused, nothing done
        self.notifiers += 1
        self.seq += 1
        self.lock.release()
        if inv.blockable:
            await self.driver_lock.acquire()
        else:
            try:
                self.driver_lock.acquire_nowait()
            except WouldBlock:
                if self.undo_on_refusal:
                    self._lower()
                raise
        try:
            self.zap(inv.range)
        finally:
            self.driver_lock.release()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        async with self.lock:
            self.seq += 1
            self._lower()

    def _lower(self) -> None:
        self.notifiers -= 1
        self.checker.count_changed(self.table, "notifiers", self.notifiers, "")
        if self.notifiers <= 0:
            self._valid.wake_all()

    async def release(self) -> None:
        async with self.driver_lock:
            self.dead = True
            self.zap_all()
        self._valid.wake_all()

    async def fault(self, address: int, *, write: bool = False) -> str:
        """A device fault at `address`: ``"resolved"``, ``"failed"`` or ``"starved"``."""
        return await self.retrying_fault(
            address,
            write,
            lock=self.driver_lock,
            running=lambda: self.notifiers,
            seq=lambda: self.seq,
            quiet=self._valid,
            max_retries=self.max_retries,
            wait_first=True,
        )
