"""The address space of one process: VMAs, a page table, frames, mmap_sem, the notifier chain.

Contract
    `AddressSpace` models the part of Linux's ``mm_struct`` that ODP races against, with
    the kernel's locking:

    ========================  ===============  ==========================================
    operation                 mm lock          invalidation (event)
    ========================  ===============  ==========================================
    `mmap`                    mmap_sem write   none
    `munmap`                  mmap_sem write   UNMAP; a hugetlb file's i_mmap lock inside
    `mremap`                  mmap_sem write   UNMAP of the old range
    `madvise_dontneed`        mmap_sem read    DONTNEED
    `mprotect` (downgrade)    mmap_sem write   PROTECTION
    `migrate`                 anon_vma lock    MIGRATE (fails while the page has users)
    `File.truncate`           file i_mmap      TRUNCATE (no mmap_sem)
    `cpu_fault`               mmap_sem read    none (populates)
    `get_user_pages`          mmap_sem read    none (populates; takes page references)
    `exit`                    none             ``release`` to every subscriber, then teardown
    `reap`                    mmap_sem read    UNMAP, non-blockable (the OOM reaper); may
                              (trylock)        be refused: returns False
    ========================  ===============  ==========================================

    Every change that removes or downgrades a mapping is bracketed by
    ``invalidate_range_start(inv)`` ... ``invalidate_range_end(inv)`` sent to every
    subscriber, in the invalidating task.  A frame is freed (its last reference dropped) or
    replaced only after every start callback returned.  Between start and the page-table
    change, and between that change and end, the invalidating task passes a checkpoint:
    those are the windows the races of the 2014 thread live in.

    Subscribers may register or unregister at any time.  `register_notifier` takes
    mmap_sem for write and every i_mmap and anon_vma lock (``mm_take_all_locks``), so it
    never straddles an invalidation; `unregister_notifier` runs the subscriber's
    ``release`` if the mm is alive, unhashes it, then waits until none of its callbacks is
    running (``synchronize_srcu``): an invalidation already started may then never deliver
    its end to it, unless it stands for interval notifiers (see `Subscription`).

    The notifier core's historical variants are options of the mm, today's kernel by
    default: `nonblock_failure_rule`, `release_order`, `interval_remove_wait` (read by
    the interval path, protocol ``interval-seq``) and `notifier_teardown` (what
    `teardown_notifier` does: unregister and wait, put and free deferred, or unhash
    and free at once).

    The mm also keeps the list of active invalidation ranges of the 2014 patch "keep track
    of active invalidation ranges" (`range_is_valid`, `range_wait_valid`).  By default a
    range is listed *before* the start callbacks run; ``range_list_after_callbacks=True``
    lists it after them, as the patch was posted.

Concurrency
    ``mmap_sem`` guards the VMAs and the page table against other mmap_sem users;
    invalidations that take no mmap_sem (truncate, migration) hold their own lock.
    Frame reference counts change only in sync code.

See also
    DESIGN section 1; ``mm/mmu_notifier.c``; `odp_async.check` (what the frees feed).
"""

from __future__ import annotations

import enum
import heapq
import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs

from . import _runtime as rt
from .addr import PAGE_SHIFT, AddrRange
from .check import Checker, FrameId, PteView
from .errors import InvalidArgument, OdpError, ProtocolViolation, WouldBlock
from .intervals import IntervalTree
from .sync import Mutex, RWLock, WaitQueue, no_sleep
from .tracked import TrackedDict, TrackedList, TrackedRanges, TrackedSet, tracked, tracking
from .workqueue import WorkItem, Workqueue

__all__ = [
    "AddressSpace",
    "HPAGE_PAGES",
    "FaultError",
    "File",
    "Frame",
    "InvalidateEvent",
    "Invalidation",
    "PhysicalMemory",
    "PinnedPage",
    "Pte",
    "Subscription",
    "Vma",
    "stands_for_interval_notifiers",
    "subscription_problem",
]


class FaultError(OdpError):
    """A page could not be provided (EFAULT/SIGBUS): no VMA, no permission, beyond EOF,
    or the mm is gone."""


class InvalidateEvent(enum.Enum):
    """Why an invalidation runs (``enum mmu_notifier_event``)."""

    UNMAP = "unmap"
    DONTNEED = "madvise-dontneed"
    PROTECTION = "protection"
    MIGRATE = "migrate"
    TRUNCATE = "truncate"
    RELEASE = "release"
    CLEAR = "clear"  # a transparent huge page split (MMU_NOTIFY_CLEAR)


@attrs.frozen
class Invalidation:
    """One ``struct mmu_notifier_range``: an id (unique per mm), the range, the event,
    and whether the callbacks may sleep (``mmu_notifier_range_blockable``).  A start
    callback of a non-blockable range that would have to sleep refuses it by raising
    `odp_async.errors.WouldBlock` (the kernel's ``-EAGAIN``).  `task`: the task running
    it (`odp_async._runtime.current_task`; None for one built by hand), which watches its
    progress (`odp_async._runtime.watch_progress`) from the start to the last end
    callback's return; not part of equality."""

    id: int
    range: AddrRange
    event: InvalidateEvent
    blockable: bool = True
    task: object = attrs.field(default=None, eq=False, repr=False)

    def __str__(self) -> str:
        return f"inv{self.id} {self.event.value} {self.range}"


@tracked
class Frame:
    """A physical frame.  ``(pfn, gen)`` names one use of it: `gen` grows at every reuse.

    Invariant: ``refcount > 0`` while allocated (`free` False); a free frame has refcount
    0 and `free` True.
    """

    __slots__ = ("free", "gen", "pfn", "refcount")

    def __init__(self, pfn: int) -> None:
        self.pfn = pfn
        self.gen = 0
        self.refcount = 0
        self.free = False

    @property
    def id(self) -> FrameId:
        return (self.pfn, self.gen)

    def __repr__(self) -> str:
        return f"<Frame {self.pfn}.{self.gen} refs={self.refcount}>"


class _FreeHint:
    """The numbers of frames freed since they were last taken (and some taken since), as
    a heap: `PhysicalMemory`'s index of its frames' noted `free` flags."""

    __slots__ = ("heap",)

    def __init__(self) -> None:
        self.heap: list[int] = []


@tracked(
    exempt={
        "_free_hint": "an index of the noted `free` flags (a superset of the free frames' "
        "numbers, lowest first); read only in runs that keep no footprints",
    },
    internal=(_FreeHint,),
)
class PhysicalMemory:
    """Frames, reference counted.  A freed frame is reused soon, so a stale translation
    soon points into someone else's data, as it would on a real machine: `alloc` takes
    the free frame with the lowest number.

    Which frame that is depends on which frames are free, not on the order they were
    freed in, so two frees (of different frames) commute, and an alloc conflicts only
    with the frees and allocs of the frames it looked at (those numbered up to the one
    it takes): each frame's `free` flag is its own field, and frames are kept by number
    in a tracked dict (noted per key).  (A last-freed-first list made every free and
    alloc of a run conflict, and DPOR explore every order of them.)

    Cost: in a run that keeps footprints, `alloc` looks at (and notes) every frame up to
    the one it takes; in every other run it takes the lowest number off `_free_hint` (a
    heap of the numbers of frames freed since, some stale: each is checked against its
    `free` flag), so populating N pages costs O(N log N), not O(N^2).
    """

    __slots__ = ("_checker", "_frames", "_free_hint")

    def __init__(self, checker: Checker) -> None:
        self._checker = checker
        self._frames: TrackedDict[int, Frame] = TrackedDict()
        self._free_hint = _FreeHint()

    def alloc(self) -> Frame:
        if tracking():
            frame = next((f for f in self._frames.values() if f.free), None) or self._new()
        else:
            frame = self._lowest_free() or self._new()
        frame.free = False
        frame.gen += 1
        frame.refcount = 1
        return frame

    def _lowest_free(self) -> Frame | None:
        # Not in a run that keeps footprints: nothing here is noted.  Every free frame's
        # number is on the heap (`put` pushes it); a number whose frame was taken since
        # is dropped when it comes up.
        hint = self._free_hint.heap
        while hint:
            frame = self._frames[hint[0]]
            if frame.free:
                return frame
            heapq.heappop(hint)
        return None

    def _new(self) -> Frame:
        frame = Frame(len(self._frames))
        self._frames[frame.pfn] = frame
        return frame

    def get(self, frame: Frame) -> None:
        assert frame.refcount > 0, f"get() of free {frame!r}"
        frame.refcount += 1

    def put(self, frame: Frame, why: str) -> None:
        """Drop a reference; the last one frees the frame (and tells the checker)."""
        assert frame.refcount > 0, f"put() of free {frame!r}"
        frame.refcount -= 1
        if frame.refcount == 0:
            frame.free = True
            heapq.heappush(self._free_hint.heap, frame.pfn)
            self._checker.frame_freed(frame.id, why)

    def is_live(self, frame: FrameId) -> bool:
        pfn, gen = frame
        f = self._frames.get(pfn)
        return f is not None and f.gen == gen and f.refcount > 0

    @property
    def frames_in_use(self) -> int:
        return sum(1 for f in self._frames.values() if not f.free)


