"""The base of a notifier subscriber that is not ODP: callbacks, failure path, a table.

Contract
    A `Subscriber` is a ``struct mmu_notifier`` with its own secondary page table (a
    translation table the checker watches, named `table`).  Subclasses implement:

    ``invalidate_range_start(inv)``
        drop the translations in ``inv.range`` and raise whatever makes faults retry.
        For a non-blockable range (``inv.blockable`` False) it must not sleep: use the
        trylock variants (``acquire_nowait``...) and, if one fails, *undo what it did*
        and raise `WouldBlock` -- the failure path.  After a refusal it gets no end.
    ``invalidate_range_end(inv)``
        account the end (seq, counts); wake waiting faults.
    ``release()``
        the mm is going away: drop everything, fail later faults.

    and use the helpers: `register` / `unregister` (on the world's mm), `install` and
    `zap` (feed the checker), `access` (a device or guest access through a translation,
    checked like a DMA), `retrying_fault` (the seq-retry fault of KVM and HMM).
    Register an instance with ``await sub.register()``; an object of your own with the
    same three callbacks is registered the same way with
    ``await world.mm.register_notifier(obj)``.

Concurrency
    Callbacks run in the invalidating task, faults in the faulting task; each subclass
    says what its locks guard.

See also
    `odp_async.subscribers.kvm`, `odp_async.subscribers.hmm_mirror`, ``mm/mmu_notifier.c``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from .. import _runtime as rt
from ..addr import PAGE_SHIFT, AddrRange
from ..check import Checker
from ..errors import InvalidArgument
from ..mm import AddressSpace, FaultError, Invalidation, PinnedPage
from ..sync import Mutex, WaitQueue
from ..tracked import TrackedDict, tracked

__all__ = ["Subscriber"]


@tracked
class Subscriber(abc.ABC):
    """A notifier subscriber with its own secondary page table.  See the module docstring."""

    def __init__(self, mm: AddressSpace, checker: Checker, table: str) -> None:
        if not isinstance(table, str) or not table:
            raise InvalidArgument(f"a subscriber needs a non-empty table name, got {table!r}")
        self.mm = mm
        self.checker = checker
        self.table = table
        #: vpn -> (frame id, writable): what this subscriber translates now.
        self.translations: TrackedDict[int, tuple[tuple[int, int], bool]] = TrackedDict()
        self.dead = False

    # --- the three callbacks ------------------------------------------------------------

    @abc.abstractmethod
    async def invalidate_range_start(self, inv: Invalidation) -> None: ...

    @abc.abstractmethod
    async def invalidate_range_end(self, inv: Invalidation) -> None: ...

    @abc.abstractmethod
    async def release(self) -> None: ...

    # --- helpers --------------------------------------------------------------------------

    async def register(self) -> None:
        """``mmu_notifier_register`` on `mm` (see `AddressSpace.register_notifier`).

        Registered again after `unregister` (whose ``release`` marked it `dead`), it is
        live again: that release ended the previous registration, not this one."""
        if not (self.mm.is_dead or self.mm.releasing):
            self.dead = False
        await self.mm.register_notifier(self)

    async def unregister(self) -> None:
        """``mmu_notifier_unregister`` (waits for running callbacks)."""
        await self.mm.unregister_notifier(self)

    async def update_device(self, rng: AddrRange, pages: list[PinnedPage]) -> None:
        """Map `pages` in the secondary table after the commit's check, under the commit's
        lock: a labelled choice point, ``(table, "fault", start, "update")``, then
        `install`.  The write is not atomic with the check in the kernel (KVM:
        arch/x86/kvm/mmu/tdp_mmu.c ``kvm_tdp_mmu_map`` writes the sptes with ``mmu_lock``
        held for read, other CPUs running; a device mirror posts its page-table update
        and waits for it): a party taking the lock is blocked there, one that does not
        runs there.  Blocks: only at that choice point."""
        await rt.checkpoint((self.table, "fault", rng.start, "update"))
        self.install(pages)

    def install(self, pages: list[PinnedPage]) -> None:
        """Map `pages` in the secondary table.  Sync; under the subclass's commit lock.

        Atomic with what the caller did before it under that lock (no choice point): the
        model then assumes every party that zaps the table or moves the seq holds that
        lock.  `update_device` draws the write's window; `retrying_fault` uses it."""
        for page in pages:
            self.translations[page.vpn] = (page.frame_id, page.writable)
            self.checker.translation_installed(self.table, page.vpn, page.frame_id, page.writable)

    def zap(self, rng: AddrRange) -> None:
        """Drop the translations inside `rng`.  Sync."""
        inside = range(rng.first_vpn, rng.first_vpn + rng.npages)
        for vpn in [v for v in self.translations if v in inside]:
            del self.translations[vpn]
            self.checker.translation_removed(self.table, vpn)

    def zap_all(self) -> None:
        for vpn in list(self.translations):
            del self.translations[vpn]
            self.checker.translation_removed(self.table, vpn)

    def access(self, address: int, *, write: bool = False) -> bool:
        """A guest/device access at `address` through the secondary table (checked like a
        DMA).  Returns whether a translation was there.  Sync."""
        vpn = address >> PAGE_SHIFT
        self.checker.dma(self.table, vpn, write)
        return vpn in self.translations

    async def retrying_fault(
        self,
        address: int,
        write: bool,
        *,
        lock: Mutex,
        running: Callable[[], int],
        seq: Callable[[], int],
        quiet: WaitQueue,
        max_retries: int,
        wait_first: bool,
    ) -> str:
        """A fault at `address` that retries while invalidations run: ``"resolved"``,
        ``"failed"`` (no page, or `dead`) or ``"starved"`` (past `max_retries`, recorded
        as starvation on `table`).

        Each try reads `seq()`, gets the page (gup), then under `lock` installs it
        (`update_device`) only if ``running() == 0`` and `seq()` is unchanged.  Before each try
        (`wait_first`, HMM's ``hmm_range_wait_until_valid``) or after each failed one
        (KVM's vCPU faulting again) it parks on `quiet` while ``running() > 0`` and the
        subscriber is not `dead`.  Blocks on `lock`, the gup and `quiet`.
        """
        rng = AddrRange.pages(address >> PAGE_SHIFT, 1)
        for _ in range(max_retries):
            if wait_first:
                await self._wait_quiet(running, quiet)
            if self.dead:
                return "failed"
            seen = seq()
            await rt.checkpoint((self.table, "fault", rng.start))
            try:
                pages = await self.mm.get_user_pages(rng, write=write)
            except FaultError:
                return "failed"
            try:
                async with lock:
                    if self.dead:
                        return "failed"
                    if running() == 0 and seq() == seen:
                        await self.update_device(rng, pages)
                        return "resolved"
            finally:
                self.mm.put_pages(pages)
            if not wait_first:
                await self._wait_quiet(running, quiet)
        # Every refusal after the first is a new invalidation's: each try reads `seq()` after
        # `running()` was seen at 0 (the wait, before this try or after the previous
        # one), so its commit is refused only by a start or end that came after that
        # read; a chooser keeping a task off the CPU cannot add one (see "Liveness" in
        # odp_async.odp.ucontext).
        self.checker.starved(self.table, f"{rng} retried {max_retries} times")
        return "starved"

    async def _wait_quiet(self, running: Callable[[], int], quiet: WaitQueue) -> None:
        while running() > 0 and not self.dead:
            await quiet.park()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.table}>"


def check_max_retries(max_retries: object) -> int:
    """`max_retries` if it is a positive int; else `InvalidArgument`."""
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 1:
        raise InvalidArgument(f"max_retries must be a positive int, got {max_retries!r}")
    return max_retries
