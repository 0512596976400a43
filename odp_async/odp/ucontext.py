"""The ODP core: one process's context on one device (``struct ib_ucontext``) and its fault path.

Contract
    `UContext` holds the regions of one process on one device: the interval tree of
    `Umem` s, ``umem_rwsem`` around it, the count of ODP MRs, the notifier subscription
    (`OdpSubscription`), and the protocol that decides how faults and invalidations
    exclude each other.  It offers:

    - `register_mr` / `deregister_mr`;
    - `fault`, the device page-fault path, generic over the protocol::

          loop:  token = begin(U, rng)            # read seq, or wait
                 pages = get_user_pages(rng)      # mmap_sem read; takes page references
                 ok = commit(U, rng, token, pages)  # under U's lock: install or retry
                 put pages                        # ODP never keeps a page reference
                 if ok: done
                 wait(U, rng, token)              # e.g. on U.completion

      bounded by ``max_fault_retries`` refused attempts that count (see "Liveness") and
      by ``starvation_bound`` invalidation ends after which the protocol still held it
      back, from its first attempt on (`OdpProtocol.holds_back`; see "Liveness"); past
      either it records
      ``starvation`` and gives up.  A ``fault_commit`` (or ``holds_back``) that returns
      anything but a bool raises `ProtocolUsageError` (the author's mistake, not a
      retry).  One that returns True (installed) when no page of the range was ever
      installed in the region's device table (by anyone, in the run) is a
      ``spurious-fault-failure`` (a fault "resolved" with nothing mapped: the device
      can only fault again, and its DMA fails; a page installed once, zapped, and then
      "resolved" with no install is not seen);
    - helpers protocols use: `overlapping`, `all_umems`, `zap`, `update_device` (the
      commit's device page-table write, a choice point first), `install` (the same write,
      sync: atomic with the commit's check), `tree_insert`, `tree_remove`.

Concurrency
    ``umem_rwsem`` guards the tree and ``odp_mrs_count`` for the 2014-family protocols
    (readers: callbacks; writers: (de)registration); protocols with another registry
    (interval-seq) say what guards it.  Per-region state is guarded by ``umem.mutex``.

Liveness (why a ``starvation`` verdict is the protocol's, never the scheduler's)
    The explorer's choosers (pct, dfs) may keep a runnable task off the CPU for as long
    as they like; a liveness verdict must still hold under a fair scheduler.  So neither
    bound counts time.  The retry bound counts attempts the protocol refused, but not
    every one: a fault that retries by spinning (KVM's RET_PF_RETRY, amdgpu's ``goto
    retry``: no sleep between a refused commit and the next attempt) is refused again
    and again by the *same* invalidation while a chooser keeps that invalidation's task
    off the CPU, which says nothing about the protocol.  A refusal counts only if it is
    the fault's first, or an invalidation ended since the last counted one after which
    the protocol no longer held the fault back (so a new invalidation refused it), or
    the world went idle since (the sim's clock moves only when no task can run: nobody
    was kept off the CPU; live, a whole ``fault_wait_timeout`` passed).  An endless spin
    is left to the explorer's step bound, whose fair continuation lets the invalidator
    finish (no verdict against the protocol) or, if the fault still spins, makes the
    search inconclusive, never clean.  The invalidation bound counts ends.  An
    invalidation end charges a pending fault only if, at that end, the protocol would
    keep a fault starting right then waiting or retrying (`holds_back`), and the
    scheduler kept nothing the fault depends on off the CPU since the fault's last
    charge (or its first attempt): neither the faulting task nor the task of an
    invalidation in flight at that charge and in flight still was passed over (runnable
    and never run since: `rt.task_passed_over`).  A task parked all along (on a wait
    queue, a completion, a lock; asleep) was held by the protocol, not the scheduler,
    so it does not stop the charge; nor does a holder that ran a step.  At a charge the
    fault remembers how far its task and each invalidation in flight had run
    (`rt.task_progress`).  In flight: listed in the mm (`AddressSpace.active_ranges`) or
    begun on this context and its end not returned (`UContext.in_flight`: the mm
    unlists one before its end callbacks run, and the protocol may hold the fault until
    they do).  So one invalidation the chooser keeps open (its task runnable, never run
    again) is charged at most once, whatever else ends meanwhile, and a fault the
    chooser keeps off the CPU is charged nothing until it runs; while a storm whose
    invalidations keep overlapping is charged at every end whatever its width (a rule
    that waited for every invalidation in flight at the last charge to end took about N
    ends per charge from a storm N tasks wide, and left kvm-seq clean on 8 tasks x 4
    madvises).  A charge is provisional until the invalidations in flight at the wait's
    first charge (its window, `_Pending.window`) have all ended with the fault still held
    back; then at most the window's width + 1 of the provisional charges count, and the
    invalidations in flight then are the next window.  A wait the protocol ends before
    its window turns over counts one.  So a fault held by ONE long invalidation is not
    charged for a storm's ends elsewhere (each of them finds it held, by that one holder,
    which may sleep or park: not passed over), while a storm that keeps the fault held
    turns its windows over and is charged about as many ends as it has.  DPOR: the end's
    questions are noted reads of those tasks' progress,
    which a task's steps and the wakes of it write only while it watches its progress
    (`rt.watch_progress`: a faulting task while its fault is pending, an invalidating
    task while its invalidation runs, `AddressSpace._invalidate`), so the end is ordered
    against exactly those steps.  Live, where the runtime cannot tell
    (`rt.task_passed_over` is None), every end that finds the fault held is charged.  A
    fault the chooser merely delayed, on a region the protocol leaves open, is charged
    nothing.  Counting starts at the first attempt, not when the fault is called.  A
    protocol that keeps the base's `holds_back` (one
    written outside the package, say) is not asked: the core charges an end only while
    the fault is observably held, parked (blocked on a primitive other than a closed
    gate, or asleep) inside the protocol's own ``fault_begin`` or ``fault_wait``
    (`rt.task_blocked`; the asking step conflicts with every step under dpor); runnable there
    (woken, not yet scheduled) or outside them, it is charged nothing and counts as let
    go for the retry bound.  Live, where the runtime cannot tell a park
    (`rt.task_blocked` is None), being inside the wait is taken for held (the live loops
    run woken tasks first come, first served).  What this cannot see: a fault that
    busy-waits inside ``fault_begin`` (it never parks; its refusals still count), a
    fault or a holder parked on a lock that a task the chooser keeps off the CPU holds
    (charged: only the holders' own tasks are asked), and a chooser that lets a holder
    run one step between two ends (each end charged; an invalidation is a few steps
    long): override `holds_back` for the exact verdict.

See also
    `odp_async.odp.protocols` (the seven protocols), `odp_async.mm`, `odp_async.device`.
"""

