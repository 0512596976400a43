"""``range-list``: the mm keeps a list of active invalidation ranges; faults wait until
their range is valid and re-check at commit (the 2014 "keep track of active invalidation
ranges" patch, ``mmu_notifier_range_wait_valid``).

Contract
    The mm lists every invalidation's range from before its start callbacks until before
    its end callbacks.  The start callback bumps the seq of each overlapping region (under
    its mutex) and zaps.  A fault first waits until no listed range overlaps its own
    (``range_wait_valid``), reads the seq, gup's, and commits only if, under the region's
    mutex, the range is still valid and the seq unchanged; otherwise it waits again.

    The patch itself leaves the per-region seq to its users and lists the range *after*
    the start callbacks.  Option ``literal_order=True`` models that order: a region
    registered between the callbacks and the list insertion can be faulted and committed
    before the range becomes visible::

        invalidation M                 register R            fault F
        start callbacks (B absent)
                                       insert B
                                                             wait_valid: list empty
                                                             seq0; gup(P) -> X; commit
        list range; zap pte(P)  -> X freed while B[P] = X

    The last region's deregistration unregisters outside ``umem_rwsem``
    (``LAST_MR_UNREGISTER = "unlocked"``): the patch concerns the mm's side, and the
    2014 teardown's nested-read deadlock (``lastdereg-vs-register``) is not its own.

See also
    `odp_async.mm.AddressSpace.range_wait_valid`; the patch in ``seed/`` (lines 2302-3452).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...addr import AddrRange
from ...mm import Invalidation
from ...tracked import tracked
from ..umem import Umem
from .base import TreeProtocol

__all__ = ["RangeList"]


@tracked
class RangeList(TreeProtocol):
    name: ClassVar[str] = "range-list"
    summary: ClassVar[str] = (
        "the mm lists active invalidation ranges; faults wait until valid, re-check at commit"
    )
    OPTIONS: ClassVar[Mapping[str, Any]] = {"literal_order": False}
    #: Unregisters outside ``umem_rwsem`` (`TreeProtocol.LAST_MR_UNREGISTER`).
    LAST_MR_UNREGISTER: ClassVar[str] = "unlocked"
    literal_order: bool

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        ctx.mm.range_list_after_callbacks = self.literal_order

    async def start_account(self, umem: Umem, inv: Invalidation) -> None:
        async with umem.mutex:
            umem.touch("invalidate_range_start")
            umem.seq += 1

    release_account = TreeProtocol.release_bumping_seq

    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        await self.ctx.mm.range_wait_valid(rng)
        return await super().fault_begin(umem, rng)

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        # In the default order the range check is redundant: every invalidation lists its
        # range, then bumps the seq under this mutex, and only then changes a pte, so a
        # commit that sees the old seq installs a page no pte change has touched yet (the
        # start zaps it afterwards).  With ``literal_order`` the seq is bumped *before*
        # the range is listed: a fault can read the new seq and gup the old page while
        # the range is listed; only this check refuses it
        # (tests/odp/test_mechanisms.py pins it).
        return not self.ctx.mm.range_is_valid(rng) or umem.seq != token

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        await self.ctx.mm.range_wait_valid(rng)
