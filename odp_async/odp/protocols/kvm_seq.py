"""``kvm-seq``: one context-wide count + seq, KVM style (``mmu_notifier_count`` /
``mmu_notifier_seq``): correct and coarse.

Contract
    Every start raises the context's ``in_progress`` under ``mmu_lock``, unconditionally,
    before zapping the overlapping regions; every end bumps ``seq`` and lowers
    ``in_progress``, waking waiting faults at 0.  A fault reads ``seq`` before gup and
    commits only if, under ``mmu_lock``, nothing is in progress and ``seq`` is unchanged;
    otherwise it waits until ``in_progress`` is 0 and retries.  Counts restart at 0, and
    the context is live again, when the subscription is (re)registered: registration
    cannot straddle an invalidation, and a ``release`` belongs to the registration it
    ended (``mmu_notifier_unregister`` of the last region calls it; the first region
    registered afterwards makes a new subscription, as ``ib_umem_odp_get`` does).

    Correct for the registration race (the count does not depend on which regions an
    invalidation overlaps), but any invalidation anywhere in the mm makes every fault
    retry: a storm elsewhere starves a quiet region.  ``release`` marks the registration
    dead (until the next one) and keeps ``in_progress`` raised; option
    ``literal_release=True`` only zaps, as KVM's ``kvm_mmu_notifier_release`` does, which
    lets a fault that gup'd before the exit commit.

    The registry is the 2014 ucontext's, but the last region's deregistration
    unregisters the subscription outside ``umem_rwsem`` (``LAST_MR_UNREGISTER =
    "unlocked"``), as KVM's ``kvm_destroy_vm`` holds no lock its ``->release`` takes, so
    the nested-read deadlock of the 2014 teardown (``lastdereg-vs-register``) is not
    KVM-style accounting's.

See also
    ``virt/kvm/kvm_main.c`` (``mmu_invalidate_seq``, ``mmu_invalidate_in_progress``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...addr import AddrRange
from ...mm import Invalidation, PinnedPage
from ...sync import Mutex, WaitQueue
from ...tracked import tracked
from ..umem import Umem
from .base import FaultAborted, TreeProtocol

__all__ = ["KvmSeq"]


@tracked
class KvmSeq(TreeProtocol):
    name: ClassVar[str] = "kvm-seq"
    summary: ClassVar[str] = "one context-wide count+seq, KVM style: correct, coarse"
    OPTIONS: ClassVar[Mapping[str, Any]] = {"literal_release": False}
    #: Unregisters outside ``umem_rwsem`` (`TreeProtocol.LAST_MR_UNREGISTER`).
    LAST_MR_UNREGISTER: ClassVar[str] = "unlocked"
    literal_release: bool

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.mmu_lock = Mutex("mmu_lock")
        self.in_progress = 0
        self.seq = 0
        self.dead = False
        self._idle = WaitQueue("kvm in_progress == 0")

    async def on_first_mr(self) -> None:
        # a new subscription: nothing in progress, and not released (a release ended the
        # previous registration, not the context)
        self.in_progress = 0
        self.dead = False

    async def before_start(self, inv: Invalidation) -> None:
        async with self.mmu_lock:
            self.in_progress += 1

    async def after_end(self, inv: Invalidation) -> None:
        async with self.mmu_lock:
            self.seq += 1
            self.in_progress -= 1
            self.ctx.checker.count_changed("ctx", "in_progress", self.in_progress, str(inv.range))
            if self.in_progress <= 0:
                self._idle.wake_all()

    async def release(self) -> None:
        if not self.literal_release:
            async with self.mmu_lock:
                self.dead = True
                self.in_progress += 1  # no end will come
        async with self.ctx.umem_rwsem.read_locked():
            for umem in self.ctx.all_umems():
                await self.ctx.zap(umem, umem.range, "release")
        self._idle.wake_all()

    def read_token(self, umem: Umem) -> object:
        return self.seq

    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        if self.dead:
            raise FaultAborted("the mm was released")
        return await super().fault_begin(umem, rng)

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        async with self.mmu_lock:
            if self.dead:
                raise FaultAborted("the mm was released")
            async with umem.mutex:
                # The spte write is not atomic with the check: arch/x86/kvm/mmu/mmu.c
                # kvm_tdp_mmu_page_fault checks is_page_fault_stale, then tdp_mmu.c
                # kvm_tdp_mmu_map writes the sptes, mmu_lock held only for read, so other
                # CPUs run meanwhile.  A party taking mmu_lock waits; one that does not
                # (a lockless invalidator) overlaps the write (`commit_under_lock`).
                return await self.commit_under_lock(umem, rng, token, pages)

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        return self.in_progress > 0 or self.seq != token

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        while self.in_progress > 0 and not self.dead:
            await self._idle.park()