from __future__ import annotations

from typing import Any

from .. import _runtime as rt
from ..addr import PAGE_SHIFT, PAGE_SIZE, AddrRange
from ..check import Checker
from ..device import Device, FaultOutcome, FaultRequest
from ..errors import InvalidArgument
from ..intervals import IntervalTree
from ..mm import AddressSpace, FaultError, Invalidation, PinnedPage
from ..sync import RWLock
from ..tracked import TrackedDict, TrackedList, TrackedRanges, TrackedSet, tracked
from .protocols import resolve_protocol
from .protocols.base import FaultAborted, OdpProtocol, hook_returned
from .umem import Umem, UmemState

__all__ = ["OdpSubscription", "UContext"]


@tracked
class OdpSubscription:
    """The context's ``struct mmu_notifier``: forwards the mm's callbacks to the protocol."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: UContext) -> None:
        self.ctx = ctx

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        in_flight = self.ctx.in_flight
        in_flight.add(inv)
        try:
            await self.ctx.protocol.invalidate_range_start(inv)
        except BaseException:  # refused (WouldBlock): no end will come for it
            in_flight.remove(inv)
            raise

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        await self.ctx.protocol.invalidate_range_end(inv)
        self.ctx.invalidation_ended(inv)

    async def release(self) -> None:
        await self.ctx.protocol.release()

    def __repr__(self) -> str:
        return f"<OdpSubscription of {self.ctx.device.name}>"


@tracked
class _Pending:
    """A fault between its first attempt and its end: the invalidations charged to it."""

    __slots__ = (
        "charged",
        "holders",
        "let_go",
        "mark",
        "provisional",
        "rng",
        "task",
        "umem",
        "waiting",
        "window",
    )

    def __init__(self, umem: Umem, rng: AddrRange, task: object) -> None:
        self.umem = umem
        self.rng = rng
        #: The faulting task (`rt.current_task`), which watches its progress while the
        #: fault is pending (`rt.watch_progress`).
        self.task = task
        #: How far the faulting task had run at the fault's last charge, or at its first
        #: attempt before any (`rt.task_progress`; None live).
        self.mark = rt.task_progress(task)
        #: Inside the protocol's ``fault_begin`` or ``fault_wait`` (kept only for a
        #: protocol that leaves `OdpProtocol.holds_back` to the core: `UContext.observes`).
        self.waiting = False
        #: Invalidation ends after which the protocol still held the fault back, charged
        #: only when the scheduler kept neither the faulting task nor one of `holders`
        #: still in flight off the CPU since the last (see "Liveness"), and confirmed
        #: only once `window` turned over with the fault still held back.
        self.charged = 0
        #: Such ends since `window` opened, not yet confirmed: dropped (but one) when the
        #: protocol lets the fault go before `window` turns over.
        self.provisional = 0
        #: The invalidations in flight when the fault's current wait was first charged
        #: (None: no wait open).  Charges are confirmed, at most ``len(window) + 1``, when
        #: none of them is in flight any more and the protocol still holds the fault.
        self.window: tuple[Invalidation, ...] | None = None
        #: The invalidations in flight when the fault was last charged (none before),
        #: each with how far its task had run then (`rt.task_progress`).
        self.holders: tuple[tuple[Invalidation, int | None], ...] = ()
        #: An invalidation ended, since the fault's last counted refusal (or its first
        #: attempt), after which the protocol no longer held it back (`_Refusals`).
        self.let_go = False


class _Refusals:
    """A fault's refused attempts, as ``max_fault_retries`` counts them (see "Liveness").
    Local to the faulting task (no other task reads it), so not `tracked`.

    A refusal counts when it is the first, when an invalidation ended since the last
    counted one after which the protocol no longer held the fault back
    (`_Pending.let_go`: whatever refused it now is a new invalidation), or when the world
    went idle since (in the sim the clock moves only when no task can run, so nobody was
    kept off the CPU; live, a whole ``fault_wait_timeout`` passed).  A refusal by the same
    invalidation, still running, is a spin the scheduler caused: it counts nothing, and an
    endless one is left to the explorer's step bound and its fair continuation.  (The
    first refusal does not look at `_Pending.let_go`, so a fault refused once races with
    no invalidation end over it; a window that opened before it may let one more refusal
    count, never a spin's second.)"""

    __slots__ = ("clock", "counted")

    def __init__(self) -> None:
        self.counted = 0
        self.clock = 0.0

    def count(self, pending: _Pending, timeout: float) -> int:
        """Note one more refusal of `pending`'s fault; return how many count.  Sync."""
        now = rt.now()
        if self.counted:
            idle = now > self.clock if rt.current_runtime().is_sim else now - self.clock >= timeout
            if not (idle or pending.let_go):
                return self.counted
            if pending.let_go:
                pending.let_go = False
        self.counted += 1
        self.clock = now
        return self.counted