@tracked
@attrs.define
class Pte:
    """A page-table entry: a present mapping, or a migration entry (``frame is None``)."""

    frame: Frame | None
    writable: bool
    migrating_from: Frame | None = None


@attrs.frozen
class PinnedPage:
    """A page returned by `AddressSpace.get_user_pages`, holding one frame reference."""

    vpn: int
    frame: Frame
    writable: bool

    @property
    def frame_id(self) -> FrameId:
        return self.frame.id


@tracked
@attrs.define(eq=False)
class File:
    """A file with a page cache, mappable shared.  ``hugetlb`` files are unmapped with
    their i_mmap lock held inside the invalidation (as ``unmap_single_vma`` does)."""

    name: str
    npages: int
    memory: PhysicalMemory
    hugetlb: bool = False
    i_mmap: Mutex = attrs.field(init=False)
    page_cache: TrackedDict[int, Frame] = attrs.field(init=False, factory=TrackedDict)
    mappings: TrackedList[tuple[AddressSpace, Vma]] = attrs.field(init=False, factory=TrackedList)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.npages, int) or isinstance(self.npages, bool) or self.npages < 0:
            raise InvalidArgument(
                f"file size must be a non-negative page count, got {self.npages!r}"
            )
        self.i_mmap = Mutex(f"{self.name}.i_mmap")

    def page(self, pgoff: int) -> Frame:
        """The page cache page at `pgoff`, read in if missing.  Sync."""
        if pgoff >= self.npages:
            raise FaultError(f"{self.name}: page {pgoff} is beyond EOF ({self.npages} pages)")
        frame = self.page_cache.get(pgoff)
        if frame is None:
            frame = self.memory.alloc()
            self.page_cache[pgoff] = frame
        return frame

    async def truncate(self, npages: int) -> None:
        """Shrink the file to `npages` pages (``truncate_pagecache``).

        Pass 1 (i_mmap held): unmap every mapping of the pages beyond the new size, each in
        its own TRUNCATE invalidation.  Pass 2: drop those pages from the page cache.  No
        mmap_sem is taken.  Blocks on the i_mmap lock.  Checkpoint: always.
        """
        if not isinstance(npages, int) or isinstance(npages, bool) or npages < 0:
            raise InvalidArgument(f"truncate() needs a non-negative page count, got {npages!r}")
        if npages >= self.npages:
            self.npages = npages
            await rt.checkpoint(("truncate", self.name))
            return
        self.npages = npages
        async with self.i_mmap:
            for mm, vma in list(self.mappings):
                doomed = vma.pages_from_pgoff(npages)
                if doomed is not None and not mm.is_dead:
                    await mm._invalidate(doomed, InvalidateEvent.TRUNCATE, mm._zap_body(doomed))
        await rt.checkpoint(("truncate", self.name, "page cache"))
        for pgoff in sorted(p for p in self.page_cache if p >= npages):
            self.memory.put(self.page_cache.pop(pgoff), f"truncated from {self.name}")


HPAGE_PAGES = 4
"""Base pages per transparent huge page in the model (the kernel's PMD holds 512)."""


@tracked
@attrs.define(eq=False)
class Vma:
    """A mapping ``range`` of anonymous memory, or of `file` from page `pgoff` (shared).

    `huge_blocks`: the first vpns of the aligned `HPAGE_PAGES` blocks still mapped as
    transparent huge pages (an anonymous ``mmap(..., huge=True)``)."""

    range: AddrRange
    writable: bool
    file: File | None = None
    pgoff: int = 0
    huge_blocks: TrackedSet[int] = attrs.field(factory=TrackedSet)

    def pgoff_of(self, vpn: int) -> int:
        return self.pgoff + vpn - self.range.first_vpn

    def pages_from_pgoff(self, pgoff: int) -> AddrRange | None:
        """The part of this mapping that maps file pages ``>= pgoff``, if any."""
        first = max(self.range.first_vpn, self.range.first_vpn + pgoff - self.pgoff)
        last = self.range.first_vpn + self.range.npages
        return AddrRange.pages(first, last - first) if first < last else None

    def __str__(self) -> str:
        kind = f"{self.file.name}+{self.pgoff}" if self.file else "anon"
        return f"{self.range} {'rw' if self.writable else 'ro'} {kind}"


class Subscription(Protocol):
    """A subscriber of the notifier chain (``struct mmu_notifier``); callbacks run in the
    invalidating task and may block.

    A subscriber that stands for interval notifiers (the mm's itree, ``struct
    mmu_interval_notifier``) sets the class attribute ``INTERVAL_NOTIFIER = True``: every
    invalidation whose start it got then sends it the end too (a refused non-blockable
    one included), even if the release walk or `AddressSpace.unregister_notifier`
    unhashed it in between, as ``mn_itree_inv_end`` ends every invalidation that began
    the itree whatever happened to the hlist; and its unregister (and the deferred free
    of `AddressSpace.put_notifier`) waits for those ends, as
    ``mmu_interval_notifier_remove`` waits for the itree's invalidation to end
    (``mm/mmu_notifier.c``, Linux v6.6).  ``"no-release"`` teardown does not wait: an end
    then reaching it freed is a ``use-after-free``.  A plain subscriber unhashed meanwhile gets no
    end (``hlist_del_init_rcu``), and its unregister waits only for its running
    callbacks."""

    async def invalidate_range_start(self, inv: Invalidation) -> None: ...

    async def invalidate_range_end(self, inv: Invalidation) -> None: ...

    async def release(self) -> None: ...


SUBSCRIPTION_CALLBACKS = ("invalidate_range_start", "invalidate_range_end", "release")


def stands_for_interval_notifiers(sub: object) -> bool:
    """Whether `sub`'s class sets ``INTERVAL_NOTIFIER = True`` (see `Subscription`;
    `subscription_problem` refuses any other value).  Sync."""
    return getattr(type(sub), "INTERVAL_NOTIFIER", False) is True


