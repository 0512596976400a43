"""Synchronization primitives written once, parked by whichever runtime runs the task.

Contract
    `WaitQueue`, `Mutex`, `RWLock` (with `downgrade`), `Completion` and `SlotPool` keep
    their policy here: who holds, who waits, who is woken, in what order.  Parking and
    waking go through the runtime seam, so each primitive works on trio, on asyncio and
    under the sim runtime, where every acquire is a choice point.

    Every blocking method has the same shape and the same promises (trio's contract):

    - *Checkpoint*: always, unless the primitive was built with ``fast_acquire=True`` and
      was free.  Then a live runtime does not yield (like anyio's ``fast_acquire``): on
      trio a cancelled task is still refused (trio's check is cheap), on asyncio it is
      granted the primitive (as with ``asyncio.Lock``).  The sim ignores the flag: every
      acquire stays a choice point.
    - *Blocks*: while the policy says no, in FIFO order (hand-off: a release gives the
      primitive straight to the first waiter, so a newcomer cannot barge in).
    - *Cancellation*: the call raises and leaves no trace: the task is out of the queue,
      holds nothing it did not hold before, and a wake that was already handed to it is
      passed on to the next waiter (never lost).  Woken first, then cancelled before it
      runs, a task is not cancelled in the call: on trio (and in the sim, which follows
      it) the call returns the wake (the task holds the lock, takes the completion) and
      the cancellation comes at its next checkpoint, as with anyio on asyncio; only
      native asyncio cancellation (``task.cancel()``, ``asyncio.timeout``) raises out of
      the call then, and the wake is passed on as above (a ``wake_all``'s to nobody).

    Each blocking method has a ``*_nowait`` twin that raises `WouldBlock`, and each
    primitive a `statistics()` method returning a frozen record.  Under the sim every
    public method and property that reads a primitive's state (``locked()``, ``owner``,
    ``free``, `statistics()`, ``repr``, ``len``...) notes a read of it in the running
    step's footprint, and every one that changes it a write, so DPOR and sleep sets see
    a peek at a primitive as they see its acquire (`tests/test_sync_noted_surface.py`
    checks the whole public surface).  `describe_wait` is the runtime's (deadlock reports
    and step labels) and notes nothing.  Sync methods (release,
    `downgrade`, `complete`, the ``*_nowait`` twins) never checkpoint.  Misuse (releasing
    what the task does not hold, re-acquiring a held mutex) raises `ProtocolViolation`
    naming the primitive and the task; except that under the sim a blocking re-acquire
    of a held `Mutex` (or of an `RWLock` its task holds for writing, or an upgrade from
    read) blocks for good, as the kernel's would, so the run ends in a deadlock report
    naming the lock ("recursive locking").

    Inside ``with no_sleep(hook):`` the calling task must not sleep: each blocking method
    it enters there calls ``hook(primitive)`` first, whether or not it would actually
    block (the kernel's ``might_sleep``), then goes on as usual.

Concurrency
    Single-threaded per event loop, as anyio primitives: state is changed only by sync
    code between two checkpoints, so no lock protects the state itself.  Invariants are
    written beside each class's fields and checked by its ``_check_invariants()``.

See also
    `odp_async._runtime` (the seam), `odp_async._runtime.sim` (deadlock reports use each
    primitive's `describe_wait`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from threading import get_ident
from typing import Any, ClassVar, Final

import attrs

from ._runtime import Waiter, current_runtime
from ._runtime._base import _LIVE_HERE, RUNTIME_VAR, live_here, new_waiter
from ._runtime.footprint import FieldOf, GateOpened, ReadOf
from .errors import InvalidArgument, ProtocolViolation, WouldBlock

__all__ = [
    "Completion",
    "CompletionStatistics",
    "Condition",
    "ConditionStatistics",
    "MAX_POOL_SIZE",
    "Mutex",
    "MutexStatistics",
    "RWLock",
    "RWLockStatistics",
    "SlotPool",
    "SlotPoolStatistics",
    "WaitQueue",
    "WaitQueueStatistics",
    "no_sleep",
]

#: ``RUNTIME_VAR.get``, bound once (set by the sim only): every acquire, release and note
#: asks it (no method lookup on the variable per call).
_runtime_in_effect: Final = RUNTIME_VAR.get
#: ``_LIVE_HERE.get``, bound once: `Mutex`'s live acquire and release ask it.
_live_here_get: Final = _LIVE_HERE.get
#: ``object.__new__``: a contended live acquire builds its `Waiter` without ``__init__``.
_new_object: Final = object.__new__

# What a `_try` returns when the operation would block (any other value is the grant).
_BLOCK: Final = object()

_READ: Final = 1
_WRITE: Final = 2
_ONE: Final = "one"  # a Completion wake that consumed one complete()
_ALL: Final = "all"  # a Completion wake from complete_all(): nothing to give back


# The no-sleep section the running task is in (`no_sleep`): (that task, its hook).  A
# context variable, so it is per task; the task is kept because a child spawned inside
# the section inherits the context but not the rule.
_NO_SLEEP: Final[ContextVar[tuple[object, Callable[[object], None]] | None]] = ContextVar(
    "odp_async.sync.no_sleep", default=None
)
#: ``_NO_SLEEP.get``, bound once: `Mutex`'s live acquire asks it.
_no_sleep_get: Final = _NO_SLEEP.get


@contextlib.contextmanager
def no_sleep(hook: Callable[[object], None]) -> Iterator[None]:
    """Inside the ``with`` block the current task must not sleep: every blocking method
    of a primitive here (`Mutex.acquire`, `RWLock` acquires, `Completion.wait`,
    `WaitQueue.park`, `SlotPool` and `Condition` waits) that the task enters calls
    ``hook(primitive)`` before it goes on, blocked or not (the kernel's ``might_sleep``).
    Sections nest: the innermost hook is called.  Other tasks are not affected.  Sync."""
    token = _NO_SLEEP.set((current_runtime().current_task(), hook))
    try:
        yield
    finally:
        _NO_SLEEP.reset(token)


def _note(primitive: object, event: str | None = None) -> None:
    # A state change outside any acquire: part of the running sim step's footprint.
    rt = _runtime_in_effect(None)
    if rt is not None:
        rt.note(primitive, event)


def reveal_tasks(tasks: tuple[object, ...]) -> tuple[object, ...]:
    """Tasks handed to the program (an owner, the holders): under the sim it can now tell
    them apart (`odp_async._runtime.Runtime.reveal`).  Returns `tasks`.  Sync."""
    rt = _runtime_in_effect(None)
    if rt is not None:
        for task in tasks:
            rt.reveal(task)
    return tasks


def _note_read(primitive: object) -> None:
    # ``_note(ReadOf(primitive))``, building the `ReadOf` only when the sim run records
    # notes (`SimRuntime.keeps_notes`; only the sim sets the variable): for hot paths.
    rt: Any = _runtime_in_effect(None)
    if rt is not None and rt.keeps_notes:
        rt.note(ReadOf(primitive))


def _noted_task(primitive: object, event: str | None = None) -> object:
    # The current task, noting `primitive` (and `event`, for the trace) in the sim step
    # on the way: one runtime lookup for both, as this is the hot path of every release.
    rt = _runtime_in_effect(None)
    if rt is None:
        return live_here()[1]
    rt.note(primitive, event)
    return rt.current_task()


def _count(n: int, noun: str) -> str:
    # "1 task waits", "2 tasks wait"
    return f"{n} {noun} waits" if n == 1 else f"{n} {noun}s wait"


def _on_the_loop_s_thread(queue: WaitQueue) -> None:
    # Live, a wake of a parked task must come from its loop's thread: `live_here` raises
    # `ProtocolViolation` elsewhere, before anything is taken out of `queue` (trio's
    # reschedule would raise after, and the wake would be lost; an asyncio future is
    # not thread-safe).  Nobody parked, or under the sim: nothing to check.
    if queue._waiters and _runtime_in_effect(None) is None:
        live_here()


def _tried(primitive: object, event: str | None, got: object) -> object:
    # A trylock's trace note, taken after the attempt: the hold's `event` if it got the
    # primitive, else ``try-<event>-failed`` (a failed attempt, not a hold).  Returns `got`.
    rt = _runtime_in_effect(None)
    if rt is not None and event is not None:
        rt.note(primitive, event if got is not _BLOCK else f"try-{event}-failed")
    return got


def _check_name(name: object) -> str | None:
    if name is not None and not isinstance(name, str):
        raise InvalidArgument(f"name must be a str or None, got {name!r} ({type(name).__name__})")
    return name


def _label(kind: str, name: str | None) -> str:
    return f"{kind} {name!r}" if name else kind


class _Blocking:
    """The shape every blocking operation shares.  Subclasses supply the policy:

    - ``_try(task, kind)``: the grant if the operation can complete now, else `_BLOCK`;
    - ``_give_back(task, kind, grant)``: undo a grant the task will not keep (it was
      cancelled after the grant was made);
    - ``_queue``: the `WaitQueue` where the task parks otherwise.
    """

    __slots__ = ()
    _queue: WaitQueue
    fast_acquire: bool
    #: In the sim, a choice point before the attempt.  False for a bare `WaitQueue`, whose
    #: callers check a condition and park with no yield in between.
    _choice_point_first: bool = True
    #: True when a granted attempt notes its own footprint (`_note_grant`), finer than a
    #: write of the primitive; read by `odp_async._runtime.footprint.declared_footprint`,
    #: which then declares only a read of the primitive for the attempt's step (under the
    #: noted-only promise).  A refused attempt notes a write (it parks).
    attempt_notes_itself: ClassVar[bool] = False

    def _note_grant(self, rt: Any, task: object, kind: int, got: object) -> None:
        rt.note(self, self._hold_event(kind))

    def _try(self, task: object, kind: int) -> object:
        raise NotImplementedError

    def _give_back(self, task: object, kind: int, grant: object) -> None:
        raise NotImplementedError

    def _holds_against(self, task: object, kind: int) -> bool:
        """Would `task` wait on itself for this (a recursive lock)?  The sim then parks
        it for good, where a live runtime's `_try` raises `ProtocolViolation`."""
        return False

    def _hold_event(self, kind: int) -> str | None:
        """The trace event of a grant of this kind ("acquire"...), None if not a hold."""
        return None

    async def _blocking(self, kind: int) -> Any:
        rt = _runtime_in_effect(None)  # set by the sim only
        if rt is None:
            # `live_here`, its cache check inlined: the hot path of every live acquire
            here = _LIVE_HERE.get()
            if here is not None and here[2](here[3]) is here[0][1] and here[1] == get_ident():
                rt, task = here[0]
            else:
                rt, task = live_here()
        else:
            task = rt.current_task()
        section = _NO_SLEEP.get()  # `no_sleep` (might_sleep), inline: every acquire pays it
        if section is not None and section[0] is task and not getattr(self, "spins", False):
            section[1](self)
        if rt.is_sim:
            # The choice point goes before the attempt, so the chooser may let another
            # task take the primitive first.
            if self._choice_point_first:
                await rt.checkpoint(self)
            # A recursive acquire parks for good, as in the kernel: a deadlock report
            # naming the lock ("recursive locking"), not an error.
            got = _BLOCK if self._holds_against(task, kind) else self._try(task, kind)
            if got is not _BLOCK:
                if self.attempt_notes_itself:
                    self._note_grant(rt, task, kind, got)
                else:  # the base `_note_grant`, inlined: every sim acquire passes here
                    rt.note(self, self._hold_event(kind))
                return got
            # The refused attempt read the primitive (and the park changes its queue):
            # part of the step, so a step that lets it through later conflicts with it.
            rt.note(self)
        else:
            # Granted: a cancelled task gives the grant straight back (no other task ran
            # in between, so nobody saw it), then the yield.  Refused: the park below is
            # itself the cancellable checkpoint.
            got = self._try(task, kind)
            if got is not _BLOCK:
                try:
                    if rt.checkpoint_if_cancelled is not None:
                        await rt.checkpoint_if_cancelled()
                    if not self.fast_acquire:
                        await rt.yield_after_grant()
                except BaseException:
                    self._give_back(task, kind, got)
                    raise
                return got
        queue = self._queue
        w = new_waiter(rt, task, queue, kind)
        queue._waiters[w] = None
        try:
            granted = await rt.park(w)
        except BaseException:
            if w.woken:
                self._give_back(task, w.kind, w.value)  # `_WOKEN_BY_ALL` after a wake_all
                rt.note(self, "release" if self._hold_event(kind) else None)
            else:
                queue._discard(w)
                rt.note(self)  # the queue changed (an `RWLock` may let readers in)
            raise
        if rt.is_sim:
            rt.note(self, self._hold_event(kind))
        return granted


#: The kind a `WaitQueue.wake_all` gives the waiters it wakes (a waiter's own kind, a
#: lock's read or write, is never negative): see `WaitQueue._give_back`.
_WOKEN_BY_ALL = -1


@attrs.frozen
class WaitQueueStatistics:
    tasks_waiting: int


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class WaitQueue(_Blocking):
    """A FIFO of parked tasks: the building block of every primitive here.

    `park()` blocks until a `wake_one()`/`wake_all()` reaches this task; wakes go in
    arrival order.  A bare queue has no memory: a wake with nobody parked is dropped
    (use `Completion` to remember it).

    Invariant: every waiter in the queue is not yet woken; a woken waiter is out of it.
    """

    name: str | None = attrs.field(default=None, converter=_check_name)
    # The primitive this queue belongs to, or a weak reference to it when the owner holds
    # the queue itself (no owner <-> queue reference cycle); read it as `_owner`.
    _owner_ref: Any = attrs.field(default=None, kw_only=True, alias="owner")
    # Insertion-ordered: the first key is the longest waiter.  Values unused.
    _waiters: dict[Waiter, None] = attrs.field(init=False, factory=dict)

    def __len__(self) -> int:
        """How many tasks are parked.  A noted read of the queue."""
        _note(ReadOf(self))
        return len(self._waiters)

    def __repr__(self) -> str:
        _note(ReadOf(self))
        return f"<{_label('WaitQueue', self.name)} waiting={len(self._waiters)}>"

    _choice_point_first = False
    fast_acquire = False

    @property
    def _queue(self) -> WaitQueue:  # type: ignore[override]
        # A bare queue parks its waiters in itself (a property: no reference to itself).
        return self

    @property
    def _owner(self) -> Any:
        owner = self._owner_ref
        return owner() if type(owner) is weakref.ReferenceType else owner

    @property
    def wait_woken_by_anyone(self) -> bool:
        """A queue given its owner by the caller (not held by a primitive of its own):
        any task that has the queue may end a wait with `wake_one`/`wake_all`, whatever
        the owner's holders do; the runtime's early stop of a partial deadlock asks."""
        owner = self._owner_ref
        return owner is not None and type(owner) is not weakref.ReferenceType

    def park(self) -> Awaitable[object]:
        """Block until woken; return the value given to the wake.

        Blocks: until `wake_one` or `wake_all` picks this task; nothing runs between the
        call and the park, so a caller may check a condition and then park without
        missing a wake.  Checkpoint: always.  Cancellation: the task leaves the queue; if
        a `wake_one` had already picked it, the wake is passed on to the next parked task
        (a `wake_all`'s is not: it reached every task parked then).  A wake reaches a
        cancelled task only live on asyncio, where a task cancelled while parked leaves
        the queue when it next runs, and native cancellation (``task.cancel()``) may
        come after the wake; on trio and in the sim a task cancelled while parked leaves
        the queue at once, and a woken task returns the wake and is cancelled at its
        next checkpoint.
        """
        return self._blocking(0)

    def wake_one(self, value: object = None) -> bool:
        """Wake the longest-parked task with `value`.  Sync.  False if nobody was parked."""
        _on_the_loop_s_thread(self)
        w = self._pop()
        if w is None:
            # Nobody parked: the wake read the queue and changed nothing (two such wakes
            # commute; a park, a write, still conflicts with it).
            _note_read(self)
            return False
        _note(self)
        self._hand(w, value)
        return True

    def wake_all(self, value: object = None) -> int:
        """Wake every parked task with `value`.  Sync.  Returns how many were woken."""
        if not self._waiters:
            _note_read(self)  # nobody parked: a read, as in `wake_one`
            return 0
        _on_the_loop_s_thread(self)
        _note(self)
        waiters = list(self._waiters)
        self._waiters.clear()
        for w in waiters:
            w.kind = _WOKEN_BY_ALL  # its task, if cancelled before it runs, passes nothing on
            self._hand(w, value)
        return len(waiters)

    def statistics(self) -> WaitQueueStatistics:
        """How many tasks are parked.  A noted read of the queue."""
        _note(ReadOf(self))
        return WaitQueueStatistics(len(self._waiters))

    # --- for the primitives built on it ------------------------------------------------

    def _try(self, task: object, kind: int) -> object:
        return _BLOCK

    def _give_back(self, task: object, kind: int, grant: object) -> None:
        # A wake_one's wake this task will not use goes to the next one.  A wake_all's
        # reached every task parked then: passed on, it would wake one that parked after.
        if kind != _WOKEN_BY_ALL:
            self.wake_one(grant)

    def _first(self) -> Waiter | None:
        for w in self._waiters:
            return w
        return None

    def _pop(self) -> Waiter | None:
        for w in self._waiters:
            del self._waiters[w]
            return w
        return None

    @staticmethod
    def _hand(w: Waiter, value: object) -> None:
        w.woken = True
        w.value = value
        w.runtime.wake(w, value)

    def _discard(self, waiter: Waiter) -> None:
        # A waiter leaves without being woken (cancelled): the owner may now admit others.
        if waiter not in self._waiters:
            return
        del self._waiters[waiter]
        left = getattr(self._owner, "_waiter_left", None)
        if left is not None:
            left()

    @property
    def wait_needs_any(self) -> bool:
        """Does a waiter need only one holder to let go (a pool), not every holder?"""
        return bool(getattr(self._owner, "wait_needs_any", False))

    @property
    def wait_is_completion(self) -> bool:
        """Does a waiter wait for some task to *complete* it (no holder to name)?"""
        return bool(getattr(self._owner, "wait_is_completion", False))

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        if self._owner is not None:
            d: tuple[str, tuple[object, ...]] = self._owner.describe_wait()
            return d
        return _label("WaitQueue", self.name), ()

    def waits_behind(self, waiter: Waiter) -> tuple[object, ...]:
        """For deadlock reports: the queued tasks `waiter` must let go first (its owner's
        answer, e.g. an `RWLock`'s writers queued before it; none for a bare queue)."""
        behind = getattr(self._owner, "waits_behind", None)
        return () if behind is None else tuple(behind(waiter))


def _task_name(task: object) -> str:
    try:
        return current_runtime().task_name(task)
    except ProtocolViolation:
        return repr(task)


@attrs.frozen
class MutexStatistics:
    locked: bool
    owner: object | None
    tasks_waiting: int


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class Mutex(_Blocking):
    """A mutual-exclusion lock that knows its owner (kernel ``struct mutex``).

    Not reentrant: acquiring it again from the owner raises `ProtocolViolation` on a
    live runtime instead of deadlocking; under the sim the owner blocks on itself, as a
    kernel mutex would, and the run is reported as a deadlock naming the lock ("recursive
    locking").  `acquire_nowait` raises on every runtime.  Releasing it from another task
    raises too.  FIFO hand-off.

    ``spins=True`` models a spinlock (``spinlock_t``): held only for short sync work, it
    may be taken where sleeping is forbidden, so `no_sleep` does not flag its acquire.

    Invariant: ``_owner is None`` implies the queue is empty.
    """

    name: str | None = attrs.field(default=None, converter=_check_name)
    fast_acquire: bool = attrs.field(default=False, kw_only=True)
    spins: bool = attrs.field(default=False, kw_only=True)
    _owner: object | None = attrs.field(init=False, default=None)
    _queue: WaitQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._queue = WaitQueue(self.name, owner=weakref.ref(self))

    def __repr__(self) -> str:
        _note(ReadOf(self))
        return self._text()

    def _text(self) -> str:
        # The repr, not noted (for messages of steps that note the lock already).
        state = "locked" if self._owner is not None else "unlocked"
        return f"<{_label('Mutex', self.name)} {state} waiting={len(self._queue._waiters)}>"

    def acquire(self) -> Awaitable[None]:
        """Take the lock.

        Blocks: while another task holds it (under the sim, for good if the current task
        holds it: a self-deadlock).  Checkpoint: always (see module docstring for
        ``fast_acquire``).  Cancellation: not acquired, out of the queue.
        Raises: `ProtocolViolation` if the current task already holds it (live runtimes).
        """
        if _runtime_in_effect(None) is None:
            return self._acquire_live()
        return self._blocking(0)

    async def _acquire_live(self) -> None:
        # `_blocking`'s live path with the Mutex policy (`_try`, `_give_back`) inlined:
        # the hot path of a contended hand-off on trio and asyncio.  Same promises.
        here = _live_here_get()  # `live_here`, its cache check inlined
        if here is not None and here[2](here[3]) is here[0][1] and here[1] == get_ident():
            rt, task = here[0]
            make_future = here[4]
        else:
            rt, task = live_here()
            make_future = None
        section = _no_sleep_get()
        if section is not None and section[0] is task and not self.spins:
            section[1](self)
        owner = self._owner
        if owner is None:
            self._owner = task
            try:
                if rt.checkpoint_if_cancelled is not None:
                    await rt.checkpoint_if_cancelled()
                if not self.fast_acquire:
                    await rt.yield_after_grant()
            except BaseException:
                self._release()  # nobody saw the grant: give it straight back
                raise
            return
        if owner is task:
            self._try(task, 0)  # raises: not reentrant
        queue = self._queue
        w = _new_object(Waiter)  # `new_waiter(rt, task, queue, 0)`, inlined
        w.runtime = rt
        w.task = task
        w.queue = queue
        w.kind = 0
        w.cancellable = True
        w.woken = False
        w.value = None
        queue._waiters[w] = None
        try:
            if make_future is not None:
                # asyncio: `rt.park(w)` inlined, the future it would make parked on here
                # (`Runtime.future_maker`); `release` resolves it (`Runtime.wakes_future`)
                fut = w.handle = make_future()
                await fut
            else:
                w.handle = None  # until `park` sets it
                await rt.park(w)
        except BaseException:
            if w.woken:
                self._release()  # a hand-off this task will not use goes to the next
            else:
                queue._discard(w)
            raise

    def acquire_nowait(self) -> None:
        """Take the lock if it is free, else raise `WouldBlock`.  Sync."""
        if _tried(self, self._hold_event(0), self._try(_noted_task(self), 0)) is _BLOCK:
            raise WouldBlock(f"{self._text()} is held by {_task_name(self._owner)}")

    def release(self) -> None:
        """Release the lock, handing it to the longest waiter.  Sync.

        Raises: `ProtocolViolation` if the current task does not hold it.
        """
        # The hot path of every hand-off: `_noted_task` inlined.
        rt = _runtime_in_effect(None)
        if rt is None:
            # `live_here`, its cache check inlined
            here = _live_here_get()
            if here is not None and here[2](here[3]) is here[0][1] and here[1] == get_ident():
                task = here[0][1]
            else:
                task = live_here()[1]
        else:
            rt.note(self, "release")
            task = rt.current_task()
        if self._owner is not task:
            holder = "nobody" if self._owner is None else _task_name(self._owner)
            raise ProtocolViolation(
                f"release() of {_label('Mutex', self.name)} by task {_task_name(task)}, "
                f"which does not hold it (held by {holder})"
            )
        self._release()

    def locked(self) -> bool:
        """Is it held (by any task)?  Sync; a noted read of the lock."""
        _note(ReadOf(self))
        return self._owner is not None

    @property
    def owner(self) -> object | None:
        """The task holding it, or None.  A noted read of the lock."""
        _note(ReadOf(self))
        owner = self._owner
        if owner is not None:
            reveal_tasks((owner,))
        return owner

    def statistics(self) -> MutexStatistics:
        """Held, by whom, how many wait.  A noted read of the lock."""
        _note(ReadOf(self))
        if self._owner is not None:
            reveal_tasks((self._owner,))
        return MutexStatistics(self._owner is not None, self._owner, len(self._queue._waiters))

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def _try(self, task: object, kind: int) -> object:
        owner = self._owner
        if owner is None:
            self._owner = task
            return None
        if owner is task:
            raise ProtocolViolation(
                f"{_label('Mutex', self.name)} is already held by the current task "
                f"{_task_name(task)}; a Mutex is not reentrant"
            )
        return _BLOCK

    def _holds_against(self, task: object, kind: int) -> bool:
        return self._owner is task

    def _release(self) -> None:
        # The hot path of every hand-off: `_pop` and `_hand` inlined.
        waiters = self._queue._waiters
        if not waiters:
            self._owner = None
            return
        for w in waiters:  # noqa: B007 - the first: `next(iter(waiters))`, with no call
            break
        del waiters[w]
        self._owner = w.task
        w.woken = True
        w.value = None
        rt = w.runtime
        if rt.wakes_future:  # asyncio: `rt.wake` inlined, the future it parked on resolved
            fut: Any = w.handle
            if not fut.done():  # done: cancelled; the task passes the wake on
                fut.set_result(None)
        else:
            rt.wake(w, None)

    def _give_back(self, task: object, kind: int, grant: object) -> None:
        self._release()

    def _hold_event(self, kind: int) -> str | None:
        return "acquire"

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        holders = () if self._owner is None else reveal_tasks((self._owner,))
        return _label("Mutex", self.name), holders

    def _check_invariants(self) -> None:
        assert self._owner is not None or not len(self._queue._waiters), "free mutex with waiters"


@attrs.frozen
class RWLockStatistics:
    writer: object | None
    readers: tuple[object, ...]
    readers_waiting: int
    writers_waiting: int


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class RWLock(_Blocking):
    """A reader-writer lock with `downgrade` (kernel ``rw_semaphore``).

    Fairness: task-fair FIFO.  A newcomer, reader or writer, joins the queue whenever
    anybody is queued, so a stream of readers cannot starve a waiting writer.  A release
    grants the queue's head: a writer alone, or the whole run of consecutive readers at
    the head together, so a reader queued behind a writer gets in right after that writer,
    before any writer that queued later: writers cannot starve readers either.

    `downgrade()` turns the current task's write hold into a read hold in one sync step
    (``downgrade_write``): no other writer can get in between, and the readers at the
    head of the queue are let in with it.

    Read locks nest, as ``down_read`` does: a reader may take the read lock again, and
    must release it as many times.  Like the kernel's rwsem, a nested read queues behind a
    waiting writer, which deadlocks (the sim reports it; lockdep warns about it).  A writer
    asking for the lock again, or a reader asking to write (no upgrade), gets
    `ProtocolViolation` on a live runtime; under the sim it blocks on itself, as the
    kernel's would, and the run is reported as a deadlock naming the lock.

    Invariants: ``_writer`` and ``_readers`` are never both set; if nobody holds the
    lock, the queue is empty; the queue's head is a writer while readers hold (a reader
    at the head would have been let in).
    """

    #: Footprints (under the sim): the lock's writer and queue are the lock itself; each
    #: task's read hold is its own part, ``FieldOf(lock, ("reader", task id))``.  A
    #: granted read, or a read release that lets nobody in, reads the lock and writes
    #: only the task's part, so such steps of two tasks commute (the set of readers is
    #: the same in either order; only the order `readers` lists them in differs, which
    #: is why `readers` and the reports that list them count as writes of the lock).
    #: Everything else (a write acquire or release, a park, a release that lets a
    #: waiter in, a trylock) writes the lock, so it conflicts with every reader step.
    attempt_notes_itself: ClassVar[bool] = True

    name: str | None = attrs.field(default=None, converter=_check_name)
    fast_acquire: bool = attrs.field(default=False, kw_only=True)
    _writer: object | None = attrs.field(init=False, default=None)
    # reader task -> how many times it holds the read lock (>= 1)
    _readers: dict[object, int] = attrs.field(init=False, factory=dict)
    _queue: WaitQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._queue = WaitQueue(self.name, owner=weakref.ref(self))

    def __repr__(self) -> str:
        # Shows how many read: under the sim a write of the lock, as `readers` is.
        _note(self)
        return self._text()

    def _text(self) -> str:
        # The repr, not noted (for messages of steps that note the lock already).
        if self._writer is not None:
            state = "write-locked"
        elif self._readers:
            state = f"read-locked by {len(self._readers)}"
        else:
            state = "unlocked"
        return f"<{_label('RWLock', self.name)} {state} waiting={len(self._queue._waiters)}>"

    def acquire_read(self) -> Awaitable[None]:
        """Take the lock shared (``down_read``).

        Blocks: while a writer holds it or anybody is queued (a nested read too: see the
        class docstring).  Checkpoint: always.
        Cancellation: not acquired, out of the queue, a hand-off passed on.
        Raises: `ProtocolViolation` if the current task holds it for writing (live; the
        sim parks it for good: a deadlock report).
        """
        return self._blocking(_READ)

    def acquire_write(self) -> Awaitable[None]:
        """Take the lock exclusive (``down_write``).

        Blocks: while anybody holds it or is queued.  Checkpoint: always.
        Cancellation: not acquired, out of the queue, a hand-off passed on.
        Raises: `ProtocolViolation` if the current task already holds it.
        """
        return self._blocking(_WRITE)

    def acquire_read_nowait(self) -> None:
        """Take the lock shared now, or raise `WouldBlock`.  Sync."""
        if _tried(self, "acquire-read", self._try(_noted_task(self), _READ)) is _BLOCK:
            raise WouldBlock(f"{self._text()} cannot be read-locked now")

    def acquire_write_nowait(self) -> None:
        """Take the lock exclusive now, or raise `WouldBlock`.  Sync."""
        if _tried(self, "acquire-write", self._try(_noted_task(self), _WRITE)) is _BLOCK:
            raise WouldBlock(f"{self._text()} cannot be write-locked now")

    def try_acquire_read(self) -> bool:
        """``down_read_trylock``: True if the lock was taken shared.  Sync."""
        return _tried(self, "acquire-read", self._try(_noted_task(self), _READ)) is not _BLOCK

    def try_acquire_write(self) -> bool:
        """``down_write_trylock``: True if the lock was taken exclusive.  Sync."""
        got = self._try(_noted_task(self), _WRITE)
        return _tried(self, "acquire-write", got) is not _BLOCK

    def release_read(self) -> None:
        """``up_read``.  Sync.  Raises `ProtocolViolation` if the task holds no read lock."""
        rt = _runtime_in_effect(None)
        task = live_here()[1] if rt is None else rt.current_task()
        readers = self._readers
        held = readers.get(task)
        if held is not None:
            if held > 1:
                readers[task] = held - 1
            else:
                del readers[task]
                if not readers and self._queue._waiters:
                    if rt is not None:
                        rt.note(self, "release")  # lets a waiter in: a write
                    self._grant()
                    return
            if rt is not None:
                self._note_reader(rt, task, "release")
            return
        if rt is not None:
            rt.note(self, "release")
        raise ProtocolViolation(
            f"release_read() of {_label('RWLock', self.name)} by task {_task_name(task)}, "
            f"which does not hold it for reading ({self._holder_text()})"
        )

    def release_write(self) -> None:
        """``up_write``.  Sync.  Raises `ProtocolViolation` if the task is not the writer."""
        task = _noted_task(self, "release")
        if self._writer is not task:
            raise ProtocolViolation(
                f"release_write() of {_label('RWLock', self.name)} by task "
                f"{_task_name(task)}, which does not hold it for writing ({self._holder_text()})"
            )
        self._writer = None
        self._grant()

    def downgrade(self) -> None:
        """``downgrade_write``: write hold -> read hold, atomically.  Sync.

        No other writer can take the lock in between; readers at the head of the queue
        are admitted at once.  Raises `ProtocolViolation` if the task is not the writer.
        """
        task = _noted_task(self, "downgrade")
        if self._writer is not task:
            raise ProtocolViolation(
                f"downgrade() of {_label('RWLock', self.name)} by task {_task_name(task)}, "
                f"which does not hold it for writing ({self._holder_text()})"
            )
        self._writer = None
        self._readers[task] = 1
        self._grant()

    def read_locked(self) -> _ReadLocked:
        """``async with lock.read_locked():`` holds the lock shared for the block.

        Not a predicate: the returned object raises `TypeError` when taken as a bool
        (``if lock.read_locked():``); ask `readers` whether the lock is read-held."""
        return _ReadLocked(self)

    def write_locked(self) -> _WriteLocked:
        """``async with lock.write_locked():`` holds it exclusive (or shared, if the block
        called `downgrade`) and releases whichever it holds at the end.  Raises
        `ProtocolViolation` at the end when the task holds it neither way (the block
        released it itself).

        Not a predicate: the returned object raises `TypeError` when taken as a bool
        (``if lock.write_locked():``); ask `writer` whether the lock is write-held."""
        return _WriteLocked(self)

    @property
    def writer(self) -> object | None:
        _note(ReadOf(self))
        writer = self._writer
        if writer is not None:
            reveal_tasks((writer,))
        return writer

    @property
    def readers(self) -> tuple[object, ...]:
        """The tasks holding it for reading, in the order they took it.  Under the sim
        a write of the lock (the order depends on every reader step)."""
        _note(self)
        return reveal_tasks(tuple(self._readers))

    def statistics(self) -> RWLockStatistics:
        _note(self)
        waiting = [w.kind for w in self._queue._waiters]
        if self._writer is not None:
            reveal_tasks((self._writer,))
        return RWLockStatistics(
            self._writer,
            reveal_tasks(tuple(self._readers)),
            waiting.count(_READ),
            waiting.count(_WRITE),
        )

    def _note_grant(self, rt: Any, task: object, kind: int, got: object) -> None:
        if kind == _READ:
            self._note_reader(rt, task, "acquire-read")
        else:
            rt.note(self, "acquire-write")

    def _note_reader(self, rt: Any, task: object, event: str) -> None:
        # A read hold taken or given back, the writer and the queue unchanged.  (`rt` is
        # the sim's: nothing to build when the run records no notes.)
        if not rt.keeps_notes:
            return
        rt.note(ReadOf(self), event)
        rt.note(FieldOf(self, ("reader", getattr(task, "id", None))))

    def _holder_text(self) -> str:
        _note(self)
        if self._writer is not None:
            return f"write-held by {_task_name(self._writer)}"
        if self._readers:
            return "read-held by " + ", ".join(_task_name(t) for t in self._readers)
        return "not held"

    def _try(self, task: object, kind: int) -> object:
        writer = self._writer
        readers = self._readers
        if writer is None and not readers and not self._queue._waiters:
            if kind == _READ:
                readers[task] = 1
            else:
                self._writer = task
            return None
        if task is writer or (kind == _WRITE and task in readers):
            mode = "writing" if task is writer else "reading"
            raise ProtocolViolation(
                f"{_label('RWLock', self.name)} is already held for {mode} by the current task "
                f"{_task_name(task)}; only read locks nest, and there is no upgrade"
            )
        if kind == _READ and writer is None and not self._queue._waiters:
            readers[task] = readers.get(task, 0) + 1
            return None
        return _BLOCK

    def _holds_against(self, task: object, kind: int) -> bool:
        return task is self._writer or (kind == _WRITE and task in self._readers)

    def _release_read(self, task: object) -> None:
        held = self._readers[task]
        if held > 1:
            self._readers[task] = held - 1
            return
        del self._readers[task]
        if not self._readers:
            self._grant()

    def _grant(self) -> None:
        # Called whenever the holders shrank: admit the queue's head if it fits.
        queue = self._queue
        if not queue._waiters or self._writer is not None:
            return
        head = queue._first()
        assert head is not None
        if head.kind == _WRITE:
            if not self._readers:
                queue._pop()
                self._writer = head.task
                WaitQueue._hand(head, None)
            return
        while head is not None and head.kind == _READ:
            queue._pop()
            self._readers[head.task] = self._readers.get(head.task, 0) + 1
            WaitQueue._hand(head, None)
            head = queue._first()

    def _give_back(self, task: object, kind: int, grant: object) -> None:
        if kind == _READ:
            self._release_read(task)
        else:
            self._writer = None
            self._grant()

    def _waiter_left(self) -> None:
        # A cancelled writer at the head may have been all that kept queued readers out
        # while readers hold (as rwsem_down_write_slowpath does on a signal).
        if self._writer is None:
            self._grant()

    def _hold_event(self, kind: int) -> str | None:
        return "acquire-read" if kind == _READ else "acquire-write"

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        holders = (self._writer,) if self._writer is not None else tuple(self._readers)
        return _label("RWLock", self.name), reveal_tasks(holders)

    def waits_behind(self, waiter: Waiter) -> tuple[object, ...]:
        """For deadlock reports: the writers queued before `waiter` (FIFO: it gets in only
        after each of them has had the lock), e.g. the writer a nested read waits behind."""
        ahead: list[object] = []
        for w in self._queue._waiters:
            if w is waiter:
                return reveal_tasks(tuple(ahead))
            if w.kind == _WRITE:
                ahead.append(w.task)
        return ()

    def _check_invariants(self) -> None:
        assert not (self._writer is not None and self._readers), "writer and readers at once"
        if self._writer is None and not self._readers:
            assert not len(self._queue._waiters), "free RWLock with waiters"
        head = self._queue._first()
        if self._readers and head is not None:
            assert head.kind == _WRITE, "reader at the head of the queue while readers hold"


class _ReadLocked:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    async def __aenter__(self) -> RWLock:
        await self._lock.acquire_read()
        return self._lock

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release_read()

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self._lock!r}.read_locked() is a context manager, not a predicate: use "
            "`async with lock.read_locked():`, or `lock.readers` to ask who holds it"
        )