@tracked
class UContext:
    """One process's ODP state on one device.  Built by `odp_async.world.World`."""

    def __init__(
        self,
        mm: AddressSpace,
        device: Device,
        checker: Checker,
        protocol: str | type[OdpProtocol],
        *,
        options: dict[str, Any] | None = None,
        max_fault_retries: int = 12,
        starvation_bound: int = 12,
        fault_wait_timeout: float = 1.0,
    ) -> None:
        for what, value in (
            ("max_fault_retries", max_fault_retries),
            ("starvation_bound", starvation_bound),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgument(f"{what} must be a positive int, got {value!r}")
        self.mm = mm
        self.device = device
        self.checker = checker
        self.tree: IntervalTree[Umem] = IntervalTree()
        self.umem_rwsem = RWLock("umem_rwsem")
        self.odp_mrs_count = 0
        self.subscription = OdpSubscription(self)
        self.max_fault_retries = max_fault_retries
        self.starvation_bound = starvation_bound
        #: Seconds a retrying fault waits on its region's completion before retrying anyway.
        self.fault_wait_timeout = fault_wait_timeout
        #: Invalidation ends delivered to this context so far.
        self.invalidations_ended = 0
        #: Invalidations whose start reached this context and whose end has not returned
        #: (the mm unlists one before its end callbacks run: `AddressSpace.active_ranges`).
        self.in_flight: TrackedRanges[Invalidation] = TrackedRanges()
        #: Faults past their first attempt, in the order they started (see "Liveness").
        self._pending: TrackedList[_Pending] = TrackedList()
        self._next_mr = 0
        self.umems: TrackedDict[str, Umem] = TrackedDict()
        # id(umem) -> (umem, its checker key); the regions removed from the tree
        self._region_keys: TrackedDict[int, tuple[Umem, str]] = TrackedDict()
        self._removed: TrackedSet[str] = TrackedSet()
        self.protocol: OdpProtocol = resolve_protocol(protocol)(self, **(options or {}))
        #: The protocol does not answer `OdpProtocol.holds_back` (it keeps the base's):
        #: the core observes instead whether the protocol holds a fault (see "Liveness").
        self.observes = type(self.protocol).holds_back is OdpProtocol.holds_back

    # --- registration -----------------------------------------------------------------

    async def register_mr(
        self, start: int, length: int, *, writable: bool = True, name: str | None = None
    ) -> Umem:
        """Register an ODP MR over ``[start, start+length)`` (``ib_umem_odp_get``).

        The range must lie inside mappings (checked under mmap_sem read, released before
        the protocol's insert).  Blocks on whatever the protocol's insert takes.
        Raises `InvalidArgument` for a bad range or a name already in use.
        """
        rng = AddrRange.of(start, length)
        if name is None:
            name = f"mr{self._next_mr}"
        if name in self.umems:
            raise InvalidArgument(f"an MR named {name!r} is already registered")
        self._next_mr += 1
        async with self.mm.mmap_sem.read_locked():
            self._require_mapped(rng)
        table = self.device.create_table(name, rng)
        umem = Umem(name, rng, table, self.checker, writable)
        self.umems[name] = umem
        self.checker.event("register-begin", name, f"register {name} {rng}", rng.start)
        try:
            with rt.cancel_scope(shield=True):  # the insert is not interruptible
                # mmap_sem is dropped after the mapping check, the registry's lock not yet
                # taken (umem_odp.c ib_umem_odp_get -> mmu_interval_notifier_insert; the
                # 2014 patch: up_read(mmap_sem) -> down_write(umem_rwsem)): a munmap may run.
                await rt.checkpoint(("register", name, "insert"))
                await self.protocol.insert(umem)
        except BaseException:
            self.umems.pop(name, None)
            self.device.drop_table(table)
            raise
        umem.state = UmemState.REGISTERED
        self.checker.event("register-end", name, f"{name} registered", rng.start)
        return umem

    async def deregister_mr(self, umem: Umem) -> None:
        """Deregister (``ib_umem_odp_release``): stop new faults, drain running ones,
        zap every translation, then the protocol's remove.  Afterwards any touch of the
        region is a ``use-after-release``."""
        if umem.state is not UmemState.REGISTERED:
            raise InvalidArgument(f"deregister_mr({umem.name}): it is {umem.state.value}")
        umem.state = UmemState.DEREGISTERING
        self.checker.event("deregister-begin", umem.name, f"deregister {umem.name}")
        with rt.cancel_scope(shield=True):  # once begun, deregistration completes
            await umem.drain_faults()
            async with umem.mutex:
                umem.table.zap_all()
            # umem_mutex dropped after the unmap, the registry's lock not yet taken
            # (umem_odp.c ib_umem_odp_release: mutex_unlock -> mmu_interval_notifier_remove;
            # the 2014 patch: -> down_write(umem_rwsem)): an invalidation may run here.
            await rt.checkpoint(("deregister", umem.name, "remove"))
            await self.protocol.remove(umem)
        umem.state = UmemState.DEREGISTERED
        umem.released = True
        self.device.drop_table(umem.table)
        self.umems.pop(umem.name, None)
        self.checker.table_released(umem.name)
        self.checker.event("deregister-end", umem.name, f"{umem.name} deregistered")
        # ib_umem_odp_release then frees the struct: a later tree insert/remove of it is
        # a use-after-free (`tree_insert`, `tree_remove`)
        self.checker.freed(self.region_key(umem), "freed by deregister_mr")

    # --- the fault path ---------------------------------------------------------------

    async def fault(
        self, umem: Umem, address: int, *, npages: int = 1, write: bool = False
    ) -> FaultOutcome:
        """Resolve a device page fault on `npages` pages of `umem` from `address`.

        Returns how it ended; never raises for what the mm or the protocol did.
        Raises `InvalidArgument` for an address or length outside the region.
        """
        if not isinstance(npages, int) or isinstance(npages, bool) or npages < 1:
            raise InvalidArgument(f"npages must be a positive int, got {npages!r}")
        base = address & ~(PAGE_SIZE - 1)
        rng = AddrRange(base, base + (npages << PAGE_SHIFT))
        if not umem.range.contains(rng):
            raise InvalidArgument(f"fault at {rng} is outside {umem.name} {umem.range}")
        if write and not umem.writable:
            raise InvalidArgument(f"write fault on the read-only MR {umem.name}")
        if not umem.fault_enter():
            umem.touch("a fault")
            return FaultOutcome.FAILED
        try:
            return await self._fault(umem, rng, write)
        finally:
            umem.fault_exit()

    async def handle_device_fault(self, request: FaultRequest) -> FaultOutcome:
        """The device's fault handler: find the region of the faulting table and fault."""
        umem = self.umems.get(request.table.name)
        if umem is None or (request.write and not umem.writable):
            return FaultOutcome.FAILED  # no such MR, or a write to a read-only one
        return await self.fault(umem, request.address, write=request.write)

    async def device_fault(
        self, umem: Umem, address: int, *, npages: int = 1, write: bool = False
    ) -> FaultOutcome:
        """A page fault the device raises on `umem`'s key, handled as the driver does:
        the key is looked up first (mlx5 odp.c: ``xa_load(&dev->odp_mkeys)`` under srcu),
        and a fault on a region deregistered or being deregistered is dropped
        (`FaultOutcome.FAILED`, no violation: deregistration revokes the key and waits
        for running lookups, ``synchronize_srcu``, before ``ib_umem_odp_release``).
        Otherwise as `fault`, whose caller holds a pointer to the region: there a fault on
        a deregistered region is a ``use-after-release`` (a stale pointer).  Same errors
        as `fault`."""
        if self.umems.get(umem.name) is not umem or umem.state is not UmemState.REGISTERED:
            return FaultOutcome.FAILED  # no such key: the device's fault is dropped
        return await self.fault(umem, address, npages=npages, write=write)

    def invalidation_ended(self, inv: Invalidation) -> None:
        """`inv`'s end callbacks ran: charge each pending fault the protocol holds back
        right now, unless, since its last charge, the scheduler passed over the faulting
        task or the task of an invalidation in flight then and still; the charge stays
        provisional until the fault's window turned over (see "Liveness" in the module
        docstring; the window's look is `_in_flight`, noted reads of the pages of its
        members' ranges, as `_kept_off`'s).  Sync."""
        self.invalidations_ended += 1
        in_flight = self.in_flight
        if in_flight.listed(inv):
            in_flight.remove(inv)
        for pending in self._pending:
            if not (
                self._held(pending)
                if self.observes
                else self._holds_back(pending.umem, pending.rng)
            ):
                pending.let_go = True
                if pending.window is not None:
                    # The wait ended before its window turned over: the protocol held
                    # the fault for some of those holders, the other ends were elsewhere.
                    pending.charged += min(pending.provisional, 1)
                    pending.provisional = 0
                    pending.window = None
            elif not self._kept_off(pending, inv):
                holders = self._holders(inv)
                pending.provisional += 1
                pending.mark = rt.task_progress(pending.task)
                pending.holders = tuple(
                    (h, None if h.task is None else rt.task_progress(h.task)) for h in holders
                )
                window = pending.window
                if window is None:
                    pending.window = window = holders
                    if holders:
                        continue
                elif any(self._in_flight(h, inv) for h in window):
                    continue
                pending.charged += min(pending.provisional, len(window) + 1)
                pending.provisional = 0
                pending.window = holders

    def _kept_off(self, pending: _Pending, ending: Invalidation) -> bool:
        """Whether the scheduler, not the protocol, kept `pending`'s fault from going on
        since its last charge: it passed over the faulting task (runnable, never run), or
        the task of an invalidation in flight at that charge and still in flight at
        `ending`'s end (a holder it keeps open).  A task parked all along (on a lock, a
        wait queue, a completion, asleep) was held by the protocol: not kept off.  Live
        never (the runtime cannot tell).  Notes reads of those tasks' progress.  Sync."""
        if pending.mark is not None and rt.task_passed_over(pending.task, pending.mark):
            return True
        return any(
            mark is not None
            and h.task is not None
            and self._in_flight(h, ending)
            and rt.task_passed_over(h.task, mark)
            for h, mark in pending.holders
        )

    def _in_flight(self, held: Invalidation, ending: Invalidation) -> bool:
        """Whether `held` is still in flight at `ending`'s end: listed in the mm or begun
        here and not ended here.  Reads the pages of `held`'s range.  Sync."""
        return held != ending and (
            self.in_flight.listed(held) or self.mm.active_ranges.listed(held)
        )

    def _holders(self, ending: Invalidation) -> tuple[Invalidation, ...]:
        """The invalidations in flight at `ending`'s end (see `_in_flight`), `ending`
        aside.  Ordered against every start and end.  Sync."""
        listed = self.mm.active_ranges.snapshot() + self.in_flight.snapshot()
        return tuple(dict.fromkeys(h for h in listed if h != ending))

    async def _fault(self, umem: Umem, rng: AddrRange, write: bool) -> FaultOutcome:
        await rt.checkpoint(("fault", umem.name, rng.start))
        # Charged from the first attempt on: the time the chooser kept the task from
        # getting here is the scheduler's, not the protocol's.
        with rt.watch_progress():
            pending = _Pending(umem, rng, rt.current_task())
            self._pending.append(pending)
            try:
                return await self._attempts(umem, rng, write, pending)
            finally:
                self._pending.remove(pending)

    async def _attempts(
        self, umem: Umem, rng: AddrRange, write: bool, started: _Pending
    ) -> FaultOutcome:
        proto = self.protocol
        checker = self.checker
        key = f"fault {umem.name} {rng.start:#x}"
        refusals = _Refusals()
        observes = self.observes
        attempt = 0
        while True:
            attempt += 1
            umem.touch("a fault")
            checker.event("fault-begin", key, f"{key} attempt {attempt}", rng.start)
            try:
                if observes:
                    started.waiting = True
                try:
                    token = await proto.fault_begin(umem, rng)
                finally:
                    if observes:
                        started.waiting = False
                if self._starved(umem, rng, started):
                    return FaultOutcome.STARVED
                # Between the token's read and the page walk (mmu_interval_read_begin ->
                # hmm_range_fault; kvm_main.c: mmu_invalidate_seq read -> hva_to_pfn) no
                # lock is held: get_user_pages' mmap_sem acquire is the choice point.
                pages = await self.mm.get_user_pages(rng, write=write)
            except (FaultAborted, FaultError) as e:
                return self._failed(umem, rng, key, e)
            try:
                # The pages are pinned and mmap_sem dropped, the driver's lock not yet
                # taken (mm/hmm.c hmm_range_fault returning -> mutex_lock(umem_mutex) for
                # mmu_interval_read_retry in umem_odp.c; kvm_main.c hva_to_pfn returning ->
                # write_lock(mmu_lock) for mmu_invalidate_retry): a whole invalidation may
                # run here on another CPU, so a seq read only at commit misses it.
                await rt.checkpoint(("fault", umem.name, rng.start, "commit"))
                committed = await proto.fault_commit(umem, rng, token, pages)
            except FaultAborted as e:
                return self._failed(umem, rng, key, e)
            finally:
                self.mm.put_pages(pages)
            if type(committed) is not bool:
                raise hook_returned(
                    proto, "fault_commit", committed, "a bool (True: installed, False: retry)"
                )
            if committed:
                if pages and self._never_mapped(umem, rng):
                    # "resolved" with nothing mapped: the device faults again, and again
                    checker.fault_failed_spuriously(
                        umem.name,
                        f"{rng} was reported resolved (fault_commit returned True), but no "
                        "page of it was ever installed: the device can only fault again",
                    )
                checker.event("fault-end", key, f"{key} resolved", rng.start)
                checker.fault_succeeded(umem.name, str(rng))
                return FaultOutcome.RESOLVED
            checker.event("fault-end", key, f"{key} must retry", rng.start)
            if self._starved(umem, rng, started):
                return FaultOutcome.STARVED
            if refusals.count(started, self.fault_wait_timeout) >= self.max_fault_retries:
                checker.starved(umem.name, f"{rng} retried {self.max_fault_retries} times")
                return FaultOutcome.STARVED
            # The commit refused and dropped the driver's lock; the wait and the next read
            # of the seq have not begun (umem_odp.c: mutex_unlock(umem_mutex), `goto retry`
            # to mmu_interval_read_begin, which checks and reads under the notifier lock;
            # the 2014 patch: before wait_for_completion_timeout; KVM: the vCPU re-enters
            # the fault): an invalidation may start or end here.  (A wait that blocks is a
            # choice point of its own; one that does not is taken with the next read, as
            # read_begin does.)
            await rt.checkpoint(("fault", umem.name, rng.start, "retry"))
            if observes:
                started.waiting = True
            try:
                await proto.fault_wait(umem, rng, token)
            except FaultAborted as e:
                return self._failed(umem, rng, key, e)
            finally:
                if observes:
                    started.waiting = False

    @staticmethod
    def _never_mapped(umem: Umem, rng: AddrRange) -> bool:
        """Whether no page of `rng` was ever installed in `umem`'s device table (by
        anyone, in this run).  Read in the step a commit returns in: noted reads of the
        pages' install counts, which that step writes anyway when it installed them (so
        a commit that installs adds no conflict).  Sync."""
        installs = umem.table.installs
        return all(installs.get(vpn, 0) == 0 for vpn in rng.vpns())

    def _failed(self, umem: Umem, rng: AddrRange, key: str, why: Exception) -> FaultOutcome:
        """The fault gave up.  The protocol may abort it (`FaultAborted`) only when its
        region is being deregistered or the mm's release began: aborting a fault on a
        registered region of a live mm is a ``spurious-fault-failure`` (a fault that can
        never succeed would leave a race scenario clean without testing anything).  A
        `FaultError` is the mm's (no page there, the mm exited).  Sync."""
        self.checker.event("fault-end", key, f"{key} failed: {why}", rng.start)
        mm = self.mm
        if (
            isinstance(why, FaultAborted)
            and umem.state is UmemState.REGISTERED
            and not (mm.releasing or mm.is_dead)
        ):
            self.checker.fault_failed_spuriously(
                umem.name,
                f"{rng} failed while the region is registered and the mm alive: {why}",
            )
        return FaultOutcome.FAILED

    def _holds_back(self, umem: Umem, rng: AddrRange) -> bool:
        """The protocol's `OdpProtocol.holds_back`, its answer checked: anything but a
        bool is the protocol's mistake (`ProtocolUsageError`).  Sync."""
        held = self.protocol.holds_back(umem, rng)
        if type(held) is not bool:
            raise hook_returned(self.protocol, "holds_back", held, "a bool")
        return held

    @staticmethod
    def _held(pending: _Pending) -> bool:
        """For a protocol without its own `OdpProtocol.holds_back`: is `pending`'s fault
        held by the protocol right now, as seen from outside: parked (blocked or asleep)
        inside the protocol's ``fault_begin`` or ``fault_wait``?  Runnable there (woken,
        not yet scheduled) it is the scheduler's.  Where the runtime cannot tell
        (`rt.task_blocked` None: live), being inside the wait is taken for held.  Sync."""
        if not pending.waiting:
            return False
        return rt.task_blocked(pending.task) is not False

    def _starved(self, umem: Umem, rng: AddrRange, pending: _Pending) -> bool:
        passed = pending.charged
        if passed > self.starvation_bound:
            self.checker.starved(
                umem.name, f"{rng} was held back by the protocol across {passed} invalidations"
            )
            return True
        return False

    # --- helpers for protocols ----------------------------------------------------------

    def overlapping(self, rng: AddrRange) -> list[Umem]:
        """The regions in the tree overlapping `rng`, in address order.  Sync; the
        caller holds whatever guards the tree."""
        return [h.value for h in self.tree.overlapping(*rng.closed())]

    def all_umems(self) -> list[Umem]:
        return [h.value for h in self.tree]

    def region_key(self, umem: Umem) -> str:
        """The name the checker knows `umem`'s struct by (unique per registration, so a
        name reused after a deregistration is another object).  Sync."""
        entry = self._region_keys.get(id(umem))
        if entry is None or entry[0] is not umem:
            key = f"region {umem.name}#{len(self._region_keys)}"
            self._region_keys[id(umem)] = (umem, key)
            return key
        return entry[1]

    def tree_insert(self, umem: Umem, *, deferred: bool = False) -> None:
        """Put `umem` in the tree.  Checks its lifetime itself: a region already freed
        (deregistered) is a ``use-after-free``; an insert after the mm's release walk
        began, or by a task holding no ``mm_users`` reference, is an
        ``insert-after-release`` (the region is inserted all the same).  `deferred`: the
        protocol applies an insert it deferred earlier (``mn_itree_inv_end`` running the
        deferred list, possibly in the release walk itself): only the free is checked,
        as the request was checked when it was made (`note_insert_request`).  Sync; the
        caller holds what guards the tree."""
        key = self.region_key(umem)
        self.checker.used(key, "a region tree insert")
        if not deferred:
            self.note_insert_request(umem)
        umem.handle = self.tree.insert(*umem.range.closed(), umem)
        self._removed.discard(key)

    def note_insert_request(self, umem: Umem) -> None:
        """A protocol that defers an insert checks the request here when it is made: an
        ``insert-after-release`` if the mm's release walk began or the calling task
        holds no ``mm_users`` reference.  Sync."""
        key = self.region_key(umem)
        if self.mm.releasing or self.mm.is_dead:
            self.checker.inserted_after_release(key, "after the mm's release walk began")
        elif not self.mm.holds_user_ref():
            self.checker.inserted_after_release(
                key, "by a task holding no mm_users reference on the mm"
            )

    def tree_remove(self, umem: Umem) -> None:
        """Take `umem` out of the tree.  Checks its lifetime itself: a region already
        freed is a ``use-after-free``; one already removed (and not inserted since) is a
        ``double-free`` (a second ``interval_tree_remove`` of the node).  Sync."""
        key = self.region_key(umem)
        self.checker.used(key, "a region tree remove")
        if umem.handle is not None:
            self.tree.remove(umem.handle)
            umem.handle = None
            self._removed.add(key)
        elif key in self._removed:
            self.checker.removed_twice(key, "from the region tree")

    def is_in_tree(self, umem: Umem) -> bool:
        return umem.handle is not None

    async def zap(self, umem: Umem, rng: AddrRange, what: str) -> None:
        """Drop `umem`'s translations inside `rng`, under its mutex (the driver's
        ``invalidate_range`` + ``ib_umem_odp_unmap_dma_pages``).  The region is checked
        on entry and again once the mutex is granted: the acquire is a choice point, and a
        deregistration may run to its end while the caller waits there (a walk whose
        snapshot of the tree is stale), so the zap under the lock is a use of its own."""
        umem.touch(what)
        inside = umem.range.intersection(rng)
        if inside is None:
            return
        async with umem.mutex:
            if umem.released:  # (reads only what the freeing step writes)
                umem.touch(what)
            umem.table.zap(inside)

    async def update_device(self, umem: Umem, rng: AddrRange, pages: list[PinnedPage]) -> None:
        """Write `pages` into `umem`'s device page table: the commit's second half, after
        its check (``mmu_interval_read_retry`` said "no retry").  Call it with the commit's
        lock held (``umem.mutex`` for the ODP protocols).

        In the kernel this write is not atomic with the check: mlx5's
        ``mlx5r_umr_update_xlt`` (drivers/infiniband/hw/mlx5/umr.c, from
        ``mlx5_ib_update_xlt`` in odp.c ``pagefault_real_mr``) posts a UMR work request and
        *sleeps* until it completes, ``umem_mutex`` held.  So the model draws a labelled
        choice point, ``("fault", name, start, "update")``, between the check and the
        write: a party that takes the committer's lock is blocked there, and one that
        does not (an invalidate callback that sets the interval's seq and zaps without
        ``umem_mutex``) runs there, zapping a table not yet written, as it would in the
        kernel.  Blocks: only at that choice point (no lock taken)."""
        await rt.checkpoint(("fault", umem.name, rng.start, "update"))
        self.install(umem, pages)

    def install(self, umem: Umem, pages: list[PinnedPage]) -> None:
        """Store `pages` as `umem`'s translations.  Sync; the caller holds the lock the
        protocol commits under (``umem.mutex`` for the 2014 family).

        Atomic with whatever the caller did before it under that lock: a commit that
        checks its seq and then calls `install` has no choice point between the two, so
        the model then assumes every party that writes or zaps the table, or moves the
        seq, holds the committer's lock (an invalidate callback that skips it is not
        found).  The built-in protocols commit with `update_device`, which draws the
        device update's window (mlx5's sleeping UMR post); use it in a protocol of your
        own."""
        for page in pages:
            umem.table.install(page.vpn, page.frame_id, page.writable)

    def _require_mapped(self, rng: AddrRange) -> None:
        for vpn in rng.vpns():
            if self.mm.find_vma(vpn << PAGE_SHIFT) is None:
                raise InvalidArgument(f"MR {rng} is not inside a mapping: {vpn << PAGE_SHIFT:#x}")
