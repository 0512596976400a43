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
      callback runs on the region); else removed at once.
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

from ...addr import AddrRange
from ...mm import Invalidation, PinnedPage
from ...sync import WaitQueue
from ..umem import Umem
from .base import FaultAborted, OdpProtocol

__all__ = ["IntervalSeq"]

_ALL = AddrRange(0, 1 << 60)


@attrs.define
class _Interval:
    iseq: int


class IntervalSeq(OdpProtocol):
    name: ClassVar[str] = "interval-seq"
    summary: ClassVar[str] = (
        "today's mmu_interval_notifier: mm-wide odd/even seq, deferred insert/remove"
    )

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.seq = 2
        self.active = 0
        self.deferred: list[tuple[Umem, bool]] = []  # (region, is_insert)
        self.dead = False
        self._registered = False
        self._seq_moved = WaitQueue("interval seq")

    @staticmethod
    def _iv(umem: Umem) -> _Interval:
        state = umem.proto
        assert isinstance(state, _Interval)
        return state

    # --- registry ---------------------------------------------------------------------

    async def insert(self, umem: Umem) -> None:
        if not self._registered:
            await self.ctx.mm.register_notifier(self.ctx.subscription)
            self._registered = True
        if self.active > 0:
            if self.seq & 1:
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
        wait_for = 0
        if self.seq & 1:
            if not self.ctx.is_in_tree(umem):
                self.deferred = [(u, ins) for u, ins in self.deferred if u is not umem]
            else:
                self.deferred.append((umem, False))
                wait_for = self.seq
        else:
            self.ctx.tree_remove(umem)
        self.ctx.odp_mrs_count -= 1
        while wait_for and self.seq == wait_for:
            await self._seq_moved.park()

    # --- callbacks --------------------------------------------------------------------

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if not inv.blockable:  # the failure path (base.py): refuses by default
            await self.invalidate_range_start_nonblock(inv)
            return
        await self._start(inv.range, f"invalidate_range_start({inv})")

    async def _start(self, rng: AddrRange, what: str) -> None:
        self.active += 1
        hits = self.ctx.overlapping(rng)
        if hits:
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
        self._end()

    def _end(self) -> None:
        self.active -= 1
        if self.active or not self.seq & 1:
            return
        self.seq += 1
        for umem, is_insert in self.deferred:
            if is_insert:
                self.ctx.tree_insert(umem)
            else:
                self.ctx.tree_remove(umem)
        self.deferred.clear()
        self._seq_moved.wake_all()

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
        s = self._iv(umem).iseq
        while s == self.seq and not self.dead:
            await self._seq_moved.park()
        return s

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        async with umem.mutex:
            umem.touch("a fault commit")
            if self._iv(umem).iseq != token:
                return False
            self.ctx.install(umem, pages)
            return True

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        pass  # read_begin does the waiting

    def holds_back(self, umem: Umem, rng: AddrRange) -> bool:
        """``read_begin`` would sleep now: the region's ``iseq`` is the running epoch."""
        return not (self.dead or umem.dying) and self._iv(umem).iseq == self.seq
