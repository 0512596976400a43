"""Implicit ODP: one MR over the whole address space, its children made on fault.

Contract
    Modelled on mlx5's implicit ODP MR (``drivers/infiniband/hw/mlx5/odp.c``, Linux v6.6;
    the design settled by the 2019-2020 rework of its creation and destruction races).
    An `ImplicitMr` covers every address; the device reaches memory through a parent
    table (the KSM, `ksm`: child index -> child) whose entries point at *children*, one
    per ``child_pages``-page chunk, each with its own translations, lock and
    interval-notifier state (the child umems):

    - `ImplicitMr.fault` (the faulting task): look the MR up (refused once
      `deregister` began), take a reference on it (``mmkey.usecount``), find the child
      of each chunk in `children` (the ``implicit_children`` xarray) or create it --
      allocation sleeps, then a compare-and-exchange inserts it, and a task that lost
      the race frees its own child and uses the winner's -- take a reference on the
      child, fault it (interval-seq retry), drop both references;
    - an invalidation that leaves a child with no translation detaches it (``
      destroy_unused_implicit_child_mr``): unless the parent's usecount is already 0, it
      takes a parent reference, removes the child from `children` and queues a work item
      (on the world's `Workqueue`) that drops the child's base reference, waits until its
      usecount is 0 (faults still on it), points the KSM entry at whatever `children`
      holds now, removes the child's notifier (waiting for the running invalidation),
      frees the child and drops the parent reference;
    - `ImplicitMr.deregister`: unpublish the MR, drop its own reference and wait until
      the usecount is 0 (faults and queued child-free work), then destroy every child
      still in `children`, unregister, free the MR.

    Historical mistakes, as options (all False: today's kernel):

    ``free_in_invalidate``
        the invalidation frees an emptied child itself, at once, instead of deferring
        it to work that waits for the child's users: a fault still holding the child
        touches freed memory (``use-after-free``).
    ``no_usecount_wait``
        `deregister` drops its reference without waiting for the usecount (the queued
        child-free work, the faults in flight) to drain (``use-after-free`` of the MR):
        the family of the race between the MR's free and a concurrent
        ``destroy_unused_implicit_child_mr`` fixed in v5.6 ("IB/mlx5: Fix implicit ODP
        race", 2020), where deferred child-free work outlived the MR.
    ``plain_store``
        a new child is stored into `children` unconditionally instead of by
        compare-and-exchange: two faults racing on one chunk both insert, the first
        child is overwritten, never destroyed with the MR, and its still-registered
        notifier later reaches the freed parent (``use-after-free``).

    Objects the checker tracks: the MR as ``implicit MR <name>``, each child as
    ``<name> child <index>#<serial>`` (a serial per creation), each child's
    translations as table ``<name>/<index>#<serial>``.

Concurrency
    ``children`` and the usecounts are changed only by sync code (the xarray lock is a
    spinlock: a section with no checkpoint).  Each child's ``umem_mutex`` guards its
    seq and translations.  Allocation of a child, the notifier's removal and the MR's
    teardown block (checkpoints), as they sleep in the kernel.  A non-blockable
    invalidation is refused (`WouldBlock`), as mlx5 refuses it.

See also
    `odp_async.workqueue`, `odp_async.mm.AddressSpace.register_notifier`,
    ``tests/model/test_implicit_odp.py``.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable
from typing import Any, ClassVar

from .. import _runtime as rt
from ..addr import PAGE_SHIFT, PAGE_SIZE, AddrRange
from ..check import Checker
from ..device import FaultOutcome, TranslationTable
from ..errors import InvalidArgument, WouldBlock
from ..mm import AddressSpace, FaultError, Invalidation
from ..sync import Mutex, WaitQueue
from ..tracked import TrackedDict, tracked
from ..workqueue import WorkItem, Workqueue

__all__ = ["ImplicitChild", "ImplicitMr"]

#: The address space an implicit MR covers (48-bit user addresses).
_TOP = 1 << 47


@tracked
class ImplicitChild:
    """One child MR of an implicit MR: a ``child_pages`` chunk of the address space."""

    __slots__ = (
        "__weakref__",
        "_parent",
        "index",
        "key",
        "mutex",
        "range",
        "seq",
        "table",
        "usecount",
        "work",
    )

    def __init__(self, parent: ImplicitMr, index: int, serial: int) -> None:
        span = parent.child_pages << PAGE_SHIFT
        # Weak: the parent holds its children (no reference cycle).
        self._parent = weakref.ref(parent)
        self.index = index
        self.range = AddrRange(index * span, (index + 1) * span)
        self.key = f"{parent.name} child {index}#{serial}"
        self.table = TranslationTable(
            f"{parent.name}/{index}#{serial}", self.range, parent.checker
        )
        self.mutex = Mutex(f"{parent.name}/{index}#{serial}.umem_mutex")
        #: The interval notifier's seq: bumped by every invalidation that reaches it.
        self.seq = 0
        #: ``mmkey.usecount``: the base reference, plus one per fault using it.
        self.usecount = 1
        self.work: WorkItem | None = None

    @property
    def parent(self) -> ImplicitMr | None:
        """The implicit MR this child belongs to (None once that object is gone)."""
        return self._parent()

    def __repr__(self) -> str:
        return f"<ImplicitChild {self.key} {self.range} use={self.usecount}>"


@tracked
class ImplicitMr:
    """An implicit ODP MR on `mm`.  See the module docstring.

    Raises `InvalidArgument` for a bad name, ``child_pages`` or option.
    """

    OPTIONS: ClassVar[dict[str, bool]] = {
        "free_in_invalidate": False,
        "no_usecount_wait": False,
        "plain_store": False,
    }
    #: Its callbacks stand for the children's interval notifiers (the mm's itree): an
    #: invalidation it started ends here even after the release walk unhashed it.
    INTERVAL_NOTIFIER: ClassVar[bool] = True

    def __init__(
        self,
        mm: AddressSpace,
        checker: Checker,
        workqueue: Workqueue,
        name: str = "imr",
        *,
        child_pages: int = 4,
        max_retries: int = 12,
        **options: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"an implicit MR needs a non-empty name, got {name!r}")
        for what, value in (("child_pages", child_pages), ("max_retries", max_retries)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgument(f"{what} must be a positive int, got {value!r}")
        for key, value in options.items():
            if key not in self.OPTIONS:
                known = ", ".join(self.OPTIONS)
                raise InvalidArgument(f"implicit MR has no option {key!r} (its options: {known})")
            if not isinstance(value, bool):
                raise InvalidArgument(f"implicit MR option {key!r} must be a bool, got {value!r}")
        self.free_in_invalidate = bool(options.get("free_in_invalidate", False))
        self.no_usecount_wait = bool(options.get("no_usecount_wait", False))
        self.plain_store = bool(options.get("plain_store", False))
        self.mm = mm
        self.checker = checker
        self.workqueue = workqueue
        self.name = name
        self.key = f"implicit MR {name}"
        self.child_pages = child_pages
        self.max_retries = max_retries
        #: The ``implicit_children`` xarray: chunk index -> child.
        self.children: TrackedDict[int, ImplicitChild] = TrackedDict()
        #: The parent's table on the device (the KSM): chunk index -> child it points at.
        self.ksm: TrackedDict[int, ImplicitChild] = TrackedDict()
        #: Children whose interval notifier is inserted (what invalidations reach).
        self.notified: TrackedDict[ImplicitChild, None] = TrackedDict()
        #: ``mmkey.usecount`` of the MR: its own reference while published, plus one per
        #: fault in flight and per queued child-free work.
        self.usecount = 0
        #: Published (in ``odp_mkeys``): faults can find it.
        self.live = False
        self.dead = False  # the mm's release ran
        self._serial = 0
        self._active = 0  # invalidations between start and end
        self._quiescences = 0  # times `_active` dropped to 0
        self._quiet = WaitQueue(f"{name} no invalidation running")
        self._drained = WaitQueue(f"{name} usecount == 0")
        self._child_drained = WaitQueue(f"{name} child usecount == 0")
        self._registered = False
        self._subscribed = False
        self._removing = 0  # notifier removals waiting for an invalidation to end
        # Detached children whose free work is queued or running: held here, as the work's
        # function holds its child weakly (the child holds its work: no reference cycle).
        self._freeing: TrackedDict[ImplicitChild, None] = TrackedDict()

    def __repr__(self) -> str:
        return f"<ImplicitMr {self.name} children={len(self.children)} use={self.usecount}>"

    # --- registration -----------------------------------------------------------------

    async def register(self) -> None:
        """Publish the MR (``mlx5_ib_alloc_implicit_mr``) and subscribe to the mm.
        Blocks on `AddressSpace.register_notifier`.  Raises `InvalidArgument` if it was
        registered before."""
        if self._registered:
            raise InvalidArgument(f"implicit MR {self.name} is already registered")
        self._registered = True
        await self.mm.register_notifier(self)
        self._subscribed = True
        self.usecount = 1
        self.live = True
        self.checker.event("register-end", self.name, f"implicit MR {self.name} registered")

    async def deregister(self) -> None:
        """Destroy the MR and every child (see the module docstring).  Blocks until the
        usecount drained (unless ``no_usecount_wait``), on each child's notifier removal
        and on the unregister.  Raises `InvalidArgument` unless it is registered."""
        if not self.live:
            raise InvalidArgument(f"deregister of implicit MR {self.name}: it is not registered")
        self.live = False  # xa_erase(odp_mkeys): no new fault finds it
        self.checker.event("deregister-begin", self.name, f"deregister implicit MR {self.name}")
        await rt.checkpoint(("deregister implicit", self.name))
        self._deref()  # its own reference
        if not self.no_usecount_wait:
            while self.usecount:
                await self._drained.park()
        self.checker.used(self.key, "deregister")
        doomed = list(self.children.values())
        self.children.clear()
        self.ksm.clear()  # the MR is fenced: its table needs no update per child
        for child in doomed:
            await self._destroy_child(child, "destroyed with its implicit MR")
        await self._maybe_unsubscribe()
        self.checker.freed(self.key, "deregistered")
        self.checker.event("deregister-end", self.name, f"implicit MR {self.name} destroyed")

    # --- the fault path ---------------------------------------------------------------

    async def fault(self, address: int, *, npages: int = 1, write: bool = False) -> FaultOutcome:
        """A device page fault on `npages` pages from `address` (``pagefault_implicit_mr``),
        in the calling task.  Returns how it ended; ``starved`` past ``max_retries``
        (recorded as ``starvation``).  Blocks on child allocation, gup, the child locks.
        Raises `InvalidArgument` for a bad count or a range past the address space."""
        if not isinstance(npages, int) or isinstance(npages, bool) or npages < 1:
            raise InvalidArgument(f"npages must be a positive int, got {npages!r}")
        if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address < _TOP:
            raise InvalidArgument(f"fault address must be in [0, {_TOP:#x}), got {address!r}")
        base = address & ~(PAGE_SIZE - 1)
        rng = AddrRange(base, min(base + (npages << PAGE_SHIFT), _TOP))
        await rt.checkpoint(("fault", self.name, rng.start))
        if not self.live:  # not found in odp_mkeys
            return FaultOutcome.FAILED
        self.checker.used(self.key, "a fault")
        self.usecount += 1
        try:
            span = self.child_pages << PAGE_SHIFT
            for index in range(rng.start // span, (rng.end - 1) // span + 1):
                child = self.children.get(index)
                if child is None:
                    child = await self._get_child(index)
                else:
                    child.usecount += 1
                try:
                    part = child.range.intersection(rng)
                    assert part is not None
                    outcome = await self._fault_child(child, part, write)
                finally:
                    self._deref_child(child)
                if outcome is not FaultOutcome.RESOLVED:
                    return outcome
            return FaultOutcome.RESOLVED
        finally:
            self._deref()

    async def dma(self, address: int, *, write: bool = False) -> str:
        """One device access at `address` through the KSM and a child: ``"ok"``, or
        ``"error: ..."`` when the page fault it raises fails.  Checkpoint: always."""
        if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address < _TOP:
            raise InvalidArgument(f"DMA address must be in [0, {_TOP:#x}), got {address!r}")
        vpn = address >> PAGE_SHIFT
        for _ in range(4):
            await rt.checkpoint(("dma", self.name, vpn))
            child = self.ksm.get(vpn // self.child_pages)
            t = None if child is None else child.table.get(vpn)
            if child is not None and t is not None and (t.writable or not write):
                self.checker.used(child.key, "a DMA")
                self.checker.dma(child.table.name, vpn, write)
                return "ok"
            outcome = await self.fault(address, write=write)
            if outcome is not FaultOutcome.RESOLVED:
                return f"error: page fault {outcome.value}"
        return "error: still faulting after retries"

    async def _get_child(self, index: int) -> ImplicitChild:
        """``implicit_get_child_mr``: returns a child of `index` with a reference for the
        caller (the new one, or the one a racing fault inserted first)."""
        self._serial += 1
        child = ImplicitChild(self, index, self._serial)
        child.usecount = 2  # the xarray's and the caller's
        # ib_umem_odp_alloc_child inserts its interval notifier; the mkey allocation sleeps
        self.notified[child] = None
        await rt.checkpoint(("alloc child", self.name, index))
        self.checker.used(self.key, "a child's creation")
        old = self.children.get(index)
        if old is not None and not self.plain_store:
            old.usecount += 1  # use theirs, free ours
            await self._destroy_child(child, "lost the race to create it")
            return old
        self.children[index] = child  # (plain_store: overwrites `old`, which leaks)
        self.checker.event("child-created", child.key, f"{child.key} created {child.range}")
        self._update_ksm(index)
        return child

    async def _fault_child(
        self, child: ImplicitChild, rng: AddrRange, write: bool
    ) -> FaultOutcome:
        # ib_umem_odp_map_dma_and_lock: read_begin, hmm_range_fault, read_retry under the
        # umem_mutex, install
        for attempt in range(self.max_retries):
            # No lock held: the child was looked up and referenced (xa_load, then
            # refcount), or umem_mutex dropped after mmu_interval_read_retry said retry,
            # and mmu_interval_read_begin comes next (mlx5 odp.c pagefault_real_mr ->
            # umem_odp.c ib_umem_odp_map_dma_and_lock).  After gup, the umem_mutex acquire
            # below is the choice point for the window before the read_retry.
            await rt.checkpoint(("fault", child.key, rng.start, "retry" if attempt else "begin"))
            self.checker.used(child.key, "a fault")
            while self._active and not self.dead:  # mmu_interval_read_begin
                await self._quiet.park()
            if self.dead:
                return FaultOutcome.FAILED
            seen = child.seq
            try:
                pages = await self.mm.get_user_pages(rng, write=write)
            except FaultError:
                return FaultOutcome.FAILED
            try:
                async with child.mutex:
                    self.checker.used(child.key, "a fault's commit")
                    if self.dead:
                        return FaultOutcome.FAILED
                    if child.seq == seen:  # not mmu_interval_read_retry
                        # mlx5r_umr_update_xlt sleeps for the UMR, umem_mutex held
                        await rt.checkpoint(("fault", child.key, rng.start, "update"))
                        for page in pages:
                            child.table.install(page.vpn, page.frame_id, page.writable)
                        return FaultOutcome.RESOLVED
            finally:
                self.mm.put_pages(pages)
        # Every refusal counted here is a new invalidation's: an attempt reads the seq only
        # once no invalidation is active (the wait above), so its commit is refused only by
        # a start that came after that read; a chooser keeping a task off the CPU cannot
        # add one (see "Liveness" in odp_async.odp.ucontext).
        self.checker.starved(child.table.name, f"{rng} retried {self.max_retries} times")
        return FaultOutcome.STARVED

    # --- the notifier callbacks ---------------------------------------------------------

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        """``mlx5_ib_invalidate_range`` on every child the range reaches: bump its seq,
        zap, and detach it if it is left empty.  Refuses a non-blockable range."""
        if not inv.blockable:
            raise WouldBlock(f"implicit MR {self.name} takes umem_mutex (it sleeps)")
        self._active += 1
        for child in [c for c in self.notified if c.range.overlaps(inv.range)]:
            async with child.mutex:
                self.checker.used(child.key, "an invalidation")
                child.seq += 1
                inside = child.range.intersection(inv.range)
                assert inside is not None
                child.table.zap(inside)
                if not len(child.table):
                    self._destroy_unused(child)

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self._active -= 1
        if self._active == 0:
            self._quiescences += 1
            self._quiet.wake_all()

    async def release(self) -> None:
        """The mm is going away: zap every child; later faults fail.  Counts as a running
        invalidation (``mn_itree_release`` opens the itree's invalidation, so a
        ``mmu_interval_notifier_remove`` meanwhile waits for it): a child destroyed while
        this walk waits at another child's lock is not freed under it.  Each child is
        checked once its lock is granted (the walk's list was taken before)."""
        self.dead = True
        self._active += 1
        for child in list(self.notified):
            async with child.mutex:
                self.checker.used(child.key, "the release walk")
                child.table.zap_all()
        self._active -= 1
        if self._active == 0:
            self._quiescences += 1
        self._quiet.wake_all()

    # --- child destruction ----------------------------------------------------------------

    def _destroy_unused(self, child: ImplicitChild) -> None:
        """``destroy_unused_implicit_child_mr``: called with `child`'s umem_mutex held."""
        self.checker.used(self.key, "destroy_unused_implicit_child_mr")
        if self.usecount == 0:
            return  # the MR is being destroyed: it frees what `children` holds
        if self.children.get(child.index) is not child:
            return  # detached already (or never inserted)
        del self.children[child.index]
        if self.free_in_invalidate:
            # the mistake: free it right here, whoever still uses it
            self.notified.pop(child, None)
            self._update_ksm(child.index)
            child.table.zap_all()
            self.checker.freed(child.key, "freed by the invalidation that emptied it")
            return
        self.usecount += 1  # the work's reference on the MR
        self._freeing[child] = None
        ref = weakref.ref(child)

        def free() -> Awaitable[None]:
            held = ref()
            assert held is not None  # in `_freeing` until its work ends
            return self._free_child_work(held)

        child.work = WorkItem(f"free {child.key}", free)
        self.workqueue.queue_work(child.work)

    async def _free_child_work(self, child: ImplicitChild) -> None:
        """``free_implicit_child_mr_work``."""
        try:
            child.usecount -= 1  # the base reference
            if child.usecount:
                self._child_drained.wake_all()
            while child.usecount:  # mlx5r_deref_wait_odp_mkey
                await self._child_drained.park()
            self.checker.used(self.key, "the child-free work's KSM update")
            self._update_ksm(child.index)
            await self._destroy_child(child, "freed by its work item")
            self._deref()
        finally:
            self._freeing.pop(child, None)

    async def _destroy_child(self, child: ImplicitChild, why: str) -> None:
        """Revoke `child` (zap its translations: the device stops using it), remove its
        notifier (waiting for a running invalidation to end), free it."""
        await rt.checkpoint(("destroy child", child.key))
        async with child.mutex:
            self.checker.used(child.key, "its destruction")
            child.table.zap_all()
        self.notified.pop(child, None)
        if self._active:  # mmu_interval_notifier_remove
            self._removing += 1
            seen = self._quiescences
            while self._quiescences == seen:
                await self._quiet.park()
            self._removing -= 1
        self.checker.freed(child.key, why)
        await self._maybe_unsubscribe()

    async def _maybe_unsubscribe(self) -> None:
        """Leave the mm once the MR is gone and no child's notifier is left (a leaked
        child keeps it, as its own interval notifier would)."""
        if self._subscribed and not self.live and not self.notified and not self._removing:
            self._subscribed = False
            await self.mm.unregister_notifier(self)

    def _update_ksm(self, index: int) -> None:
        """``mlx5r_umr_update_xlt`` of the parent for one entry: point it at whatever the
        xarray holds now.  Sync."""
        child = self.children.get(index)
        if child is None:
            self.ksm.pop(index, None)
        else:
            self.ksm[index] = child

    def _deref(self) -> None:
        self.usecount -= 1
        if self.usecount <= 0:
            self._drained.wake_all()

    def _deref_child(self, child: ImplicitChild) -> None:
        child.usecount -= 1
        if child.usecount <= 0:
            self._child_drained.wake_all()
