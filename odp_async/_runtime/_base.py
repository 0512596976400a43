"""The trap protocol: what a runtime must provide so that one model runs on every runtime.

Contract
    A `Runtime` answers a handful of calls: who is the current task, yield at a checkpoint,
    park the current task on a `Waiter` until someone wakes it, wake a parked waiter, sleep,
    read the clock, open a task group or a cancel scope, draw a value.  `odp_async.sync`
    writes each primitive's policy (who holds, who waits, who is woken) once, on top of
    these calls; only parking and waking differ per runtime.

    Two families implement it: the live runtimes (`_live`: real tasks on trio or asyncio,
    through anyio) and the sim runtime (`sim`: a deterministic driver that steps the
    coroutines itself and lets a chooser pick the next task at every checkpoint).

Concurrency
    A `Waiter` belongs to exactly one parked task and, while it waits, to exactly one
    queue.  Only the queue's owner wakes it, and only once: `woken` goes False -> True and
    never back.  A parked task that is cancelled after its waiter was woken must pass the
    wake on (see `odp_async.sync.WaitQueue.park`); the runtime never drops a wake silently.

See also
    `odp_async._runtime` (the functions model code calls), `odp_async.sync`.
"""

from __future__ import annotations

import abc
import contextvars
import math
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from threading import get_ident
from typing import Any, Final, Protocol

import sniffio as _sniffio

from ..errors import InvalidArgument, ProtocolViolation

__all__ = [
    "LIVE_RUNTIMES",
    "RUNTIME_VAR",
    "CancelScopeLike",
    "Runtime",
    "TaskGroupLike",
    "WaitTarget",
    "Waiter",
    "live_here",
    "live_runtime",
]


# Set only by the sim runner, in the root task's context (tasks inherit it).  Unset means
# "live": the runtime is found from the running event loop, as anyio finds its backend.
RUNTIME_VAR: contextvars.ContextVar[Runtime] = contextvars.ContextVar("odp_async.runtime")


class WaitTarget(Protocol):
    """What a waiter waits on: a queue that can remove it and describe itself.

    `describe_wait()` feeds deadlock reports: a short text such as ``"Mutex 'm'"`` or
    ``"SlotPool 'p' (0 free)"``, and the tasks that hold the thing waited for.
    """

    def _discard(self, waiter: Waiter) -> None: ...

    def describe_wait(self) -> tuple[str, tuple[object, ...]]: ...


class Waiter:
    """One parked task's place in one queue.

    Invariants:
      - `woken` is set (with `value`) by the queue's owner, before the runtime is asked to
        resume the task, and is never cleared;
      - `handle` is the runtime's own resumption token (an asyncio future, a trio task, a
        sim task), set by `Runtime.park` before the task blocks;
      - `runtime` is the runtime that parked the task, so a wake never has to look the
        runtime up (it may come from another task, or from a ``finally`` during teardown).
    """

    __slots__ = ("cancellable", "handle", "kind", "queue", "runtime", "task", "value", "woken")

    def __init__(
        self,
        runtime: Runtime,
        task: object,
        queue: WaitTarget,
        kind: int = 0,
        *,
        cancellable: bool = True,
    ) -> None:
        self.runtime = runtime
        self.task = task
        self.queue = queue
        self.kind = kind
        self.cancellable = cancellable
        self.woken = False
        self.value: object = None
        self.handle: object = None

    def __repr__(self) -> str:
        state = "woken" if self.woken else "waiting"
        return f"<Waiter {self.runtime.task_name(self.task)!r} kind={self.kind} {state}>"


def new_waiter(runtime: Runtime, task: object, queue: WaitTarget, kind: int) -> Waiter:
    """``Waiter(runtime, task, queue, kind)``, cancellable, without the ``__init__`` call:
    the contended acquire's hot path.  Sets every slot (a test checks it against
    ``Waiter.__init__``)."""
    w = _new_object(Waiter)
    w.runtime = runtime
    w.task = task
    w.queue = queue
    w.kind = kind
    w.cancellable = True
    w.woken = False
    w.value = None
    w.handle = None
    return w


_new_object = object.__new__


