"""The invariant checker: shadow state fed by the mm, the device and the ODP core.

Contract
    A `Checker` is told about every change that matters (a frame freed, a translation
    installed or zapped, a DMA, a notifier count, a deregistration, a fault outcome) at the
    moment it happens, and records a `Violation` right then, with the step, the task and the
    addresses.  Violations are data (frozen attrs records), never log lines; nothing here
    raises unless the checker was built with ``raise_on_violation=True``.

    Kinds (DESIGN section 5):

    ``stale-translation``
        a frame is freed or replaced while a device translation still points to it; or a
        translation is installed to a frame the page table does not map at that address,
        or with more permission than the pte grants (the install-time check).
    ``stale-dma``
        the device reads or writes through a translation whose frame or permission no
        longer matches the page table.
    ``unbalanced-notifier``
        an invalidation end without its start: a per-region count that would go below 0.
    ``use-after-release``
        a callback or fault touches a region after its deregistration returned, or a fault
        succeeds after the mm was released.
    ``deadlock``
        blocked tasks and none runnable (recorded from the runtime's report).
    ``starvation``
        a fault retried, or kept waiting, past its bound (the model's own counters; a run
        past its step bound is no verdict, never starvation).
    ``use-after-free``
        a model object (the mm, a subscriber's state, a work item, anything the model
        frees through `Checker.freed`) is touched after it was freed.
    ``double-free``
        an object is freed twice, or unlinked twice from a structure (a region removed
        from the region tree a second time: `Checker.removed_twice`).
    ``insert-after-release``
        a subscriber or region is inserted into an mm whose release walk has begun, or by
        a task that holds no ``mm_users`` reference on it.
    ``lock-held-at-exit``
        a task finished while holding a lock, a read lock or an SRCU read section
        (lockdep's "lock held when returning to user space").
    ``double-queue``
        one work item queued while it is already queued elsewhere, or re-initialised
        while pending (the kernel's list corruption).
    ``sleep-in-nonblock``
        a task inside a subscriber's ``invalidate_range_start`` of a non-blockable range
        (``inv.blockable`` False: the OOM reaper's) entered a wait that may sleep -- a
        `odp_async.sync` acquire, ``Completion.wait``, ``WaitQueue.park`` -- instead of a
        trylock and `WouldBlock` (the kernel's contract; ``might_sleep``: recorded
        whether or not the wait would have blocked).  The object is the primitive.
    ``refcount-underflow``
        a reference count is put without a matching get: an ``mmput`` with no ``mmget``
        reference outstanding (it would drop the process's own ``mm_users`` reference,
        or take ``mm_users`` below 0), or an ``mmdrop`` that frees the mm while
        ``mm_users`` references remain (the kernel's "refcount_t: underflow;
        use-after-free").  Recorded at the put.
    ``spurious-fault-failure``
        the protocol gave up (``FaultAborted``) a fault on a registered region of a live
        mm: no deregistration and no release of the mm justifies the failure.  A fault
        that can never succeed is a broken protocol, and a scenario whose fault never
        reaches its race must not pass as clean.
    ``error``
        the code under test raised (an assertion of a test program, a misuse of a
        primitive by a protocol); recorded by the explorer, not by the feeders.

    Besides violations the checker keeps `events`: the semantic history (invalidation
    windows, fault attempts, installs, zaps, frees, warnings) that timelines draw.

Concurrency
    Sync only: every hook runs between two checkpoints of the calling task.

See also
    `odp_async.mm`, `odp_async.device`, `odp_async.odp` (the feeders); DESIGN section 5.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, MutableSequence, MutableSet
from typing import Final, Literal, cast

import attrs

__all__ = [
    "VIOLATION_KINDS",
    "Checker",
    "Event",
    "FrameId",
    "Violation",
    "ViolationKind",
]

ViolationKind = Literal[
    "stale-translation",
    "stale-dma",
    "unbalanced-notifier",
    "use-after-release",
    "deadlock",
    "starvation",
    "error",
    "use-after-free",
    "double-free",
    "insert-after-release",
    "lock-held-at-exit",
    "double-queue",
    "sleep-in-nonblock",
    "refcount-underflow",
    "spurious-fault-failure",
]
VIOLATION_KINDS: Final[tuple[ViolationKind, ...]] = (
    "stale-translation",
    "stale-dma",
    "unbalanced-notifier",
    "use-after-release",
    "deadlock",
    "starvation",
    "error",
    "use-after-free",
    "double-free",
    "insert-after-release",
    "lock-held-at-exit",
    "double-queue",
    "sleep-in-nonblock",
    "refcount-underflow",
    "spurious-fault-failure",
)

FrameId = tuple[int, int]
"""``(pfn, generation)``: a physical frame, and which use of it (bumped at every reuse)."""

PteView = tuple[int, int, bool]
"""What the page table maps at a page: ``(pfn, generation, writable)``."""


@attrs.frozen
class Violation:
    """One broken invariant: what, when (sim step; None in a live run, which numbers no
    steps), who (tasks), where (addresses)."""

    kind: ViolationKind
    step: int | None
    tasks: tuple[str, ...]
    addresses: tuple[int, ...]
    detail: str

    @property
    def sim_step(self) -> int:
        """`step`, for what sees only sim runs (shrinking, timelines).  Raises
        `ValueError` for a live run's violation, which has none."""
        if self.step is None:
            raise ValueError(f"a live run's violation has no step: {self.kind}")
        return self.step

    def describe(self) -> str:
        where = ", ".join(f"{a:#x}" for a in self.addresses)
        at = f" at {where}" if where else ""
        when = "live run" if self.step is None else f"step {self.step}"
        return f"{self.kind}{at} ({when}, {', '.join(self.tasks)}): {self.detail}"

    def __str__(self) -> str:
        return self.describe()