class _WriteLocked:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    async def __aenter__(self) -> RWLock:
        await self._lock.acquire_write()
        return self._lock

    async def __aexit__(self, *exc: object) -> None:
        lock = self._lock
        task = current_runtime().current_task()
        if lock._writer is not None and lock._writer is task:
            lock.release_write()
        elif task in lock._readers:
            lock.release_read()
        else:
            _note(lock)  # what the error names was read
            raise ProtocolViolation(
                f"the end of write_locked() of {_label('RWLock', lock.name)} in task "
                f"{_task_name(task)}, which holds it neither for writing nor for reading "
                f"({lock._holder_text()}): was it released inside the block?"
            )

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self._lock!r}.write_locked() is a context manager, not a predicate: use "
            "`async with lock.write_locked():`, or `lock.writer` to ask who holds it"
        )


@attrs.frozen
class CompletionStatistics:
    done: int
    completed_all: bool
    tasks_waiting: int


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class Completion(_Blocking):
    """The kernel's ``struct completion``.

    - `complete()` lets exactly one wait pass: it wakes the longest waiter, or, with
      nobody waiting, is remembered (``done += 1``) for the next `wait()`.
    - `complete_all()` lets every current and future wait pass until `reinit()`.
    - `wait()` (``wait_for_completion``) consumes one `complete()`, or passes freely
      after `complete_all()`.
    - `reinit()` (``reinit_completion``) forgets every completion.

    Invariants: ``_done > 0`` or ``_all`` implies nobody waits.

    ``Completion(name, gate=True)`` is a one-shot *gate* (program order: "B starts after
    A"): it opens with `complete_all()` only (`complete()` and `reinit()` raise
    `ProtocolViolation`), and nothing reads who waits on it.  A wait on a closed gate can
    only park until `complete_all()` wakes it, so DPOR (`odp_async.explore.dpor`) does
    not run it before then (`_gate_closed`) while another task can run: the waiter parked
    or not yet arrived are then one trace, not two.  So a gate's waiters are not shown:
    its repr says only open or closed, and `statistics()` raises `ProtocolViolation`.
    """

    #: A `wait()` that `complete_all()` lets through reads `_all` only (two of them
    #: commute); one that consumes a `complete()` writes (`_Blocking._note_grant`).
    attempt_notes_itself: ClassVar[bool] = True

    def _note_grant(self, rt: Any, task: object, kind: int, got: object) -> None:
        rt.note(ReadOf(self) if got is _ALL else self)

    name: str | None = attrs.field(default=None, converter=_check_name)
    fast_acquire: bool = attrs.field(default=False, kw_only=True)
    gate: bool = attrs.field(default=False, kw_only=True)
    _done: int = attrs.field(init=False, default=0)
    _all: bool = attrs.field(init=False, default=False)
    _queue: WaitQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._queue = WaitQueue(self.name, owner=weakref.ref(self))

    def __repr__(self) -> str:
        _note(ReadOf(self))
        return self._text()

    def _text(self) -> str:
        # The repr, not noted (for messages of steps that note the completion already).
        if self.gate:  # who waits on a gate is not observable (see the class docstring)
            return f"<{_label('Completion', self.name)} gate {'open' if self._all else 'closed'}>"
        state = "all" if self._all else f"done={self._done}"
        return f"<{_label('Completion', self.name)} {state} waiting={len(self._queue._waiters)}>"

    async def wait(self) -> None:
        """``wait_for_completion``.  Returns None.

        Blocks: until a `complete()` is available to consume, or `complete_all()` ran.
        Checkpoint: always.  Cancellation: consumes nothing; a `complete()` that had
        already picked this task is passed on to the next waiter (or remembered).
        """
        await self._blocking(0)  # its value says which wake it was: the queue's business

    def wait_nowait(self) -> None:
        """Consume a completion now, or raise `WouldBlock`.  Sync."""
        _note(self)
        if self._try(None, 0) is _BLOCK:
            raise WouldBlock(f"{self._text()} is not completed")

    def try_wait(self) -> bool:
        """``try_wait_for_completion``: True if a completion was consumed.  Sync."""
        _note(self)
        return self._try(None, 0) is not _BLOCK

    def is_done(self) -> bool:
        """``completion_done``: would a `wait()` pass now?  Sync, consumes nothing."""
        _note(ReadOf(self))  # a read: a `complete()` in another step does not commute
        return self._all or self._done > 0

    def _gate_closed(self) -> bool:
        """True for a gate (``gate=True``) before its `complete_all()`: a `wait()` now
        would park.  Sync; notes nothing (for choosers, between steps)."""
        return self.gate and not self._all

    def complete(self) -> None:
        """Let one wait pass (now, or the next one).  Sync.  Raises `ProtocolViolation`
        on a gate (it opens with `complete_all()`)."""
        if self.gate:
            raise ProtocolViolation(
                f"complete() of the gate {_label('Completion', self.name)}: a gate opens "
                "with complete_all()"
            )
        _note(self)
        if self._all:
            return
        _on_the_loop_s_thread(self._queue)
        w = self._queue._pop()
        if w is None:
            self._done += 1
        else:
            WaitQueue._hand(w, _ONE)

    def complete_all(self) -> None:
        """Let every wait pass until `reinit()`.  Sync."""
        _note(self)
        if self.gate and not self._all:
            _note(GateOpened(self))
        _on_the_loop_s_thread(self._queue)
        self._all = True
        self._queue.wake_all(_ALL)

    def reinit(self) -> None:
        """Forget every completion.  Sync.

        Raises: `ProtocolViolation` while tasks wait (the kernel forbids it too: those
        waiters could then never be told apart from new ones), and on a gate.
        """
        if self.gate:
            raise ProtocolViolation(
                f"reinit() of the gate {_label('Completion', self.name)}: a gate opens once"
            )
        _note(self)
        if len(self._queue._waiters):
            raise ProtocolViolation(
                f"reinit() of {_label('Completion', self.name)} while "
                f"{_count(len(self._queue._waiters), 'task')} on it"
            )
        self._done = 0
        self._all = False

    def statistics(self) -> CompletionStatistics:
        """Completions left, `complete_all` seen, tasks waiting.  A noted read.  Raises
        `ProtocolViolation` on a gate, whose waiters are not observable."""
        if self.gate:
            raise ProtocolViolation(
                f"statistics() of the gate {_label('Completion', self.name)}: who waits on a "
                "gate is not observable (DPOR runs a wait on a closed gate only when nothing "
                "else can run)"
            )
        _note(ReadOf(self))
        return CompletionStatistics(self._done, self._all, len(self._queue._waiters))

    def _try(self, task: object, kind: int) -> object:
        if self._all:
            return _ALL
        if self._done > 0:
            self._done -= 1
            return _ONE
        return _BLOCK

    def _give_back(self, task: object, kind: int, grant: object) -> None:
        if grant == _ONE:
            self.complete()

    #: For deadlock reports: a waiter waits for a `complete()` from any task.
    wait_is_completion = True

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        return f"{_label('Completion', self.name)} (not completed)", ()

    def _check_invariants(self) -> None:
        if self._done > 0 or self._all:
            assert not len(self._queue._waiters), "completed Completion with waiters"