class CancelScopeLike(Protocol):
    """The part of a cancel scope model code may use (anyio's and the sim's agree on it)."""

    @property
    def cancel_called(self) -> bool: ...

    @property
    def cancelled_caught(self) -> bool: ...

    @property
    def deadline(self) -> float: ...

    @deadline.setter
    def deadline(self, value: float) -> None: ...

    @property
    def shield(self) -> bool: ...

    @shield.setter
    def shield(self, value: bool) -> None: ...

    def cancel(self, reason: str | None = None) -> None: ...

    def __enter__(self) -> CancelScopeLike: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool: ...


class TaskGroupLike(Protocol):
    """The part of a task group model code may use: anyio's ``start_soon`` and scope."""

    @property
    def cancel_scope(self) -> CancelScopeLike: ...

    def start_soon(
        self,
        func: Callable[..., Coroutine[Any, Any, Any]],
        *args: Any,
        name: object = None,
    ) -> object: ...

    async def __aenter__(self) -> TaskGroupLike: ...

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool: ...


class Runtime(abc.ABC):
    """One way of running tasks.  See the module docstring for the contract.

    `is_sim` tells the primitives where the choice point of an acquire goes: the sim
    yields *before* every attempt (so the chooser can let another task in first), a live
    runtime attempts first and yields after a success (trio's shape), so an uncontended
    acquire costs one scheduling pass and a contended one costs only the park.
    """

    __slots__ = ()

    is_sim: bool = False

    #: Live only: raise if the current task is cancelled, without yielding otherwise
    #: (trio's ``checkpoint_if_cancelled``); None where that check is not cheap.
    checkpoint_if_cancelled: Callable[[], Awaitable[None]] | None = None

    #: Live asyncio only: `park` parks on an asyncio future it keeps in ``waiter.handle``
    #: and `wake` is ``set_result(value)`` on it unless it is done (cancelled), so a
    #: primitive's hot path may resolve it itself, with no call (a direct hand-off).
    wakes_future: bool = False

    def yield_after_grant(self) -> Awaitable[None]:
        """Live only: the yield of a blocking call that was granted at once.

        May raise the runtime's cancellation (asyncio); the caller then undoes the grant.
        """
        return self.checkpoint()

    @abc.abstractmethod
    def current_task(self) -> object:
        """The running task's identity (hashable).  Never a checkpoint."""

    def running_task_probe(self, task: object) -> tuple[Callable[[Any], object], Any] | None:
        """Live only: a cheap way to ask again who runs, for `live_here`'s cache: a
        function and its argument whose call returns the running task (on the thread that
        found `task`), or None when there is none."""
        return None

    def future_maker(self, task: object) -> Callable[[], Any] | None:
        """Live asyncio only (`wakes_future`): a function of no argument returning a fresh
        future of `task`'s loop, the one `park` would park `task` on (`wake` resolves
        it), for `live_here`'s cache: a primitive's hot path may then park on it inline.
        None elsewhere."""
        return None

    def reveal(self, task: object) -> None:
        """The running program learns `task`'s identity (`current_task`, a primitive's
        owner or holders): the sim tells a chooser that takes identical unstarted tasks
        as interchangeable (dfs's symmetry), which holds only while nothing tells them
        apart.  Nothing elsewhere.  Sync."""
        return None

    @abc.abstractmethod
    def task_name(self, task: object) -> str:
        """A human-readable name for a task returned by `current_task`."""

    @abc.abstractmethod
    def checkpoint(self, label: object = None) -> Awaitable[None]:
        """Yield to the scheduler and raise if the current task is cancelled.

        `label` names the operation about to happen (a primitive, a string); the sim
        records it, a live runtime ignores it.
        """

    @abc.abstractmethod
    def park(self, waiter: Waiter) -> Awaitable[object]:
        """Block the current task until `wake(waiter, value)`; return `value`.

        Cancellable when ``waiter.cancellable``: then it raises the runtime's cancellation
        exception.  The caller (a queue) must already hold `waiter`; on a cancellation that
        arrives before any wake, the runtime or the caller removes it with
        ``waiter.queue._discard(waiter)``.
        """

    @abc.abstractmethod
    def wake(self, waiter: Waiter, value: object) -> None:
        """Resume the task parked on `waiter` with `value`.  Sync; never a checkpoint.

        The caller has already taken `waiter` out of its queue and set ``waiter.woken``.
        If the parked task is being cancelled at the same moment, the wake is not lost:
        the task sees ``waiter.woken`` in its cancellation handler and passes it on.
        """

    @abc.abstractmethod
    def sleep(self, seconds: float) -> Awaitable[None]:
        """Sleep (virtual seconds in the sim).  Always a checkpoint."""

    @abc.abstractmethod
    def now(self) -> float:
        """The runtime's clock (virtual in the sim)."""

    @abc.abstractmethod
    def task_group(self) -> TaskGroupLike:
        """A new task group (structured concurrency: the ``async with`` waits for children)."""

    @abc.abstractmethod
    def cancel_scope(self, *, deadline: float = math.inf, shield: bool = False) -> CancelScopeLike:
        """A new cancel scope with an absolute `deadline` on this runtime's clock."""

    @abc.abstractmethod
    def cancelled_exc_class(self) -> type[BaseException]:
        """The exception a cancelled checkpoint raises on this runtime."""

    @abc.abstractmethod
    def draw(self, n: int, label: object = None) -> int:
        """An integer in ``range(n)``: chosen by the chooser in the sim, random when live."""

    def note(self, resource: object, event: str | None = None) -> None:  # noqa: B027
        """Record that the running step touched `resource` (the sim: for reduction, and,
        with an `event` such as ``"acquire"``/``"release"``, for the trace).

        Live runtimes ignore it.
        """

    def task_blocked(self, task: object) -> bool | None:
        """Is `task` (returned by `current_task`) parked right now: blocked on a
        primitive, or asleep (as opposed to running, runnable but not scheduled, or
        finished)?  None where the runtime cannot tell cheaply (the live runtimes, whose
        loops run woken tasks first come, first served).  Sync; never a checkpoint.

        The sim answers (a wait at a closed one-shot gate, ``Completion(gate=True)``,
        counts as not parked: nothing reads who waits on a gate, and DPOR takes a waiter
        parked there and one not yet arrived for one trace), and the asking step's
        footprint becomes unknown (it conflicts
        with every step): the answer depends on every park and wake of `task`, and a
        noted read of a per-task resource that parks and wakes write did not keep a
        search by footprints sound (tests/explore/test_dpor_task_blocked.py)."""
        return None

    def watch_progress(self, on: bool) -> None:  # noqa: B027
        """Start (`on`) or stop watching the calling task's progress: while watched (the
        starts and stops nest), the sim notes each step of the task, and each wake of it,
        as a write of the task's progress, which `task_progress` and `task_passed_over`
        read.  Nothing live.  Sync; never a checkpoint."""

    def task_progress(self, task: object) -> int | None:
        """A token of how far `task` (returned by `current_task`) has run: a later token
        equal to this one means it ran no step in between.  None where the runtime cannot
        tell (the live ones).  Sync; never a checkpoint.  In the sim a noted read of the
        task's progress: ordered against the task's steps while it watches its progress
        (`watch_progress`), and only then; ask only about a task that does."""
        return None

    def task_passed_over(self, task: object, since: int) -> bool | None:
        """Was `task` passed over by the scheduler since `since` (a `task_progress`
        token): it ran no step since, and it could have, as it is runnable right now and
        was not made runnable by the running step (woken, or its wait cancelled)?  A task
        that stayed parked (blocked on a primitive, or asleep) or finished was not.  None
        where the runtime cannot tell (the live ones, whose loops run woken tasks first
        come, first served).  Sync; never a checkpoint.  In the sim a noted read of the
        task's progress, as `task_progress`."""
        return None

    def fail_after_scope(self, seconds: float) -> AbstractContextManager[CancelScopeLike]:
        """A scope that cancels its body after `seconds` and then raises `TimeoutError`."""
        return _FailAfter(self, self.cancel_scope(deadline=deadline_after(self.now(), seconds)))


