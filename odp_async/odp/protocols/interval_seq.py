"""``interval-seq``: today's kernel ``mmu_interval_notifier`` (2019-).

Contract
    The registry keeps an mm-wide ``seq`` (even: idle; odd: some region is being
    invalidated, initially 2), the number of running invalidations ``active``, and a list
    of tree changes deferred while ``seq`` is odd.  Each region keeps ``iseq`` (always odd).

    - start: ``active += 1``; if any region overlaps, ``seq |= 1``; then per overlapping
      region, under its mutex: ``iseq = seq`` (``mmu_interval_set_seq``) and zap.
    - end: ``active -= 1``; at 0 with ``seq`` odd: ``seq += 1``, apply the deferred
      inserts/removes, wake every ``read_begin`` sleeper.
    - insert while ``active > 0``: deferred if ``seq`` is odd, else ``seq |= 1`` and insert;
      either way ``iseq = seq``, so the region's first ``read_begin`` sleeps until the
      running invalidations end.  Insert when idle: ``iseq = seq - 1``.
    - remove while ``seq`` is odd: deferred, and waits until ``seq`` moves (afterwards no
      callback runs on the region); else removed at once.  The last end bumps ``seq`` and
      then applies the deferred list, both under the registry's lock
      (``subscriptions->lock``); the model draws that critical section as a window (a
      checkpoint, the lock held) whenever the list is not empty.  Today's remove reads
      ``seq`` for its wait under that lock, so it returns only after the list was
      applied; before the 2022 fix (`AddressSpace.interval_remove_wait` ``"pre-2022"``)
      it read it without the lock, returned inside the window, and its caller freed a
      region the end then unlinked: a ``use-after-free``.
    - fault: ``seq0 = read_begin(U)`` (sleeps while ``U.iseq == seq``), gup, then under
      ``U.mutex`` commit unless ``read_retry``: ``U.iseq != seq0``.
    - release: one full invalidation of every region, then the context is dead.

    The subscription is registered with the first region and kept for the mm's lifetime.
    The registry's own state changes only in sync code (the kernel's spinlock).

See also
    ``mm/mmu_notifier.c`` (``mmu_interval_read_begin``, its interleaving diagram).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from ... import _runtime as rt
from ...addr import AddrRange
from ...mm import Invalidation, PinnedPage
from ...sync import WaitQueue
from ...tracked import TrackedList, tracked
from ..umem import Umem
from .base import FaultAborted, OdpProtocol

__all__ = ["IntervalSeq"]

_ALL = AddrRange(0, 1 << 60)


@tracked
@attrs.define
class _Interval:
    iseq: int


@tracked
class IntervalSeq(OdpProtocol):
    name: ClassVar[str] = "interval-seq"
    summary: ClassVar[str] = (
        "today's mmu_interval_notifier: mm-wide odd/even seq, deferred insert/remove"
    )

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.seq = 2
        self.active = 0
        self.deferred: TrackedList[tuple[Umem, bool]] = TrackedList()  # (region, is_insert)
        self.dead = False
        self._registered = False
        self._seq_moved = WaitQueue("interval seq")
        # True while an end holds the registry's lock across its deferred list
        self._end_locked = False

    @staticmethod
    def _iv(umem: Umem) -> _Interval:
        state = umem.proto
        assert isinstance(state, _Interval)
        return state

    # --- registry ---------------------------------------------------------------------

    async def _lock(self) -> None:
        # spin_lock(&subscriptions->lock): wait out an end applying its deferred list
        while self._end_locked:
            await self._seq_moved.park()

    async def insert(self, umem: Umem) -> None:
        await self._lock()
        if not self._registered:
            await self.ctx.mm.register_notifier(self.ctx.subscription)
            self._registered = True
        if self.active > 0:
            if self.seq & 1:
                self.ctx.note_insert_request(umem)
                self.deferred.append((umem, True))
            else:
                self.seq |= 1
                self.ctx.tree_insert(umem)
            umem.proto = _Interval(self.seq)
        else:
            umem.proto = _Interval(self.seq - 1)
            self.ctx.tree_insert(umem)
        self.ctx.odp_mrs_count += 1

    async def remove(self, umem: Umem) -> None:
        await self._lock()
        wait_for = 0
        if self.seq & 1:
            if not self.ctx.is_in_tree(umem):
                self.deferred = TrackedList((u, ins) for u, ins in self.deferred if u is not umem)
            else:
                self.deferred.append((umem, False))
                wait_for = self.seq
        else:
            self.ctx.tree_remove(umem)
        self.ctx.odp_mrs_count -= 1
        if wait_for:  # wait_event's first test runs after the unlock
            await rt.checkpoint(("interval-seq", "remove", umem.name))
        locked_read = self.ctx.mm.interval_remove_wait == "today"
        # mmu_interval_seq_released (today) takes the lock to read seq; before the 2022
        # fix the condition was a bare READ_ONCE, true inside an end's critical section
        while wait_for and (self.seq == wait_for or (locked_read and self._end_locked)):
            await self._seq_moved.park()

    # --- callbacks --------------------------------------------------------------------

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if not inv.blockable:  # the failure path (base.py): refuses by default
            await self.invalidate_range_start_nonblock(inv)
            return
        await self._start(inv.range, f"invalidate_range_start({inv})")

    async def _start(self, rng: AddrRange, what: str) -> None:
        await self._lock()
        self.active += 1
        hits = self.ctx.overlapping(rng)
        if hits and not self.seq & 1:  # already odd: no store (a read, for DPOR)
            self.seq |= 1
        cur = self.seq
        for umem in hits:  # the tree cannot change while seq is odd
            umem.touch(what)
            async with umem.mutex:
                self._iv(umem).iseq = cur
                inside = umem.range.intersection(rng)
                if inside is not None:
                    umem.table.zap(inside)

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        if self.active == 1 and self.seq & 1 and self.deferred:
            # mn_itree_inv_end with a deferred list: seq moves, then the list is applied,
            # all under the registry's lock -- drawn as a window with the lock held
            self._end_locked = True
            self.active -= 1
            self.seq += 1
            await rt.checkpoint(("interval-seq", "deferred list"))
            self._apply_deferred()
            self._end_locked = False
            self._seq_moved.wake_all()
            return
        self._end()

    def _end(self) -> None:
        self.active -= 1
        if self.active or not self.seq & 1:
            return
        self.seq += 1
        self._apply_deferred()
        self._seq_moved.wake_all()

    def _apply_deferred(self) -> None:
        for umem, is_insert in self.deferred:
            if is_insert:
                self.ctx.tree_insert(umem, deferred=True)
            else:
                self.ctx.tree_remove(umem)
        self.deferred.clear()

    async def release(self) -> None:
        await self._start(_ALL, "release")
        for umem in self.ctx.all_umems():
            umem.dying = True
        self.dead = True
        self._end()
        self._seq_moved.wake_all()

    # --- fault ------------------------------------------------------------------------

    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        if self.dead or umem.dying:
            raise FaultAborted("the mm was released")
        await self._lock()
        s = self._iv(umem).iseq
        while s == self.seq and not self.dead:
            await self._seq_moved.park()
        return s

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        async with umem.mutex:
            umem.touch("a fault commit")
            if self._iv(umem).iseq != token:  # mmu_interval_read_retry
                return False
            # mlx5r_umr_update_xlt sleeps for the UMR completion, umem_mutex held
            await self.ctx.update_device(umem, rng, pages)
            return True

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        pass  # read_begin does the waiting

    def holds_back(self, umem: Umem, rng: AddrRange) -> bool:
        """``read_begin`` would sleep now: the region's ``iseq`` is the running epoch."""
        return not (self.dead or umem.dying) and self._iv(umem).iseq == self.seq
