"""``odp2014-ctx``: the fix proposed in the thread: a context-wide count of running
invalidations that new regions use until it drains.

Contract
    The context counts running invalidations (``ncount``: raised before a start's tree
    walk, lowered after an end's).  A region registered while ``ncount > 0`` starts
    *inactive*: it is in the tree and is zapped, but keeps no count and its faults always
    retry.  When ``ncount`` drains to 0, the ending task takes ``umem_rwsem`` for write
    and, if still 0, activates every pending region (``seq += 1``, ``complete_all``).
    The first MR resets ``ncount`` and is always active (the subscription is new).

    This is the merged form of the proposal (``notifier_count``, ``mn_counters_active``),
    with one addition: activation bumps the region's seq.  Without it a fault that read
    seq while the region was inactive, and gup'd a page the running invalidation then
    freed, can commit right after activation::

        madvise M                     register R          fault F
        start: ncount 1 (B absent)
                                      insert B: inactive
                                                          seq0 = 0; gup(P) -> X
        zap pte(P), X freed later
        end: ncount 0 -> activate B
                                                          commit: active, count 0,
                                                            seq 0 == seq0 -> stale

    Options: ``activation_bumps_seq`` (default True; False is the merged kernel code and
    has the window above), ``reset_on_first_mr`` (default True; False is the thread's
    one-line proposal, which leaves ``ncount`` stuck after the last MR is deregistered
    mid-invalidation).

    The merged ``ib_umem_odp_release`` (v3.19-v4.19) keeps the posted deregistration, so
    the last region's unregister under the downgraded ``umem_rwsem`` deadlocks against a
    registration as odp2014's does (``lastdereg-vs-register``).

See also
    `odp_async.odp.protocols.odp2014`; ``umem_odp.c`` (v3.19-v4.x).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ...addr import AddrRange
from ...mm import Invalidation
from ...tracked import TrackedList, tracked
from ..umem import Umem
from .odp2014 import Odp2014

__all__ = ["Odp2014Ctx"]


@tracked
@attrs.define
class _Active:
    active: bool


@tracked
class Odp2014Ctx(Odp2014):
    name: ClassVar[str] = "odp2014-ctx"
    summary: ClassVar[str] = (
        "the thread's fix: new regions use a context-wide invalidation count until it drains"
    )
    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "clamp": True,
        "activation_bumps_seq": True,
        "reset_on_first_mr": True,
    }
    activation_bumps_seq: bool
    reset_on_first_mr: bool

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        #: Running invalidations, context-wide (``notifier_count``).
        self.ncount = 0
        #: Regions registered while ``ncount > 0``, in registration order.
        self.pending: TrackedList[Umem] = TrackedList()

    def _state(self, umem: Umem) -> _Active:
        state = umem.proto
        assert isinstance(state, _Active)
        return state

    def on_insert(self, umem: Umem, first: bool) -> None:
        active = self.ncount == 0 or first
        umem.proto = _Active(active)
        if not active:
            self.pending.append(umem)

    async def on_first_mr(self) -> None:
        if self.reset_on_first_mr:
            self.ncount = 0

    def on_remove(self, umem: Umem) -> None:
        if umem in self.pending:
            self.pending.remove(umem)
            umem.completion.complete_all()

    async def before_start(self, inv: Invalidation) -> None:
        self.ncount += 1

    async def start_account(self, umem: Umem, inv: Invalidation) -> None:
        if self._state(umem).active:
            await super().start_account(umem, inv)
        else:
            umem.touch("invalidate_range_start")

    async def end_account(self, umem: Umem, inv: Invalidation) -> None:
        if self._state(umem).active:
            await super().end_account(umem, inv)
        else:
            umem.touch("invalidate_range_end")

    async def after_end(self, inv: Invalidation) -> None:
        self.ncount -= 1
        if self.ncount or not self.pending:
            return
        rwsem = self.ctx.umem_rwsem
        await rwsem.acquire_write()
        try:
            if self.ncount == 0:
                for umem in list(self.pending):
                    async with umem.mutex:
                        self._state(umem).active = True
                        if self.activation_bumps_seq:
                            umem.seq += 1
                        umem.completion.complete_all()
                    self.pending.remove(umem)
        finally:
            rwsem.release_write()

    async def release_account(self, umem: Umem) -> None:
        if self._state(umem).active:
            await super().release_account(umem)
        else:
            async with umem.mutex:
                umem.dying = True
                umem.completion.complete_all()

    async def release(self) -> None:
        self.ncount += 1  # never ended
        await super().release()

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        return not self._state(umem).active or super().must_retry(umem, rng, token)
