"""An ODP memory region (``struct ib_umem_odp``): its range, lock, counters and translations.

Contract
    A `Umem` carries the per-region state every 2014-family protocol uses: `mutex`
    (``umem_mutex``), `count` (``notifiers_count``, running invalidations), `seq`
    (``notifiers_seq``, finished invalidations), `completion` (what retrying faults wait
    on), `dying` (set by ``release``), and `table` (its translations on the device).  A
    protocol may keep its own per-region state in `proto`.

    Lifecycle: registered -> deregistering (new faults refuse; in-flight faults drain)
    -> deregistered.  Once deregistered, any touch is reported as ``use-after-release``,
    checked at the point of use: `touch`, every grant of `mutex` (`RegionMutex`), every
    store to `count`, `seq`, `dying` or `proto`, and every write of `table`
    (`odp_async.device.TranslationTable`), so a region freed while its user waited at a
    lock, or anywhere after it took its pointer, is caught where the user goes on.

Concurrency
    `mutex` guards `count`, `seq`, `dying`, `completion` re-arming and `table`; `seq` is
    also read without it at the start of a fault (one atomic read, as in the kernel).

See also
    `odp_async.odp.ucontext`, `odp_async.odp.protocols`.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Awaitable
from typing import Any

import attrs

from ..addr import AddrRange
from ..check import Checker
from ..device import TranslationTable
from ..intervals import IntervalHandle
from ..sync import Completion, Mutex, WaitQueue
from ..tracked import tracked

__all__ = ["RegionMutex", "Umem", "UmemState"]


class UmemState(enum.Enum):
    REGISTERING = "registering"
    REGISTERED = "registered"
    DEREGISTERING = "deregistering"
    DEREGISTERED = "deregistered"


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class RegionMutex(Mutex):
    """``umem_mutex``: a `Mutex` that lives inside its region's struct.

    Taking it is a use of the region, checked where the lock is granted (after the
    acquire's choice point, and after any wait), not where the caller decided to take it:
    a region freed while its mutex's taker was held off (a tree walk that snapshotted the
    region, then waited at the lock, while a deregistration ran to completion) is a
    ``use-after-release`` at the grant (``mutex_lock`` on freed memory: umem_odp.c's
    ``umem_mutex`` is a field of ``struct ib_umem_odp``).  Same blocking, checkpoint and
    cancellation promises as `Mutex`."""

    #: Its region, weakly (the region holds its mutex: no reference cycle).
    region: weakref.ref[Umem] | None = attrs.field(default=None, kw_only=True)

    def acquire(self) -> Awaitable[None]:
        return self._acquire_in_region()

    async def _acquire_in_region(self) -> None:
        await Mutex.acquire(self)
        self._used()

    def acquire_nowait(self) -> None:
        Mutex.acquire_nowait(self)
        self._used()

    def _used(self) -> None:
        # reads `Umem.released` only (written once, by the step that frees the region),
        # so a grant conflicts with that step alone, not with every state change
        region = None if self.region is None else self.region()
        if region is not None and region.released:
            region.touch(f"mutex_lock({self.name})")


@tracked
@attrs.define(eq=False, repr=False)
class Umem:
    """One registered ODP region.  Built by `UContext.register_mr`, never directly."""

    name: str
    range: AddrRange
    table: TranslationTable
    checker: Checker
    writable: bool = True
    mutex: RegionMutex = attrs.field(init=False)
    completion: Completion = attrs.field(init=False)
    # `count`, `seq`, `dying` and `proto` are properties over these: a store is checked
    # (`_stored`), and still made with the plain ``object.__setattr__`` (so a store that
    # leaves a field as it was stays a read for DPOR: `odp_async.tracked`)
    _count: int = attrs.field(default=0, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _dying: bool = attrs.field(default=False, init=False)
    _proto: Any = attrs.field(default=None, init=False)
    state: UmemState = UmemState.REGISTERING
    #: The struct was freed (`UContext.deregister_mr`'s end, with ``DEREGISTERED``).
    released: bool = False
    #: Its entry in the context's interval tree, while it is in the tree.
    handle: IntervalHandle[Umem] | None = None
    _faults: int = 0
    _faults_drained: WaitQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.mutex = RegionMutex(f"{self.name}.umem_mutex", region=weakref.ref(self))
        self.completion = Completion(f"{self.name}.completion")
        self._faults_drained = WaitQueue(f"{self.name} in-flight faults")

    def _stored(self, field: str) -> None:
        # a store into the region's struct is a use of it, checked where it is made;
        # reads only `released` (written by the freeing step alone)
        if self.released:
            self.touch(f"a store to its {field}")

    @property
    def count(self) -> int:
        """Running invalidations (may go negative only in a protocol that does not
        clamp).  A store after the region's free is a ``use-after-release``."""
        return self._count

    @count.setter
    def count(self, value: int) -> None:
        self._stored("count")
        self._count = value

    @property
    def seq(self) -> int:
        """Finished invalidations.  A store after the free is a ``use-after-release``."""
        return self._seq

    @seq.setter
    def seq(self, value: int) -> None:
        self._stored("seq")
        self._seq = value

    @property
    def dying(self) -> bool:
        """Set by ``release``.  A store after the free is a ``use-after-release``."""
        return self._dying

    @dying.setter
    def dying(self, value: bool) -> None:
        self._stored("dying")
        self._dying = value

    @property
    def proto(self) -> Any:
        """Protocol-private per-region state.  A store after the free is a
        ``use-after-release``."""
        return self._proto

    @proto.setter
    def proto(self, value: Any) -> None:
        self._stored("proto")
        self._proto = value

    def __repr__(self) -> str:
        return (
            f"<Umem {self.name} {self.range} {self.state.value} count={self.count} seq={self.seq}>"
        )

    @property
    def is_live(self) -> bool:
        return self.state in (UmemState.REGISTERED, UmemState.REGISTERING)

    def touch(self, what: str) -> None:
        """Report an access by `what`; a use-after-release once deregistered.  Sync."""
        if self.state is UmemState.DEREGISTERED:
            self.checker.touched(self.name, what)

    def set_count(self, value: int, rng: AddrRange) -> None:
        """Set `count` and let the checker see it (a negative value is unbalanced)."""
        self.count = value
        self.checker.count_changed(self.name, "notifiers_count", value, str(rng))

    def fault_enter(self) -> bool:
        """A fault starts on this region: False if it is being deregistered.  Sync."""
        if self.state is not UmemState.REGISTERED:
            return False
        self._faults += 1
        return True

    def fault_exit(self) -> None:
        self._faults -= 1
        if self._faults == 0:
            self._faults_drained.wake_all()

    async def drain_faults(self) -> None:
        """Wait until no fault runs on this region (mlx5's srcu on MR lookups)."""
        while self._faults:
            await self._faults_drained.park()