@attrs.frozen
class Event:
    """One entry of the semantic history.  `kind` is a short tag; `key` groups spans.

    Spans are pairs of events with the same `key` and kinds ``X-begin``/``X-end``
    (for instance ``invalidate-begin``/``invalidate-end``); other events are instants.
    """

    step: int
    task: str
    kind: str
    key: str
    detail: str
    address: int | None = None


def _nowhere() -> tuple[int | None, str]:
    return 0, "?"


def _no_pte(vpn: int) -> PteView | None:
    return None


def _always_live(frame: FrameId) -> bool:
    return True


@attrs.define(eq=False)
class Checker:
    """Shadow state and violation log.  Build one per run; the world wires the callables.

    `where` returns ``(step, task name)`` for the current moment (step None in a live
    run: it numbers no steps); `page_lookup` returns
    what the page table maps at a virtual page; `frame_live` tells whether a frame id is
    still allocated (not freed, not reused).
    """

    where: Callable[[], tuple[int | None, str]] = _nowhere
    page_lookup: Callable[[int], PteView | None] = _no_pte
    frame_live: Callable[[FrameId], bool] = _always_live
    raise_on_violation: bool = False
    record_events: bool = True
    #: Set when the run stopped: what its unwinding does is not recorded.
    closed: bool = False
    # The containers: plain ones by default; `odp_async.world.World` passes tracked ones
    # (`odp_async.tracked`, which sits above this module) so DPOR sees their accesses.
    violations: MutableSequence[Violation] = attrs.field(factory=list)
    events: MutableSequence[Event] = attrs.field(factory=list)
    # (table, vpn) -> (frame, writable): every device translation that exists right now.
    _translations: MutableMapping[tuple[str, int], tuple[FrameId, bool]] = attrs.field(
        factory=dict
    )
    # frame -> the translations pointing at it (insertion-ordered for determinism).
    _by_frame: MutableMapping[FrameId, MutableMapping[tuple[str, int], None]] = attrs.field(
        factory=dict
    )
    _released_tables: MutableMapping[str, None] = attrs.field(factory=dict)
    _mm_released: bool = False
    _seen: MutableSet[tuple[str, tuple[str, ...], tuple[int, ...], str]] = attrs.field(factory=set)
    # object name -> why it was freed (lifetime checks, `freed` / `used`).
    _freed: MutableMapping[str, str] = attrs.field(factory=dict)

    # --- recording ------------------------------------------------------------------

    def violation(
        self,
        kind: ViolationKind,
        detail: str,
        addresses: tuple[int, ...] = (),
        tasks: tuple[str, ...] | None = None,
        step: int | None = None,
    ) -> Violation | None:
        """Record a violation now (each distinct one once).  Sync."""
        if self.closed:
            return None
        now, task = self.where()
        step = now if step is None else step
        who = tasks if tasks is not None else (task,)
        key = (kind, who, addresses, detail)
        if key in self._seen:
            return None
        self._seen.add(key)
        v = Violation(kind, step, who, addresses, detail)
        self.violations.append(v)
        self.event("violation", kind, v.describe(), addresses[0] if addresses else None)
        if self.raise_on_violation:
            from .errors import InvariantViolation

            raise InvariantViolation(v.describe())
        return v

    def event(self, kind: str, key: str, detail: str, address: int | None = None) -> None:
        """Append to the semantic history (no-op unless ``record_events``).  Sync."""
        if self.record_events and not self.closed:
            step, task = self.where()
            self.events.append(Event(step or 0, task, kind, key, detail, address))

    def kinds(self) -> list[ViolationKind]:
        """The kinds recorded so far, in order, without repeats."""
        return list(dict.fromkeys(v.kind for v in self.violations))

    @property
    def first(self) -> Violation | None:
        return self.violations[0] if self.violations else None

    # --- fed by the mm ----------------------------------------------------------------

    def frame_freed(self, frame: FrameId, why: str) -> None:
        """The mm freed (or replaced and dropped) `frame`.  Stale if translated."""
        users = self._by_frame.get(frame)
        if users:
            table, vpn = next(iter(users))
            self.violation(
                "stale-translation",
                f"{_fr(frame)} was {why} while {table} still translates {vpn << 12:#x} to it",
                (vpn << 12,),
            )

    def mm_released(self) -> None:
        self._mm_released = True
        self.event("mm-release", "mm", "the address space was released")

    @property
    def is_mm_released(self) -> bool:
        return self._mm_released

    # --- fed by the device ------------------------------------------------------------

    def translation_installed(self, table: str, vpn: int, frame: FrameId, writable: bool) -> None:
        """A translation ``table[vpn] -> frame`` appeared.  Checked against the page table."""
        key = (table, vpn)
        old = self._translations.get(key)
        if old is not None:
            self._drop(key, old[0])
        self._translations[key] = (frame, writable)
        by_frame = self._by_frame
        # A map of the same kind as the outer one: a tracked dict (noted per key) in a
        # world, not a plain one, whose reads would make a step unknown.
        fresh = cast("MutableMapping[tuple[str, int], None]", type(by_frame)())
        by_frame.setdefault(frame, fresh)[key] = None
        mode = "rw" if writable else "ro"
        self.event("install", table, f"{table}[{vpn << 12:#x}] -> {_fr(frame)} {mode}", vpn << 12)
        problem = self._mismatch(vpn, frame, writable)
        if problem is not None:
            self.violation(
                "stale-translation", f"{table} installed {vpn << 12:#x} -> {problem}", (vpn << 12,)
            )

    def translation_removed(self, table: str, vpn: int) -> None:
        key = (table, vpn)
        old = self._translations.pop(key, None)
        if old is not None:
            self._drop(key, old[0])
            self.event("zap", table, f"{table}[{vpn << 12:#x}] zapped", vpn << 12)

    def dma(self, table: str, vpn: int, write: bool) -> None:
        """The device accessed ``table[vpn]`` through its translation."""
        entry = self._translations.get((table, vpn))
        op = "write" if write else "read"
        self.event("dma", table, f"DMA {op} {table}[{vpn << 12:#x}]", vpn << 12)
        if entry is None:
            return
        frame, writable = entry
        if write and not writable:
            self.violation(
                "stale-dma",
                f"DMA write through the read-only translation {table}[{vpn << 12:#x}]",
                (vpn << 12,),
            )
            return
        problem = self._mismatch(vpn, frame, write)
        if problem is not None:
            self.violation(
                "stale-dma", f"DMA {op} of {table}[{vpn << 12:#x}] -> {problem}", (vpn << 12,)
            )

    # --- fed by the ODP core ------------------------------------------------------------

    def count_changed(self, table: str, name: str, value: int, rng: str) -> None:
        """A per-region count of running invalidations changed to `value`."""
        if value < 0:
            self.violation(
                "unbalanced-notifier",
                f"invalidate_range_end() for {rng} without a matching start: {table}.{name} "
                f"went to {value}",
            )

    def warning(self, key: str, detail: str) -> None:
        """Something the kernel would ``pr_warn`` about, that is not itself a violation."""
        self.event("warning", key, detail)

    def table_released(self, table: str) -> None:
        """`table`'s region finished deregistering: touching it from now on is a bug."""
        self._released_tables[table] = None

    def touched(self, table: str, what: str) -> None:
        """`what` touched `table`'s region; a use-after-release if it was deregistered."""
        if table in self._released_tables:
            self.violation("use-after-release", f"{what} touched {table} after its deregistration")

    def fault_succeeded(self, table: str, rng: str) -> None:
        if self._mm_released:
            self.violation(
                "use-after-release",
                f"a fault on {table} {rng} succeeded after the mm was released",
            )

    def fault_failed_spuriously(self, table: str, detail: str) -> None:
        """A fault on `table`'s region failed while the region was registered and the mm
        alive (`detail`: the range and the protocol's reason).  Sync."""
        self.violation("spurious-fault-failure", f"a fault on {table} {detail}")

    def starved(self, table: str, detail: str) -> None:
        self.violation("starvation", f"a fault on {table} {detail}")

    def deadlock(self, detail: str, tasks: tuple[str, ...], step: int) -> None:
        self.violation("deadlock", detail, tasks=tasks, step=step)

    # --- lifetime and pairing (fed by mm, workqueue, srcu, subscribers) ---------------

    def freed(self, obj: str, why: str) -> None:
        """`obj` (a model object's name, unique per world) was freed.  A second free is a
        ``double-free``.  Sync."""
        if obj in self._freed:
            self.violation("double-free", f"{obj} freed ({why}) after it was {self._freed[obj]}")
            return
        self._freed[obj] = why
        self.event("free", obj, f"{obj} freed: {why}")

    def used(self, obj: str, what: str) -> None:
        """`what` touched `obj`; a ``use-after-free`` if it was freed.  Sync."""
        why = self._freed.get(obj)
        if why is not None:
            self.violation("use-after-free", f"{what} touched {obj} after it was {why}")

    def removed_twice(self, obj: str, where: str) -> None:
        """`obj` was unlinked from `where` a second time (an ``interval_tree_remove`` or
        ``list_del`` of a node no longer linked: the kernel's corruption of a double
        free): a ``double-free``.  Sync."""
        self.violation("double-free", f"{obj} removed {where} twice")

    def is_freed(self, obj: str) -> bool:
        return obj in self._freed

    def refcount_underflow(self, obj: str, detail: str) -> None:
        """A reference to `obj` was put without a matching get (`detail` says which
        count and how).  Sync."""
        self.violation("refcount-underflow", f"{obj}: {detail}")

    def inserted_after_release(self, obj: str, detail: str) -> None:
        """`obj` was inserted into an mm that is being (or was) released.  Sync."""
        self.violation("insert-after-release", f"{obj} inserted {detail}")

    def lock_held_at_exit(self, task: str, what: str) -> None:
        """`task` finished while holding `what`.  Sync."""
        self.violation(
            "lock-held-at-exit", f"task {task} finished while holding {what}", tasks=(task,)
        )

    def double_queue(self, obj: str, detail: str) -> None:
        """`obj` was queued while already queued (or re-initialised while pending)."""
        self.violation("double-queue", f"{obj} {detail}")

    def slept_in_nonblock(self, primitive: str, detail: str) -> None:
        """The current task entered a wait on `primitive` inside a non-blockable
        invalidation's start (`detail`: whose start, which invalidation).  Sync."""
        self.violation("sleep-in-nonblock", f"{detail} may sleep on {primitive}")

    # --- internals --------------------------------------------------------------------

    def _drop(self, key: tuple[str, int], frame: FrameId) -> None:
        users = self._by_frame.get(frame)
        if users is not None:
            users.pop(key, None)
            if not users:
                del self._by_frame[frame]

    def _mismatch(self, vpn: int, frame: FrameId, writable: bool) -> str | None:
        if not self.frame_live(frame):
            return f"{_fr(frame)}, which has been freed"
        pte = self.page_lookup(vpn)
        if pte is None:
            return f"{_fr(frame)}, but the page table maps nothing there"
        if (pte[0], pte[1]) != frame:
            return f"{_fr(frame)}, but the page table maps {_fr((pte[0], pte[1]))}"
        if writable and not pte[2]:
            return f"{_fr(frame)} writable, but the pte is read-only"
        return None


def _fr(frame: FrameId) -> str:
    return f"frame {frame[0]}.{frame[1]}"
