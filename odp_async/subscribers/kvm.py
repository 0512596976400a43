"""A KVM-style secondary MMU: one in-progress count and one seq under ``mmu_lock``.

Contract
    Modelled on ``virt/kvm/kvm_main.c`` (Linux v6.6: ``mmu_invalidate_in_progress``,
    ``mmu_invalidate_seq``, ``kvm_mmu_notifier_invalidate_range_start/end``) and the
    vCPU fault's retry (``mmu_invalidate_retry``):

    - start: under ``mmu_lock``, raise ``in_progress`` and zap the range's sptes.  KVM's
      ``mmu_lock`` is a spinlock, which a non-blockable range may take: KVM never
      refuses;
    - end: under ``mmu_lock``, bump ``seq`` and lower ``in_progress``; at 0 wake faults;
    - `KvmMmu.fault`: read ``seq``, gup the page, then under ``mmu_lock`` install only if
      nothing is in progress and ``seq`` is unchanged; else wait for ``in_progress`` to
      reach 0 and retry (the vCPU re-entering the guest and faulting again);
    - release: zap everything; later faults fail.

    Because the count is raised by every start and lowered only by an end, KVM is the
    subscriber that hangs when the notifier core sends a start without its end: the
    2018-2021 rule for a refused non-blockable range (`AddressSpace.nonblock_failure_rule`).

Concurrency
    ``mmu_lock`` guards ``in_progress``, ``seq`` and the sptes.
"""

from __future__ import annotations

from ..check import Checker
from ..mm import AddressSpace, Invalidation
from ..sync import Mutex, WaitQueue
from ..tracked import tracked
from .base import Subscriber, check_max_retries

__all__ = ["KvmMmu"]


@tracked
class KvmMmu(Subscriber):
    """One VM's secondary MMU on `mm`.  See the module docstring."""

    def __init__(
        self, mm: AddressSpace, checker: Checker, table: str = "kvm", *, max_retries: int = 12
    ) -> None:
        super().__init__(mm, checker, table)
        self.max_retries = check_max_retries(max_retries)
        self.mmu_lock = Mutex(f"{table}.mmu_lock", spins=True)  # a spinlock
        self.in_progress = 0
        self.seq = 0
        self._idle = WaitQueue(f"{table} mmu_invalidate_in_progress == 0")

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        async with self.mmu_lock:
            self.in_progress += 1
            self.zap(inv.range)

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        async with self.mmu_lock:
            self.seq += 1
            self.in_progress -= 1
            self.checker.count_changed(self.table, "in_progress", self.in_progress, str(inv.range))
            if self.in_progress <= 0:
                self._idle.wake_all()

    async def release(self) -> None:
        async with self.mmu_lock:
            self.dead = True
            self.zap_all()
        self._idle.wake_all()

    async def fault(self, address: int, *, write: bool = False) -> str:
        """A vCPU fault at `address`: ``"resolved"``, ``"failed"`` (no page, or the mm is
        gone) or ``"starved"`` (past ``max_retries``, recorded as ``starvation``)."""
        return await self.retrying_fault(
            address,
            write,
            lock=self.mmu_lock,
            running=lambda: self.in_progress,
            seq=lambda: self.seq,
            quiet=self._idle,
            max_retries=self.max_retries,
            wait_first=False,
        )