@attrs.frozen
class SlotPoolStatistics:
    size: int
    free: int
    holders: tuple[object, ...]
    tasks_waiting: int


#: The largest `SlotPool` (its slots are preallocated, as the kernel's pool is): 2**20,
#: the bound of the model's ``pool_size`` option too.
MAX_POOL_SIZE: Final = 1 << 20


def _check_size(size: object) -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidArgument(
            f"SlotPool size must be an int, got {size!r} ({type(size).__name__})"
        )
    if size < 1:
        raise InvalidArgument(f"SlotPool size must be at least 1, got {size}")
    if size > MAX_POOL_SIZE:
        raise InvalidArgument(
            f"SlotPool size must be at most odp_async.sync.MAX_POOL_SIZE = {MAX_POOL_SIZE} "
            f"(the pool allocates its slots), got {size}"
        )
    return size


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class SlotPool(_Blocking):
    """A fixed pool of `size` slots, numbered ``0 .. size-1`` (a preallocated array of
    tracking structs, as in the 2014 HMM pool); `size` is an int from 1 to
    `MAX_POOL_SIZE` (2**20), else `InvalidArgument`.

    `acquire()` returns a free slot number and blocks while none is free; `release(slot)`
    gives it back (any task may release a slot; the pool remembers who took it, for
    deadlock reports).  FIFO hand-off.  The lowest free slot is handed out first.

    Invariants: every slot is either free or held, never both; a non-empty queue implies
    no free slot.
    """

    size: int = attrs.field(converter=_check_size)
    name: str | None = attrs.field(default=None, converter=_check_name)
    fast_acquire: bool = attrs.field(default=False, kw_only=True)
    _free: list[int] = attrs.field(init=False)
    _holders: dict[int, object] = attrs.field(init=False, factory=dict)
    _queue: WaitQueue = attrs.field(init=False)

    #: Any task may release a slot: a task that reaches the pool may free its waiters
    #: (the sim's early stop of a partial deadlock asks, `SimRuntime._rescuable`).
    wait_released_by_anyone: ClassVar[bool] = True

    def __attrs_post_init__(self) -> None:
        self._free = list(range(self.size - 1, -1, -1))
        self._queue = WaitQueue(self.name, owner=weakref.ref(self))

    def __repr__(self) -> str:
        _note(ReadOf(self))
        return self._text()

    def _text(self) -> str:
        # The repr, not noted (for messages of steps that note the pool already).
        return (
            f"<{_label('SlotPool', self.name)} {len(self._free)}/{self.size} free "
            f"waiting={len(self._queue._waiters)}>"
        )

    def acquire(self) -> Awaitable[int]:
        """Take a slot and return its number.

        Blocks: while no slot is free.  Checkpoint: always.  Cancellation: takes no slot;
        a slot already handed to this task is handed on.
        """
        return self._blocking(0)

    def acquire_nowait(self) -> int:
        """Take a free slot now, or raise `WouldBlock`.  Sync."""
        slot = _tried(self, "acquire", self._try(_noted_task(self), 0))
        if slot is _BLOCK:
            raise WouldBlock(f"{self._text()} has no free slot")
        assert isinstance(slot, int)
        return slot

    def release(self, slot: int) -> None:
        """Give `slot` back, handing it to the longest waiter.  Sync.

        Raises: `ProtocolViolation` if `slot` is not currently taken.
        """
        _note(self, "release")
        if slot not in self._holders:
            raise ProtocolViolation(
                f"release({slot!r}) of {_label('SlotPool', self.name)}: that slot is not taken "
                f"(taken: {sorted(self._holders)})"
            )
        self._release(slot)

    @property
    def free(self) -> int:
        """How many slots are free now.  A noted read of the pool."""
        _note(ReadOf(self))
        return len(self._free)

    def statistics(self) -> SlotPoolStatistics:
        """Size, free slots, holders, tasks waiting.  A noted read of the pool."""
        _note(ReadOf(self))
        return SlotPoolStatistics(
            self.size,
            len(self._free),
            reveal_tasks(tuple(self._holders.values())),
            len(self._queue._waiters),
        )

    def _try(self, task: object, kind: int) -> object:
        if not self._free:
            return _BLOCK
        slot = self._free.pop()
        self._holders[slot] = task
        return slot

    def _release(self, slot: int) -> None:
        w = self._queue._pop()
        if w is None:
            del self._holders[slot]
            self._free.append(slot)
            self._free.sort(reverse=True)
        else:
            self._holders[slot] = w.task
            WaitQueue._hand(w, slot)

    def _give_back(self, task: object, kind: int, grant: object) -> None:
        assert isinstance(grant, int)
        self._release(grant)

    def _hold_event(self, kind: int) -> str | None:
        return "acquire"

    @property
    def wait_needs_any(self) -> bool:
        return self.size > 1

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        return (
            f"{_label('SlotPool', self.name)} ({len(self._free)} free)",
            reveal_tasks(tuple(self._holders.values())),
        )

    def _check_invariants(self) -> None:
        assert not set(self._free) & set(self._holders), "a slot both free and held"
        assert len(self._free) + len(self._holders) == self.size, "a slot went missing"
        if len(self._queue._waiters):
            assert not self._free, "free slot with waiters"