def subscription_problem(obj: object) -> str | None:
    """What keeps `obj` (a subscriber, or its class) from being a `Subscription`: a
    missing callback, one that is not a coroutine function (``async def``), or an
    ``INTERVAL_NOTIFIER`` that is not True or False on its class; None if it is one.
    Sync."""
    missing = [c for c in SUBSCRIPTION_CALLBACKS if not callable(getattr(obj, c, None))]
    if missing:
        return f"has no {' / '.join(missing)} method"
    cls = obj if isinstance(obj, type) else type(obj)
    flag = getattr(cls, "INTERVAL_NOTIFIER", False)
    if flag is not True and flag is not False:
        return f"has INTERVAL_NOTIFIER = {flag!r} on its class (must be True or False)"
    if not isinstance(obj, type) and "INTERVAL_NOTIFIER" in getattr(obj, "__dict__", {}):
        return "sets INTERVAL_NOTIFIER on the instance (set it on its class)"
    sync = [c for c in SUBSCRIPTION_CALLBACKS if not inspect.iscoroutinefunction(getattr(obj, c))]
    if sync:
        return f"has {' / '.join(sync)} not defined with async def (callbacks are awaited)"
    return None


@tracked
class AddressSpace:
    """One process's mm.  See the module docstring for the operations and their locking."""

    def __init__(
        self,
        memory: PhysicalMemory,
        checker: Checker,
        *,
        range_list_after_callbacks: bool = False,
        workqueue: Workqueue | None = None,
    ) -> None:
        self.memory = memory
        self.checker = checker
        #: Where `mmput_async` sends the teardown (the world's ``system_wq``).
        self.workqueue = workqueue
        #: The name the checker knows this mm by (lifetime checks).
        self.key = "mm"
        self.mm_count = 1
        self._process_ref = True
        # task -> mm_users references it took with mmget / mmget_not_zero
        self._user_refs: TrackedDict[object, int] = TrackedDict()
        #: Set when exit_mmap's release walk begins.
        self.releasing = False
        self._nonblock_rule = "today"
        self._release_order = "today"
        self._interval_remove_wait = "today"
        self._notifier_teardown = "unregister"
        # subscribers freed (`free_subscriber`, `teardown_notifier`) -> their checker keys
        self._torn_down: TrackedDict[int, tuple[Subscription, str]] = TrackedDict()
        self.mmap_sem = RWLock("mmap_sem")
        self.anon_vma = Mutex("anon_vma")
        self.page_table: TrackedDict[int, Pte] = TrackedDict()
        self._vmas: IntervalTree[Vma] = IntervalTree()
        # Invariant: users > 0 until the last mmput, which runs the teardown.
        self.users = 1
        self.is_dead = False
        self._subs: TrackedDict[Subscription, None] = TrackedDict()
        # The tasks inside each subscriber's callbacks right now (SRCU readers).
        self._in_flight: TrackedDict[Subscription, TrackedList[object]] = TrackedDict()
        self._callbacks_done: TrackedDict[Subscription, WaitQueue] = TrackedDict()
        self._any_callback_done = WaitQueue("notifier callbacks (mmu_notifier_synchronize)")
        # Interval notifiers (`INTERVAL_NOTIFIER`) -> the tasks of the invalidations that
        # gave them a start and no end yet (one entry each); `unregister_notifier` waits
        # for none, as mmu_interval_notifier_remove waits for the itree's invalidation.
        self._ends_owed: TrackedDict[Subscription, TrackedList[object]] = TrackedDict()
        self._ends_paid: TrackedDict[Subscription, WaitQueue] = TrackedDict()
        self._next_inv = 0
        # The 2014 "active invalidation ranges" list, and its wait queue.  Noted per page:
        # an invalidation listed on some pages and a fault asking about others commute.
        self.active_ranges: TrackedRanges[Invalidation] = TrackedRanges()
        self._ranges_changed = WaitQueue("active ranges")
        self.range_list_after_callbacks = range_list_after_callbacks
        self._migration_done = WaitQueue("migration entries")

    NONBLOCK_RULES = ("today", "2018")

    @property
    def nonblock_failure_rule(self) -> str:
        """What the notifier core does when a start callback of a non-blockable range
        refuses: ``"today"`` (mm/mmu_notifier.c since March 2021, v5.12-rc3, commit
        c2655835fd8c "ensure range_end() is paired with range_start()": every subscriber
        whose start succeeded gets its end) or ``"2018"`` (v4.19, "distinguish blockable
        mode for mmu notifiers", to v5.11:
        nobody gets an end).  Setting another value raises `InvalidArgument`."""
        return self._nonblock_rule

    @nonblock_failure_rule.setter
    def nonblock_failure_rule(self, rule: str) -> None:
        if rule not in self.NONBLOCK_RULES:
            raise InvalidArgument(
                f"nonblock_failure_rule must be one of {', '.join(self.NONBLOCK_RULES)}, "
                f"got {rule!r}"
            )
        self._nonblock_rule = rule

    RELEASE_ORDERS = ("today", "pre-2013")

    @property
    def release_order(self) -> str:
        """How exit's release walk orders ``->release`` and the unhash (mm/mmu_notifier.c):
        ``"today"`` (since v3.9's "mmu_notifier_unregister NULL Pointer deref and multiple
        ->release() callouts", 2013: ``->release`` runs inside the SRCU read section,
        then the unhash, so `unregister_notifier` waits for it) or ``"pre-2013"`` (unhash
        first, ``->release`` outside SRCU: an unregister racing it returns at once, and
        its caller frees the subscriber under the running release).  Setting another
        value raises `InvalidArgument`."""
        return self._release_order

    @release_order.setter
    def release_order(self, order: str) -> None:
        if order not in self.RELEASE_ORDERS:
            raise InvalidArgument(
                f"release_order must be one of {', '.join(self.RELEASE_ORDERS)}, got {order!r}"
            )
        self._release_order = order

    INTERVAL_REMOVE_WAITS = ("today", "pre-2022")

    @property
    def interval_remove_wait(self) -> str:
        """How ``mmu_interval_notifier_remove`` reads the mm's ``invalidate_seq`` while it
        waits for the invalidation that deferred its removal (the interval path, protocol
        ``interval-seq``): ``"today"`` (under the subscriptions lock, since commit
        319561669a59 "mm/mmu_notifier.c: fix race in mmu_interval_notifier_remove()",
        April 2022, v5.18-rc4) or ``"pre-2022"`` (a bare read, v5.5 to v5.17: it sees the
        seq move before the ending invalidation has unlinked the region, returns, and
        its caller frees a region still on the deferred list).  Setting another value
        raises `InvalidArgument`."""
        return self._interval_remove_wait

    @interval_remove_wait.setter
    def interval_remove_wait(self, variant: str) -> None:
        if variant not in self.INTERVAL_REMOVE_WAITS:
            raise InvalidArgument(
                f"interval_remove_wait must be one of {', '.join(self.INTERVAL_REMOVE_WAITS)}, "
                f"got {variant!r}"
            )
        self._interval_remove_wait = variant

    NOTIFIER_TEARDOWNS = ("unregister", "put", "no-release")

    @property
    def notifier_teardown(self) -> str:
        """How `teardown_notifier` unregisters and frees a subscriber:
        ``"unregister"`` (default: ``mmu_notifier_unregister``, which waits for the
        subscriber's running callbacks, then an immediate free), ``"put"``
        (``mmu_notifier_put``, v5.4: unhash, and free it on the workqueue after an SRCU
        grace period -- the deferred free of ``call_srcu``) or ``"no-release"``
        (``mmu_notifier_unregister_no_release``, 2013, then an immediate free with no
        ``mmu_notifier_synchronize``: a callback still running touches freed memory).
        Setting another value raises `InvalidArgument`."""
        return self._notifier_teardown

    @notifier_teardown.setter
    def notifier_teardown(self, variant: str) -> None:
        if variant not in self.NOTIFIER_TEARDOWNS:
            raise InvalidArgument(
                f"notifier_teardown must be one of {', '.join(self.NOTIFIER_TEARDOWNS)}, "
                f"got {variant!r}"
            )
        self._notifier_teardown = variant

    # --- queries (sync) ---------------------------------------------------------------

    def lookup(self, vpn: int) -> PteView | None:
        """What the page table maps at `vpn`: ``(pfn, gen, writable)``, or None."""
        pte = self.page_table.get(vpn)
        if pte is None or pte.frame is None:
            return None
        return (pte.frame.pfn, pte.frame.gen, pte.writable)

    def find_vma(self, address: int) -> Vma | None:
        hit = self._vmas.first_overlap(address, address)
        return hit.value if hit is not None else None

    @property
    def vmas(self) -> list[Vma]:
        return [h.value for h in self._vmas]

    def is_registered(self, sub: Subscription) -> bool:
        return sub in self._subs

    # --- mapping operations -----------------------------------------------------------

    async def mmap(
        self,
        start: int,
        length: int,
        *,
        writable: bool = True,
        file: File | None = None,
        pgoff: int = 0,
        huge: bool = False,
    ) -> Vma:
        """Map ``[start, start+length)`` (MAP_FIXED, refusing overlaps).  mmap_sem write.

        ``huge=True`` maps anonymous memory with transparent huge pages of `HPAGE_PAGES`
        pages: a zap (madvise DONTNEED, munmap) that cuts one first splits it, in an
        invalidation of the whole huge page nested inside its own (as
        ``__split_huge_pmd`` does inside ``zap_page_range``, mm/huge_memory.c, v6.6).

        Raises `InvalidArgument` for a misaligned or overlapping range, or a file range
        past EOF, or a huge mapping that is file-backed or not huge-page aligned.
        """
        rng = AddrRange.of(start, length)
        self._require_alive("mmap")
        if huge and (file is not None or rng.first_vpn % HPAGE_PAGES or rng.npages % HPAGE_PAGES):
            raise InvalidArgument(
                f"a huge mapping must be anonymous and aligned to {HPAGE_PAGES} pages, "
                f"got {rng}{' of ' + file.name if file is not None else ''}"
            )
        if file is not None and (pgoff < 0 or pgoff + rng.npages > file.npages):
            raise InvalidArgument(
                f"mmap of {file.name} pages [{pgoff}, {pgoff + rng.npages}) is past its "
                f"{file.npages} pages"
            )
        async with self.mmap_sem.write_locked():
            clash = self._vmas.first_overlap(*rng.closed())
            if clash is not None:
                raise InvalidArgument(f"mmap of {rng} overlaps the existing mapping {clash.value}")
            vma = Vma(rng, writable, file, pgoff)
            if huge:
                vma.huge_blocks = TrackedSet(
                    range(rng.first_vpn, rng.first_vpn + rng.npages, HPAGE_PAGES)
                )
            self._vmas.insert(*rng.closed(), vma)
            if file is not None:
                file.mappings.append((self, vma))
            return vma

    async def munmap(self, start: int, length: int) -> None:
        """Unmap ``[start, start+length)``: UNMAP invalidation, frames dropped, VMAs cut.

        Blocks: on mmap_sem (write), and for a hugetlb file on its i_mmap lock, which is
        taken *inside* the invalidation.
        """
        rng = AddrRange.of(start, length)
        self._require_alive("munmap")
        async with self.mmap_sem.write_locked():
            if not self._vmas_overlapping(rng):
                return
            zap = self._zap_body(rng)

            async def body() -> None:
                locks = [
                    v.file.i_mmap for v in self._vmas_overlapping(rng) if v.file and v.file.hugetlb
                ]
                for lock in locks:
                    await lock.acquire()
                try:
                    await self._split_huge_cut_by(rng)
                    await zap()
                finally:
                    for lock in reversed(locks):
                        lock.release()

            await self._invalidate(rng, InvalidateEvent.UNMAP, body)
            self._remove_vmas(rng)

    async def mremap(self, old_start: int, length: int, new_start: int) -> None:
        """Move the mapping at ``[old_start, +length)`` to `new_start` (which must be free).

        One UNMAP invalidation of the old range; the frames move with their ptes.
        """
        old = AddrRange.of(old_start, length)
        new = AddrRange.of(new_start, length)
        self._require_alive("mremap")
        async with self.mmap_sem.write_locked():
            vma = self.find_vma(old.start)
            if vma is None or not vma.range.contains(old):
                raise InvalidArgument(f"mremap source {old} is not inside one mapping")
            if self._vmas.first_overlap(*new.closed()) is not None and not old.contains(new):
                raise InvalidArgument(f"mremap destination {new} overlaps a mapping")

            async def body() -> None:
                moved = {
                    vpn: self.page_table.pop(vpn) for vpn in old.vpns() if vpn in self.page_table
                }
                delta = new.first_vpn - old.first_vpn
                for vpn, pte in moved.items():
                    self.page_table[vpn + delta] = pte

            await self._invalidate(old, InvalidateEvent.UNMAP, body)
            pgoff = vma.pgoff_of(old.first_vpn)
            self._remove_vmas(old, keep_ptes=True)
            moved_vma = Vma(new, vma.writable, vma.file, pgoff)
            self._vmas.insert(*new.closed(), moved_vma)
            if vma.file is not None:
                vma.file.mappings.append((self, moved_vma))

    async def madvise_dontneed(self, start: int, length: int) -> None:
        """``madvise(MADV_DONTNEED)``: zap the range's pages, keep the VMAs.

        Takes mmap_sem for *read*: this is what lets it run beside MR registration.
        """
        rng = AddrRange.of(start, length)
        self._require_alive("madvise")
        async with self.mmap_sem.read_locked():
            if self._vmas_overlapping(rng):
                zap = self._zap_body(rng)

                async def body() -> None:
                    await self._split_huge_cut_by(rng)
                    await zap()

                await self._invalidate(rng, InvalidateEvent.DONTNEED, body)

    async def mprotect(self, start: int, length: int, *, writable: bool) -> None:
        """Change the VMAs' write permission.  Removing it is a PROTECTION invalidation
        that makes the ptes read-only; granting it changes no pte.  mmap_sem write."""
        rng = AddrRange.of(start, length)
        self._require_alive("mprotect")
        async with self.mmap_sem.write_locked():
            vmas = self._vmas_overlapping(rng)
            if not vmas:
                raise InvalidArgument(f"mprotect of {rng}: nothing is mapped there")
            if not writable:

                async def body() -> None:
                    for vpn in rng.vpns():
                        pte = self.page_table.get(vpn)
                        if pte is not None:
                            pte.writable = False

                await self._invalidate(rng, InvalidateEvent.PROTECTION, body)
            for vma in vmas:
                vma.writable = writable

    async def migrate(self, address: int) -> bool:
        """Move the anonymous page at `address` to a new frame (NUMA/compaction).

        Takes no mmap_sem, only the anon_vma lock.  MIGRATE invalidation: the pte becomes
        a migration entry (gup and CPU faults wait on it).  If the page has users beyond
        its mapping (a get_user_pages reference), migration fails and the pte is restored,
        as the kernel's refcount freeze does.  Returns True if the page moved.
        """
        vpn = AddrRange.of(address, 1 << PAGE_SHIFT).first_vpn
        self._require_alive("migrate")
        async with self.anon_vma:
            pte = self.page_table.get(vpn)
            vma = self.find_vma(address)
            if pte is None or pte.frame is None or vma is None or vma.file is not None:
                return False
            old = pte.frame
            rng = AddrRange.pages(vpn, 1)

            async def body() -> None:
                pte.frame = None
                pte.migrating_from = old

            await self._invalidate(rng, InvalidateEvent.MIGRATE, body)
            await rt.checkpoint(("migrate", "copy", vpn))
            if old.refcount > 1:  # pinned by someone: restore the pte, try again later
                pte.frame, pte.migrating_from = old, None
                self._migration_done.wake_all()
                return False
            new = self.memory.alloc()
            pte.frame, pte.migrating_from = new, None
            self.memory.put(old, "migrated away")
            self._migration_done.wake_all()
            return True

    async def reap(self, start: int, length: int) -> bool:
        """Reap ``[start, start+length)`` as the OOM reaper does (``__oom_reap_task_mm``,
        mm/oom_kill.c, v6.6): take mmap_sem for read only if it is free, then, over the
        anonymous mappings in the range, one *non-blockable* UNMAP invalidation.

        Returns False if mmap_sem was busy or a subscriber refused the start (nothing was
        zapped; the reaper tries again later); True once the range is reaped.  Never
        blocks.  Checkpoint: between the start callbacks and the zap, as any invalidation.
        """
        rng = AddrRange.of(start, length)
        self._require_alive("reap")
        try:
            self.mmap_sem.acquire_read_nowait()
        except WouldBlock:
            await rt.checkpoint(("reap", "mmap_sem busy"))
            return False
        try:
            anon = [v.range for v in self._vmas_overlapping(rng) if v.file is None]
            if not anon:
                return True
            first = min(r.start for r in anon)
            last = max(r.end for r in anon)
            span = AddrRange(max(first, rng.start), min(last, rng.end))
            zap = self._zap_body(span)
            with rt.cancel_scope(shield=True), rt.watch_progress():
                reaped = await self._invalidate_nonblock(span, InvalidateEvent.UNMAP, zap)
            return reaped
        finally:
            self.mmap_sem.release_read()

    async def cpu_fault(self, address: int, *, write: bool = False) -> None:
        """A CPU access fault: populate the page (mmap_sem read).  Raises `FaultError`."""
        vpn = address >> PAGE_SHIFT
        self._require_alive("cpu fault")
        async with self.mmap_sem.read_locked():
            await self._populate(vpn, write)

    # --- the gup side and the mm's lifetime (kernel/fork.c, Linux v6.6) -----------------
    #
    # ``mm_users`` counts the users of the address space (the process, gup, a driver that
    # took a reference with mmget); ``mm_count`` the references to the struct itself, all
    # of ``mm_users`` together holding one.  The last mmput runs __mmput -- exit_mmap,
    # whose first act is the notifier release walk -- in the task that drops it, then
    # mmdrop; mmput_async hands __mmput to the workqueue instead.  The last mmdrop frees
    # the mm: any later touch is a ``use-after-free``.

    @property
    def mm_users(self) -> int:
        return self.users

    def holds_user_ref(self) -> bool:
        """Whether the calling task may use the mm: the process has not exited, or the
        task took an ``mm_users`` reference of its own.  Sync."""
        if self._process_ref:
            return True
        try:
            task = rt.current_task()
        except OdpError:
            return False
        return self._user_refs.get(task, 0) > 0

    def mmget(self) -> None:
        """``mmget``: take an ``mm_users`` reference the caller knows is not the first.

        Sync.  Raises `InvalidArgument` if ``mm_users`` is 0 (use `mmget_not_zero`).
        """
        self.checker.used(self.key, "mmget")
        if self.users <= 0:
            raise InvalidArgument("mmget() of an mm whose mm_users is 0: use mmget_not_zero()")
        self._take_user_ref()

    def mmget_not_zero(self) -> bool:
        """Take an mm_users reference unless the mm is already being torn down.  Sync."""
        self.checker.used(self.key, "mmget_not_zero")
        if self.users <= 0 or self.is_dead:
            return False
        self._take_user_ref()
        return True

    async def mmput(self) -> None:
        """Drop an mm_users reference; the last one tears the mm down *in this task*:
        exit_mmap (the notifier release walk, then the page tables), then mmdrop.

        Blocks on whatever the release callbacks take.  If one of them needs a lock this
        task holds, the task hangs, as the kernel's does: the run ends in a ``deadlock``
        naming it.  A put without a matching get (no `mmget` / `mmget_not_zero`
        reference is outstanding: it would drop the process's own, or take ``mm_users``
        below 0) is a ``refcount-underflow``, recorded here and not applied.
        """
        if self._drop_user_ref("mmput"):
            await self._mmput_teardown()

    def mmput_async(self) -> None:
        """``mmput_async``: like `mmput`, but a last put queues the teardown on the
        workqueue (task ``kworker:mmput_async``) and returns at once.  Sync.

        Raises `InvalidArgument` when the mm has no workqueue; a put without a matching
        get is a ``refcount-underflow``, as for `mmput`.
        """
        if self.workqueue is None:
            raise InvalidArgument("mmput_async(): this mm was built without a workqueue")
        if self._drop_user_ref("mmput_async"):
            self.workqueue.queue_work(WorkItem("mmput_async", self._mmput_teardown))

    def mmgrab(self) -> None:
        """``mmgrab``: take an ``mm_count`` reference (keeps the struct, not the memory)."""
        self.checker.used(self.key, "mmgrab")
        self.mm_count += 1

    def mmdrop(self) -> None:
        """``mmdrop``: drop an ``mm_count`` reference; the last frees the mm.  Sync.

        A drop below zero is a ``double-free``; a drop that frees the mm while
        ``mm_users`` references remain (they hold one ``mm_count`` together, dropped by
        the teardown) is a ``refcount-underflow``."""
        self.checker.used(self.key, "mmdrop")
        self.mm_count -= 1
        if self.mm_count == 0:
            if self.users > 0:
                self.checker.refcount_underflow(
                    self.key,
                    f"mmdrop() freed it while mm_users is {self.users}: a drop without a "
                    "matching mmgrab",
                )
            self.checker.freed(self.key, "freed by the last mmdrop")
        elif self.mm_count < 0:
            self.checker.freed(self.key, "mmdrop below zero")

    def _take_user_ref(self) -> None:
        self.users += 1
        try:
            task = rt.current_task()
        except OdpError:
            return
        self._user_refs[task] = self._user_refs.get(task, 0) + 1

    def _drop_user_ref(self, what: str) -> bool:
        # A reference may be put by another task than the one that took it (a driver
        # hands its mmget to a worker), so a put is matched against the count of
        # references taken, not per task: with none outstanding, it would drop the
        # process's own reference under the running process (exit_mmap under it, then
        # mm_users -1 at its exit), or, with none at all, take mm_users below 0.
        self.checker.used(self.key, what)
        taken = self.users - (1 if self._process_ref else 0)
        if taken <= 0:
            if self.users <= 0:
                detail = (
                    f"{what}() after its last mm_users reference was put: mm_users would go to -1"
                )
            else:
                detail = (
                    f"{what}() without a matching mmget: it would drop the process's own "
                    "mm_users reference while the process runs (exit_mmap under it, "
                    "mm_users -1 at its exit)"
                )
            self.checker.refcount_underflow(self.key, detail)
            return False
        self.users -= 1
        try:
            task = rt.current_task()
        except OdpError:
            task = None
        held = self._user_refs.get(task, 0)
        if held > 1:
            self._user_refs[task] = held - 1
        elif held == 1:
            del self._user_refs[task]
        return self.users == 0

    async def _mmput_teardown(self) -> None:
        # __mmput: exit_mmap, then the mm_count the users held.
        with rt.cancel_scope(shield=True):  # a teardown, like the kernel's, runs to the end
            try:
                await self._exit_mmap()
            except ProtocolViolation as e:
                if "already held" not in str(e):
                    raise
                await _hang(f"the last mmput runs exit_mmap in this task, and {e}")
        self.mmdrop()

    async def exit(self) -> None:
        """The process exits: drop its own mm reference (the teardown may run here, or in
        whichever task drops the last reference later)."""
        if not self._process_ref:
            raise InvalidArgument("exit() of a process that already exited")
        self.checker.used(self.key, "exit")
        self._process_ref = False
        self.users -= 1
        if self.users == 0:
            await self._mmput_teardown()

    async def get_user_pages(self, rng: AddrRange, *, write: bool) -> list[PinnedPage]:
        """Look up (populating as needed) and take a reference on each page of `rng`.

        Holds an mm reference and mmap_sem for read while it walks.  A present pte is
        returned as it is, whatever is happening to it (gup does not look at i_size or at
        running invalidations).  A migration entry makes it wait for the migration.
        Raises `FaultError` (nothing held) if the mm is gone or a page cannot be provided.
        """
        if not self.mmget_not_zero():
            raise FaultError("get_user_pages: the mm has exited")
        pages: list[PinnedPage] = []
        try:
            async with self.mmap_sem.read_locked():
                for vpn in rng.vpns():
                    frame, writable = await self._populate(vpn, write)
                    self.memory.get(frame)
                    pages.append(PinnedPage(vpn, frame, writable))
        except BaseException:
            self.put_pages(pages)
            raise
        finally:
            await self.mmput()
        return pages

    def put_pages(self, pages: list[PinnedPage]) -> None:
        """Drop the references `get_user_pages` took.  Sync."""
        for page in pages:
            self.memory.put(page.frame, "released by its last user")

    # --- the notifier chain -----------------------------------------------------------

    async def register_notifier(self, sub: Subscription) -> None:
        """``mmu_notifier_register``: mmap_sem write + ``mm_take_all_locks``, then hash.

        Blocks: on mmap_sem and on every file's i_mmap lock and the anon_vma lock, so no
        invalidation is between start and end of this mm while it runs.  Raises
        `InvalidArgument` if `sub` is not a subscriber (`subscription_problem`).
        """
        problem = subscription_problem(sub)
        if problem is not None:
            raise InvalidArgument(f"register_notifier(): {sub!r} {problem}")
        self.checker.used(self.key, "mmu_notifier_register")
        if self.is_dead or not self.holds_user_ref():
            # the kernel's BUG_ON(mm_users <= 0): nothing will ever release this subscriber
            self.checker.inserted_after_release(
                f"subscriber {sub!r}", "into an mm without holding an mm_users reference"
            )
            return
        async with self.mmap_sem.write_locked():
            if self.releasing:
                self.checker.inserted_after_release(
                    f"subscriber {sub!r}", "after the mm's release walk began"
                )
            locks = [self.anon_vma, *self._file_locks()]
            for lock in locks:
                await lock.acquire()
            try:
                self._subs[sub] = None
                self._in_flight.setdefault(sub, TrackedList())
            finally:
                for lock in reversed(locks):
                    lock.release()

    async def unregister_notifier(self, sub: Subscription) -> None:
        """``mmu_notifier_unregister``: run ``release`` if still hashed and the mm is alive,
        unhash, then wait until none of `sub`'s callbacks is running; for an interval
        notifier (see `Subscription`), also until every invalidation whose start it got
        has ended (``mmu_interval_notifier_remove``)."""
        if sub in self._subs:
            if not self.is_dead:
                await self._call(sub, sub.release())
                # ->release returned, the unhash (under the notifier lock) not yet done
                # (mm/mmu_notifier.c mmu_notifier_unregister: srcu_read_unlock ->
                # spin_lock; hlist_del_init_rcu): an invalidation may still reach `sub`.
                await rt.checkpoint(("mmu_notifier_unregister", repr(sub), "unhash"))
            self._subs.pop(sub, None)
        while self._in_flight.get(sub):
            await self._srcu(sub).park()
        await self._wait_for_owed_ends(sub)
        self._in_flight.pop(sub, None)
        self._callbacks_done.pop(sub, None)

    async def unregister_notifier_no_release(self, sub: Subscription) -> None:
        """``mmu_notifier_unregister_no_release``: unhash `sub`, with no ``release`` and
        *no wait* for its running callbacks.  Freeing it right after is the mistake the
        kernel documents: wait first (`synchronize_notifiers`) or free it deferred
        (`put_notifier`).  Say when you free it with `free_subscriber`, so the checker
        sees a callback still running in it (`teardown_notifier` does both for you).
        Checkpoint: always."""
        self._subs.pop(sub, None)
        await rt.checkpoint(("unregister_no_release", repr(sub)))

    async def synchronize_notifiers(self) -> None:
        """``mmu_notifier_synchronize``: wait until every notifier callback running now
        (of any subscriber) has returned.  Checkpoint: always."""
        await rt.checkpoint(("mmu_notifier_synchronize",))
        running = {(id(sub), task) for sub, tasks in self._in_flight.items() for task in tasks}
        while running & {(id(s), t) for s, tasks in self._in_flight.items() for t in tasks}:
            await self._any_callback_done.park()

    def put_notifier(self, sub: Subscription, free: Callable[[], Awaitable[None]]) -> None:
        """``mmu_notifier_put``: unhash `sub` and run `free` on the workqueue once every
        callback running now has returned (the deferred free of ``call_srcu``).  Sync.
        Raises `InvalidArgument` without a workqueue."""
        if self.workqueue is None:
            raise InvalidArgument("put_notifier(): this mm was built without a workqueue")
        self._subs.pop(sub, None)

        async def free_after_grace_period() -> None:
            await self.synchronize_notifiers()
            await self._wait_for_owed_ends(sub)
            await free()

        self.workqueue.queue_work(WorkItem(f"put {sub!r}", free_after_grace_period))

    async def teardown_notifier(
        self, sub: Subscription, free: Callable[[], Awaitable[None]]
    ) -> None:
        """Unregister `sub` and free it (`free`), the way `notifier_teardown` says:
        ``"unregister"`` waits for its running callbacks then frees; ``"put"`` frees it
        deferred (`put_notifier`; needs a workqueue); ``"no-release"`` unhashes and
        frees at once.  Blocks (``"unregister"``) on the callbacks running now.  Raises
        `InvalidArgument` for ``"put"`` on an mm built without a workqueue."""
        self._subscriber_key(sub)
        how = self._notifier_teardown

        async def free_it() -> None:
            self.free_subscriber(sub, f"freed by its teardown ({how})")
            await free()

        if self._notifier_teardown == "put":
            self.put_notifier(sub, free_it)
            await rt.checkpoint(("mmu_notifier_put", repr(sub)))
        elif self._notifier_teardown == "no-release":
            await self.unregister_notifier_no_release(sub)
            await free_it()
        else:
            await self.unregister_notifier(sub)
            await free_it()

    def free_subscriber(self, sub: Subscription, why: str = "freed by its owner") -> None:
        """Tell the checker `sub` was freed (the ``kfree`` of the structure holding the
        ``struct mmu_notifier``).  From now on a callback of it returning (the chain walk
        reading its link), its ``->release`` returning, or another free of it is a
        ``use-after-free`` / ``double-free``.  `teardown_notifier` calls it; call it
        yourself after the raw `unregister_notifier_no_release` (or any free of your
        own).  Sync."""
        self.checker.freed(self._subscriber_key(sub), why)

    def _subscriber_key(self, sub: Subscription) -> str:
        # The checker's name for `sub`: one per subscriber object (kept alive here, so
        # its id is not reused), so a second free of it is seen as a double-free.
        torn = self._torn_down.get(id(sub))
        if torn is not None and torn[0] is sub:
            return torn[1]
        key = f"subscriber {sub!r}#{len(self._torn_down)}"
        self._torn_down[id(sub)] = (sub, key)
        return key

    def range_is_valid(self, rng: AddrRange) -> bool:
        """``mmu_notifier_range_is_valid``: no listed invalidation overlaps `rng`.  Sync."""
        return not self.active_ranges.overlaps(rng)

    async def range_wait_valid(self, rng: AddrRange) -> None:
        """``mmu_notifier_range_wait_valid``: sleep until no listed invalidation overlaps.

        Wakes on every change of the list.  Checkpoint: always.
        """
        await rt.checkpoint(("range_wait_valid", rng.start))
        while not self.range_is_valid(rng):
            await self._ranges_changed.park()

    # --- internals ----------------------------------------------------------------------

    def _require_alive(self, what: str) -> None:
        if self.is_dead:
            raise InvalidArgument(f"{what}: the process has exited")

    def _file_locks(self) -> list[Mutex]:
        files = {id(v.file): v.file for v in self.vmas if v.file is not None}
        return [f.i_mmap for f in sorted(files.values(), key=lambda f: f.name)]

    def _vmas_overlapping(self, rng: AddrRange) -> list[Vma]:
        return [h.value for h in self._vmas.overlapping(*rng.closed())]

    async def _populate(self, vpn: int, write: bool) -> tuple[Frame, bool]:
        # Caller holds mmap_sem (read or write).
        while True:
            vma = self.find_vma(vpn << PAGE_SHIFT)
            if vma is None:
                raise FaultError(f"no mapping at {vpn << PAGE_SHIFT:#x}")
            if write and not vma.writable:
                raise FaultError(f"write to the read-only mapping {vma}")
            pte = self.page_table.get(vpn)
            if pte is not None and pte.frame is None:
                await self._migration_done.park()
                continue
            if pte is None:
                if vma.file is not None:
                    frame = vma.file.page(vma.pgoff_of(vpn))
                    self.memory.get(frame)
                else:
                    frame = self.memory.alloc()
                pte = Pte(frame, vma.writable)
                self.page_table[vpn] = pte
            elif write and not pte.writable:
                pte.writable = True  # a write fault on a write-protected (not COW) page
            assert pte.frame is not None
            return pte.frame, write

    async def _split_huge_cut_by(self, rng: AddrRange) -> None:
        # Inside the caller's invalidation: every huge page `rng` cuts (overlaps without
        # covering) is split in an invalidation of its own, nested in the same task.  The
        # split keeps the mappings (the pmd becomes ptes to the same frames).
        first, end = rng.first_vpn, rng.first_vpn + rng.npages
        for vma in self._vmas_overlapping(rng):
            for block in sorted(vma.huge_blocks):
                cut = block < end and first < block + HPAGE_PAGES
                if cut and not (first <= block and block + HPAGE_PAGES <= end):
                    vma.huge_blocks.discard(block)
                    huge = AddrRange.pages(block, HPAGE_PAGES)
                    await self._invalidate(huge, InvalidateEvent.CLEAR, _nothing)
                    await rt.checkpoint(("split", block, "done"))

    def _zap_body(self, rng: AddrRange) -> Callable[[], Awaitable[None]]:
        async def zap() -> None:
            for vpn in rng.vpns():
                pte = self.page_table.pop(vpn, None)
                if pte is not None and pte.frame is not None:
                    self.memory.put(pte.frame, "unmapped")

        return zap

    def _remove_vmas(self, rng: AddrRange, *, keep_ptes: bool = False) -> None:
        for handle in list(self._vmas.overlapping(*rng.closed())):
            vma = handle.value
            self._vmas.remove(handle)
            if vma.file is not None:
                vma.file.mappings[:] = [(m, v) for m, v in vma.file.mappings if v is not vma]
            for piece_start, piece_end in ((vma.range.start, rng.start), (rng.end, vma.range.end)):
                if piece_start < piece_end:
                    piece = AddrRange(piece_start, piece_end)
                    rest = Vma(piece, vma.writable, vma.file, vma.pgoff_of(piece.first_vpn))
                    self._vmas.insert(*piece.closed(), rest)
                    if vma.file is not None:
                        vma.file.mappings.append((self, rest))

    async def _invalidate(
        self, rng: AddrRange, event: InvalidateEvent, body: Callable[[], Awaitable[None]]
    ) -> None:
        #   start callbacks   ‖   change the ptes, drop frames   ‖   end callbacks
        #   (subscribers zap)     (frees happen only here, after      (subscribers
        #                          every start returned)               account)
        with rt.cancel_scope(shield=True), rt.watch_progress():
            # started, a kernel invalidation runs to its end; its progress is watched
            # while a fault may be held back by it (`UContext.invalidation_ended`)
            await self._invalidate_unshielded(rng, event, body)

    async def _invalidate_unshielded(
        self, rng: AddrRange, event: InvalidateEvent, body: Callable[[], Awaitable[None]]
    ) -> None:
        inv = Invalidation(self._next_inv, rng, event, task=rt.current_task())
        self._next_inv += 1
        key = f"inv{inv.id}"
        self.checker.event("invalidate-begin", key, str(inv), rng.start)
        if not self.range_list_after_callbacks:
            self._list_range(inv)
        owed: list[Subscription] = []  # the interval notifiers whose start returned
        for i, sub in enumerate(list(self._subs)):
            if i:
                await self._next_subscriber(inv, "start")
            if sub in self._subs:
                await self._call(sub, sub.invalidate_range_start(inv))
                if stands_for_interval_notifiers(sub):
                    owed.append(sub)
                    self._ends_owed.setdefault(sub, TrackedList()).append(inv.task)
        if self.range_list_after_callbacks:
            self._list_range(inv)
        await self._change_then_end(inv, key, body, owed)

    async def _invalidate_nonblock(
        self, rng: AddrRange, event: InvalidateEvent, body: Callable[[], Awaitable[None]]
    ) -> bool:
        # mmu_notifier_invalidate_range_start_nonblock: a refusal stops the walk; which
        # subscribers then get an end is `nonblock_failure_rule`; the caller sends none.
        inv = Invalidation(self._next_inv, rng, event, blockable=False, task=rt.current_task())
        self._next_inv += 1
        key = f"inv{inv.id}"
        self.checker.event("invalidate-begin", key, f"{inv} (non-blockable)", rng.start)
        self._list_range(inv)
        started: list[Subscription] = []
        owed: list[Subscription] = []
        refused: Subscription | None = None
        for sub in list(self._subs):
            if sub not in self._subs:
                continue
            try:
                with no_sleep(self._sleep_hook(sub, inv)):
                    await self._call(sub, sub.invalidate_range_start(inv))
            except WouldBlock as e:
                refused = sub
                self.checker.event("invalidate-refused", key, f"{sub!r} refused {inv}: {e}")
                break
            started.append(sub)
            if stands_for_interval_notifiers(sub):
                owed.append(sub)
                self._ends_owed.setdefault(sub, TrackedList()).append(inv.task)
        if refused is not None:
            for sub in started:
                # an interval notifier's start is ended by the itree whatever the rule
                if sub in owed or (self.nonblock_failure_rule == "today" and sub in self._subs):
                    await self._call(sub, sub.invalidate_range_end(inv))
            self._pay_ends(owed, inv)
            self.active_ranges.remove(inv)
            self._ranges_changed.wake_all()
            self.checker.event("invalidate-end", key, f"{inv} refused", rng.start)
            return False
        await self._change_then_end(inv, key, body, owed)
        return True

    def _sleep_hook(self, sub: Subscription, inv: Invalidation) -> Callable[[object], None]:
        # What a wait inside `sub`'s start of the non-blockable `inv` records.
        def slept(primitive: object) -> None:
            name = getattr(primitive, "name", None)
            self.checker.slept_in_nonblock(
                f"{type(primitive).__name__} {name!r}" if name else type(primitive).__name__,
                f"{sub!r}'s invalidate_range_start of the non-blockable {inv} "
                "(it must trylock and raise WouldBlock)",
            )

        return slept

    async def _change_then_end(
        self,
        inv: Invalidation,
        key: str,
        body: Callable[[], Awaitable[None]],
        owed: list[Subscription],
    ) -> None:
        """Every start returned: run `body` (change the ptes, drop frames), then send each
        subscriber its end and unlist the range.  `owed`: the interval notifiers (see
        `Subscription`) whose start returned; each gets its end, even one unhashed before
        its turn, and is then no longer owed it."""
        await rt.checkpoint(("invalidate", inv.id, "after start"))
        await body()
        await rt.checkpoint(("invalidate", inv.id, "before end"))
        self.active_ranges.remove(inv)
        unended = list(owed)  # the interval notifiers not sent their end yet
        for i, sub in enumerate(list(self._subs)):
            if i:
                await self._next_subscriber(inv, "end")
            if sub in self._subs:
                await self._call(sub, sub.invalidate_range_end(inv))
                if unended:
                    unended = [o for o in unended if o is not sub]
        for sub in unended:
            # unhashed before its turn (the release walk; an unregister, which waits
            # for this): mn_itree_inv_end still ends the itree's invalidation
            await self._call(sub, sub.invalidate_range_end(inv))
        self._pay_ends(owed, inv)
        self._ranges_changed.wake_all()
        self.checker.event("invalidate-end", key, str(inv), inv.range.start)

    def _pay_ends(self, owed: list[Subscription], inv: Invalidation) -> None:
        # `inv` sent its end to each interval notifier in `owed`: they are owed one less.
        for sub in owed:
            tasks = self._ends_owed[sub]
            tasks.remove(inv.task)
            if not tasks:
                del self._ends_owed[sub]
                paid = self._ends_paid.pop(sub, None)
                if paid is not None:
                    paid.wake_all()

    async def _wait_for_owed_ends(self, sub: Subscription) -> None:
        # mmu_interval_notifier_remove: until no invalidation owes `sub` its end.  Its
        # holders (for deadlock reports) are the tasks running those invalidations.
        while self._ends_owed.get(sub):
            paid = self._ends_paid.get(sub)
            if paid is None:
                paid = WaitQueue(_OWED_ENDS, owner=_OwedEnds(self, sub))
                self._ends_paid[sub] = paid
            await paid.park()

    async def _next_subscriber(self, inv: Invalidation, which: str) -> None:
        # The chain walk goes on to the next subscriber holding only the SRCU read lock
        # (mm/mmu_notifier.c mn_hlist_invalidate_range_start/_end: hlist_for_each_entry_rcu):
        # nothing keeps another task out between two subscribers' callbacks.
        await rt.checkpoint(("invalidate", inv.id, f"next {which}"))

    def _list_range(self, inv: Invalidation) -> None:
        self.active_ranges.append(inv)
        self._ranges_changed.wake_all()

    async def _call(self, sub: Subscription, callback: Awaitable[None]) -> None:
        task = rt.current_task()
        callers = self._in_flight.setdefault(sub, TrackedList())
        callers.append(task)
        try:
            await callback
        finally:
            # still inside the SRCU read section, the chain walk reads sub's list
            # link to go on: freed by then, that read is a use-after-free
            self._check_torn(sub, "the notifier chain walk after its callback")
            callers.remove(task)
            if not callers and sub in self._callbacks_done:
                self._callbacks_done[sub].wake_all()
            self._any_callback_done.wake_all()

    def _check_torn(self, sub: Subscription, what: str) -> None:
        # `what` touched `sub`: a use-after-free if a teardown freed it already.
        torn = self._torn_down.get(id(sub))
        if torn is not None and torn[0] is sub:
            self.checker.used(torn[1], what)

    def _srcu(self, sub: Subscription) -> WaitQueue:
        # What `unregister_notifier` waits on: the end of `sub`'s running callbacks.  Its
        # holders (for deadlock reports) are the tasks inside those callbacks.
        queue = self._callbacks_done.get(sub)
        if queue is None:
            queue = WaitQueue(owner=_SrcuReaders(self, sub))
            self._callbacks_done[sub] = queue
        return queue

    def _release(self) -> None:
        """Cut the mm's links to its subscribers once a run is over (`World._release`
        calls it; the mm is not used afterwards): drop the subscription list and the
        per-subscriber SRCU and teardown bookkeeping, which would otherwise close a
        reference cycle with each subscriber's link to this mm (``sub.mm``)."""
        self._subs.clear()
        self._in_flight.clear()
        self._ends_owed.clear()
        self._ends_paid.clear()
        self._callbacks_done.clear()
        self._torn_down.clear()

    async def _exit_mmap(self) -> None:
        # __mmu_notifier_release: every subscriber gets release and is unhashed, so the
        # teardown below is not notified (in 2014 as today).
        self.checker.event("exit-begin", "exit", "exit_mmap")
        self.releasing = True
        for i, sub in enumerate(list(self._subs)):
            if i:
                # the release walk goes on holding only SRCU (__mmu_notifier_release)
                await rt.checkpoint(("exit_mmap", "next release"))
            if sub not in self._subs:
                continue
            if self._release_order == "pre-2013":
                # unhashed first, then ->release outside any SRCU read section: a
                # concurrent unregister sees it gone and does not wait for it
                self._subs.pop(sub, None)
                try:
                    await sub.release()
                finally:
                    # nobody waited for this release: a teardown that freed the
                    # subscriber meanwhile freed it under the running callback
                    self._check_torn(sub, "its ->release (run outside SRCU by exit_mmap)")
            else:
                await self._call(sub, sub.release())
                self._subs.pop(sub, None)
        self.is_dead = True
        self.checker.mm_released()
        # the release walk returned; exit_mmap then unmaps the page tables, holding no
        # lock a fault's commit or a driver's teardown takes (mm/mmap.c exit_mmap)
        await rt.checkpoint(("exit_mmap", "unmap"))
        for vpn in sorted(self.page_table):
            pte = self.page_table.pop(vpn)
            if pte.frame is not None:
                self.memory.put(pte.frame, "unmapped at exit")
        for handle in list(self._vmas):
            vma = handle.value
            if vma.file is not None:
                vma.file.mappings[:] = [(m, v) for m, v in vma.file.mappings if v is not vma]
        self._vmas.clear()
        self._migration_done.wake_all()
        self.checker.event("exit-end", "exit", "exit_mmap done")


