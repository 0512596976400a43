"""``hmm-pool``: per-invalidation tracking structs from a fixed pool; start blocks while the
pool is empty (HMM as Jerome Glisse described it in the 2014 thread).

Contract
    Each start takes a slot from a `SlotPool` of ``pool_size`` (default 1), blocking while
    none is free, and records its range as active; then it bumps the seq of, and zaps,
    each overlapping region.  The end finds its slot by invalidation id, frees it and
    wakes waiting faults; an end with no slot (its start was never seen) is ignored.  A
    fault waits until no active range overlaps its own, reads the seq, gup's, and
    commits only if no active range overlaps and the seq is unchanged.

    The deadlock argued in the thread (Shachar Raindel, 2014-09-11): blocking in start
    makes every lock taken inside a start..end section wait for the pool::

        code 1 (munmap, hugetlb)           code 2 (truncate)
        start: take the only slot
                                           lock(i_mmap)
        lock(i_mmap) ... blocks
                                           start: wait for a slot ... blocks

    The last region's deregistration unregisters outside ``umem_rwsem``
    (``LAST_MR_UNREGISTER = "unlocked"``), as an HMM mirror is unregistered holding no
    lock of its driver: only the pool's deadlock is this protocol's.

See also
    `odp_async.sync.SlotPool`; the thread in ``seed/`` (lines 1689-1716).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...addr import AddrRange
from ...errors import InvalidArgument
from ...mm import Invalidation
from ...sync import MAX_POOL_SIZE, SlotPool, WaitQueue
from ...tracked import TrackedDict, tracked
from ..umem import Umem
from .base import TreeProtocol

__all__ = ["HmmPool"]


@tracked
class HmmPool(TreeProtocol):
    name: ClassVar[str] = "hmm-pool"
    summary: ClassVar[str] = (
        "per-invalidation structs from a fixed pool; start blocks while the pool is empty"
    )
    OPTIONS: ClassVar[Mapping[str, Any]] = {"pool_size": 1}
    #: Unregisters outside ``umem_rwsem`` (`TreeProtocol.LAST_MR_UNREGISTER`).
    LAST_MR_UNREGISTER: ClassVar[str] = "unlocked"
    pool_size: int

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.pool = SlotPool(self.pool_size, "hmm pool")
        #: invalidation id -> (range, slot), for the starts this subscription saw.
        self.active: TrackedDict[int, tuple[AddrRange, int]] = TrackedDict()
        self._changed = WaitQueue("hmm active ranges")

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """As the base's; ``pool_size`` must be from 1 to `MAX_POOL_SIZE` (the pool
        allocates its slots) (`InvalidArgument`)."""
        super().check_options(options)
        size = options.get("pool_size", 1)
        if not 1 <= size <= MAX_POOL_SIZE:
            raise InvalidArgument(
                f"protocol {cls.name!r} option 'pool_size' must be from 1 to "
                f"{MAX_POOL_SIZE}, got {size!r}"
            )

    async def before_start(self, inv: Invalidation) -> None:
        slot = await self.pool.acquire()
        self.active[inv.id] = (inv.range, slot)

    async def start_account(self, umem: Umem, inv: Invalidation) -> None:
        async with umem.mutex:
            umem.touch("invalidate_range_start")
            umem.seq += 1

    async def after_end(self, inv: Invalidation) -> None:
        entry = self.active.pop(inv.id, None)
        if entry is None:
            return  # an end whose start this subscription never saw
        self.pool.release(entry[1])
        self._changed.wake_all()

    release_account = TreeProtocol.release_bumping_seq

    async def release(self) -> None:
        await super().release()
        self._changed.wake_all()

    async def remove(self, umem: Umem) -> None:
        await super().remove(umem)
        if self.ctx.odp_mrs_count == 0:
            # Unregistered: the ends of invalidations in flight will never come.
            for _, slot in self.active.values():
                self.pool.release(slot)
            self.active.clear()
            self._changed.wake_all()

    def _busy(self, rng: AddrRange) -> bool:
        return any(r.overlaps(rng) for r, _ in self.active.values())

    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        while self._busy(rng) and not umem.dying:
            await self._changed.park()
        return await super().fault_begin(umem, rng)

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        return self._busy(rng) or umem.seq != token

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        pass  # fault_begin waits for the overlapping invalidations
