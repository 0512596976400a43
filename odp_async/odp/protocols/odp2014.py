"""``odp2014``: the 2014 patch as posted: per-region count + seq, an end without a start
clamped at 0.

Contract
    start: per overlapping region, under its mutex, ``count += 1`` (re-arming its
    completion when it leaves 0), then zap.  end: ``seq += 1``; ``count -= 1`` unless it is
    already 0 (the posted workaround: warn, "Got notifier end call without a previous
    start call"); at 0, ``complete_all``.  A fault reads ``seq`` before get_user_pages
    and commits only if, under the mutex, ``count == 0 and seq == seq0``; otherwise it
    waits on the completion and retries.  ``release`` raises every count for good, marks
    the regions dying and wakes their waiters.

    Option ``clamp`` (default True): with False, the count goes below zero and the checker
    reports ``unbalanced-notifier`` (the state before the workaround).

    The race (Shachar Raindel, 2014-09-07): registration holds mmap_sem for read, and so
    does madvise(DONTNEED), so a region can be inserted between an invalidation's start
    and its end::

        madvise M                      register R               fault F
        ---------                      ----------               -------
        down_read(mmap_sem)
        start: B not in tree
                                       insert B (count 0)
                                                                seq0 = B.seq; gup(P) -> X
        zap pte(P)
                                                                commit: count 0, seq same
                                                                  -> B[P] = X   (stale)
        end: B.seq++, count 0 -> -1 (clamped to 0)

    Deregistration is the patch's too (``LAST_MR_UNREGISTER = "2014"``): the last
    region's ``mmu_notifier_unregister`` runs under ``umem_rwsem`` downgraded to read and
    its ``->release`` takes the read lock again, which deadlocks behind a registration's
    queued ``down_write`` (``lastdereg-vs-register``; `TreeProtocol`).

See also
    ``drivers/infiniband/core/umem_odp.c`` (2014); the review thread in ``seed/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...addr import AddrRange
from ...mm import Invalidation
from ...tracked import tracked
from ..umem import Umem
from .base import TreeProtocol

__all__ = ["Odp2014"]


@tracked
class Odp2014(TreeProtocol):
    name: ClassVar[str] = "odp2014"
    summary: ClassVar[str] = "the 2014 patch: per-region count+seq, end-without-start clamped at 0"
    OPTIONS: ClassVar[Mapping[str, Any]] = {"clamp": True}
    clamp: bool

    async def start_account(self, umem: Umem, inv: Invalidation) -> None:
        async with umem.mutex:
            umem.touch("invalidate_range_start")
            if umem.count == 0:
                umem.completion.reinit()
            umem.set_count(umem.count + 1, inv.range)

    async def end_account(self, umem: Umem, inv: Invalidation) -> None:
        async with umem.mutex:
            umem.touch("invalidate_range_end")
            umem.seq += 1
            if umem.count > 0 or not self.clamp:
                umem.set_count(umem.count - 1, inv.range)
            else:
                self.ctx.checker.warning(
                    umem.name, f"{umem.name}: got notifier end call without a previous start call"
                )
            if umem.count == 0:
                umem.completion.complete_all()

    async def release_account(self, umem: Umem) -> None:
        async with umem.mutex:
            umem.touch("release")
            umem.set_count(umem.count + 1, umem.range)  # no end will come
            umem.dying = True
            umem.completion.complete_all()

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        return umem.count != 0 or umem.seq != token