_OWED_ENDS = "invalidation ends owed to an interval notifier (mmu_interval_notifier_remove)"


@tracked
class _OwedEnds:
    """The owner of an interval notifier's wait for its owed ends: describes it for
    deadlock reports."""

    __slots__ = ("_mm", "_sub")

    def __init__(self, mm: AddressSpace, sub: Subscription) -> None:
        self._mm = mm
        self._sub = sub

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        tasks = self._mm._ends_owed.get(self._sub, ())
        return _OWED_ENDS, tuple(dict.fromkeys(tasks))


@tracked
class _SrcuReaders:
    """The owner of an SRCU wait: describes it for deadlock reports."""

    __slots__ = ("_mm", "_sub")

    def __init__(self, mm: AddressSpace, sub: Subscription) -> None:
        self._mm = mm
        self._sub = sub

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        return "notifier callbacks to return (srcu)", tuple(self._mm._in_flight.get(self._sub, ()))


async def _nothing() -> None:
    pass


@tracked
class _Hang:
    __slots__ = ("_task", "_why")

    def __init__(self, task: object, why: str) -> None:
        self._task = task
        self._why = why

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        return f"itself ({self._why})", (self._task,)


async def _hang(why: str) -> None:
    """Block the calling task for good, waiting on itself: the self-deadlock of a task that
    re-takes a lock it holds, reported by the runtime as a deadlock cycle of one task."""
    queue = WaitQueue(owner=_Hang(rt.current_task(), why))
    while True:
        await queue.park()