@attrs.frozen
class ConditionStatistics:
    tasks_waiting: int
    lock_statistics: MutexStatistics


def _check_lock(lock: object) -> Mutex:
    if lock is None:
        return Mutex("condition")
    if not isinstance(lock, Mutex):
        raise InvalidArgument(
            f"a Condition's lock must be a Mutex or None, got {lock!r} ({type(lock).__name__})"
        )
    return lock


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class Condition:
    """A condition variable over a `Mutex` (trio's ``Condition``, the kernel's wait-event
    pattern done safely).

    ``async with cond:`` takes the lock; `wait()` releases it, sleeps until a `notify()`
    or `notify_all()` reaches this task, and takes the lock again before returning.
    Callers re-check their predicate in a ``while`` loop around `wait()`: a wake says only
    that the state *may* have changed (another task may have got there first).

    - `wait()`, `notify()` and `notify_all()` need the current task to hold the lock;
      otherwise they raise `ProtocolViolation` (a `RuntimeError`, as trio raises).
    - Waiters are woken in FIFO order.  A notify with nobody waiting is dropped (use
      `Completion` for a wake that must be remembered).
    - Several conditions may share one lock: ``Condition(lock)``.

    Invariant: a task waiting here does not hold the lock.
    """

    _lock: Mutex = attrs.field(default=None, converter=_check_lock, alias="lock")
    _queue: WaitQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._queue = WaitQueue(self._lock.name, owner=weakref.ref(self))

    def __repr__(self) -> str:
        _note(ReadOf(self._queue))  # its waiters; the lock's repr notes the lock
        return f"<Condition over {self._lock!r} waiting={len(self._queue._waiters)}>"

    @property
    def lock(self) -> Mutex:
        """The `Mutex` this condition uses."""
        return self._lock

    def acquire(self) -> Awaitable[None]:
        """Take the underlying lock (`Mutex.acquire`: blocks, checkpoints, cancellable)."""
        return self._lock.acquire()

    def acquire_nowait(self) -> None:
        """Take the underlying lock now, or raise `WouldBlock`.  Sync."""
        self._lock.acquire_nowait()

    def release(self) -> None:
        """Release the underlying lock.  Sync.  `ProtocolViolation` if not held."""
        self._lock.release()

    def locked(self) -> bool:
        """Is the underlying lock held (by any task)?  A noted read of the lock."""
        return self._lock.locked()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()

    async def wait(self) -> None:
        """Release the lock, block until notified, take the lock again.

        Blocks: until a `notify()`/`notify_all()` picks this task, then until the lock is
        free again.  Checkpoint: always.  Cancellation: the task leaves the wait queue (a
        notify that had already picked it is passed on to the next waiter, so no wake-up
        is lost), takes the lock again (shielded: it always holds the lock when `wait`
        returns or raises), then the cancellation propagates.
        Raises: `ProtocolViolation` if the current task does not hold the lock.
        """
        rt = current_runtime()
        task = rt.current_task()
        self._check_held(task, "wait")
        # Nothing runs between the release and the park (the park does not yield first),
        # so a notify from a task that takes the lock next cannot be missed.
        self._lock.release()
        try:
            await self._queue.park()
        finally:
            with rt.cancel_scope(shield=True):
                await self._lock.acquire()

    def notify(self, n: int = 1) -> None:
        """Wake the `n` longest waiters (fewer if fewer wait).  Sync.

        Raises: `ProtocolViolation` if the current task does not hold the lock;
        `InvalidArgument` if `n` is not an int >= 0.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidArgument(f"notify(n): n must be an int >= 0, got {n!r}")
        self._check_held(_noted_task(self), "notify")
        for _ in range(n):
            if not self._queue.wake_one():
                break

    def notify_all(self) -> None:
        """Wake every waiter.  Sync.  Raises `ProtocolViolation` without the lock."""
        self._check_held(_noted_task(self), "notify_all")
        self._queue.wake_all()

    def statistics(self) -> ConditionStatistics:
        """Tasks waiting, and the lock's `Mutex.statistics`.  A noted read of both."""
        _note(ReadOf(self._queue))
        return ConditionStatistics(len(self._queue._waiters), self._lock.statistics())

    def _check_held(self, task: object, what: str) -> None:
        # A noted read of the lock (the error names its holder); only compared and named,
        # so not revealed to the program (`reveal_tasks`).
        _note(ReadOf(self._lock))
        owner = self._lock._owner
        if owner is not task:
            holder = "nobody" if owner is None else _task_name(owner)
            raise ProtocolViolation(
                f"{what}() on a Condition over {_label('Mutex', self._lock.name)} by task "
                f"{_task_name(task)}, which does not hold the lock (held by {holder})"
            )

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        # A waiter waits for a notify from any task: no holder to name.
        return f"Condition over {_label('Mutex', self._lock.name)} (not notified)", ()

    def _check_invariants(self) -> None:
        for w in self._queue._waiters:
            assert self._lock._owner is not w.task, "a waiter holds the condition's lock"


def _noting_getstate(cls: type) -> None:
    # attrs gives each slotted class a `__getstate__` (copy, deepcopy, pickle): reading
    # every field of the primitive there is a noted access of it too (a write: what a
    # copy holds depends on every step that changed the primitive, in order).
    plain: Callable[[object], Any] = cls.__dict__["__getstate__"]

    def __getstate__(self: object) -> Any:
        _note(self)
        return plain(self)

    setattr(cls, "__getstate__", __getstate__)  # noqa: B010 - a method mypy types


for _cls in (WaitQueue, Mutex, RWLock, Completion, SlotPool, Condition):
    _noting_getstate(_cls)
del _cls