#: The most options one `draw` may have (2**16): a draw is a branch point the exhaustive
#: explorers (dfs, dpor) take every value of, so its size is bounded on every runtime.
MAX_DRAW: Final = 65536


def check_draw(n: object) -> int:
    """`n` if it is a valid number of options for `draw` (an int, 1 to `MAX_DRAW`);
    raises `InvalidArgument` naming it otherwise."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidArgument(f"draw() needs a positive int number of options, got {n!r}")
    if n > MAX_DRAW:
        raise InvalidArgument(
            f"draw() of {n} options: at most odp_async.MAX_DRAW = {MAX_DRAW}; for a "
            "larger range, draw in steps (one draw per digit)"
        )
    return n


def check_sleep(seconds: object) -> None:
    """Raise `InvalidArgument` unless `seconds` is a number (an int or a float, not a
    bool) >= 0, NaN excluded: what ``sleep`` takes on every runtime."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or seconds != seconds
        or seconds < 0
    ):
        raise InvalidArgument(f"sleep() needs a non-negative number of seconds, got {seconds!r}")


def deadline_after(now: float, seconds: float) -> float:
    """The deadline `seconds` after `now`, as a float: ``math.inf`` (a deadline that never
    comes) for infinite `seconds` and for a sum past the largest float, never NaN.
    Raises `InvalidArgument` for NaN or a non-number."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds != seconds:
        raise InvalidArgument(f"a timeout needs a number of seconds, got {seconds!r}")
    try:
        until = now + seconds
    except OverflowError:  # an int past the floats
        return math.inf if seconds > 0 else -math.inf
    if until != until:  # -inf + inf: an infinite timeout from a clock at -inf cannot be
        raise InvalidArgument(f"no deadline {seconds!r} seconds after {now!r}")
    return float(until)


class _FailAfter:
    """Turns a scope's own timeout into `TimeoutError` (anyio's `fail_after` contract)."""

    __slots__ = ("_runtime", "_scope")

    def __init__(self, runtime: Runtime, scope: CancelScopeLike) -> None:
        self._runtime = runtime
        self._scope = scope

    def __enter__(self) -> CancelScopeLike:
        self._scope.__enter__()
        return self._scope

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        swallowed = self._scope.__exit__(exc_type, exc, tb)
        if self._scope.cancelled_caught and self._runtime.now() >= self._scope.deadline:
            raise TimeoutError
        return swallowed


# The live runtimes, one per backend, filled by `_live` when it is first imported (it
# imports trio, anyio and asyncio, which sim-only use never needs).  Stateless entries,
# written once at that import and never changed after.
LIVE_RUNTIMES: dict[str, Runtime] = {}


#: What a primitive called with no event loop running in its thread raises.
NO_LIVE_RUNTIME: Final = (
    "no async runtime is running on this thread: call odp_async from inside trio.run(), "
    "asyncio.run(), anyio.run(), or the sim runtime's run(); from a worker thread, hand "
    "the call to the loop's thread (anyio.from_thread.run_sync, "
    "trio.from_thread.run_sync, loop.call_soon_threadsafe)"
)


def live_runtime() -> Runtime:
    """The live runtime of the running event loop (trio or asyncio).

    Raises `ProtocolViolation` outside any event loop or on an unsupported one.  Imports
    the live backends on first use only.
    """
    name = _sniffio.thread_local.name or _sniffio.current_async_library_cvar.get()
    if name is not None:
        rt = LIVE_RUNTIMES.get(name)
        if rt is not None:
            return rt
    from . import _live

    return _live.find_live_runtime()


# What `live_here` found last in this context: ((runtime, task), thread, probe, its
# argument, the runtime's `future_maker` for the task).  A cache, checked at every use (a
# task inherits its parent's context, so an entry may name another task; it is then found
# again and replaced).
_LIVE_HERE: contextvars.ContextVar[
    tuple[tuple[Runtime, object], int, Callable[[Any], object], Any, Callable[[], Any] | None]
    | None
] = contextvars.ContextVar("odp_async.live_here", default=None)


def live_here() -> tuple[Runtime, object]:
    """(The live runtime, the current task), as `live_runtime` and its `current_task`
    find them, but cheaply on the hot path of every live acquire and release: the pair
    found last in this context is reused while the runtime's probe still names that task
    as the running one on this thread (`Runtime.running_task_probe`), which skips
    asyncio's ``get_running_loop`` (a ``getpid`` system call) and sniffio's lookups.
    Raises as `live_runtime`.  Sync."""
    here = _LIVE_HERE.get()
    if here is not None:
        pair, thread, probe, arg, _ = here
        if probe(arg) is pair[1] and thread == get_ident():
            return pair
    rt = live_runtime()
    try:
        task = rt.current_task()
    except RuntimeError:
        # A thread that runs a copy of a task's context (anyio's to_thread, or
        # contextvars.copy_context().run) carries sniffio's variable but runs no loop.
        raise ProtocolViolation(NO_LIVE_RUNTIME) from None
    found = (rt, task)
    how = rt.running_task_probe(task)
    if how is not None:
        _LIVE_HERE.set((found, get_ident(), how[0], how[1], rt.future_maker(task)))
    return found
