"""The runtime seam: the only way model code starts, yields, sleeps or cancels tasks.

Contract
    Model code (mm, device, odp, protocols, scenarios, and any user code the explorer
    runs) never imports anyio or trio.  It calls these functions, and the primitives of
    `odp_async.sync`, and runs unchanged on trio, on asyncio, and under the deterministic
    sim runtime:

    ==========================  =========================================================
    ``await checkpoint(label)``  yield; raise if cancelled.  A choice point in the sim.
    ``current_task()``           the running task's identity.  Sync.
    ``task_name(task)``          its name.  Sync.
    ``task_group()``             ``async with task_group() as tg: tg.start_soon(f, *a)``
    ``cancel_scope(...)``        a cancel scope (deadline on the runtime's clock, shield)
    ``move_on_after(s)``         a scope that cancels its body after `s` seconds
    ``fail_after(s)``            the same, then raises `TimeoutError`
    ``await sleep(s)``           sleep (virtual seconds in the sim)
    ``now()``                    the runtime's clock.  Sync.
    ``draw(n, label)``           an int in ``range(n)``, n <= `MAX_DRAW`; the chooser's in
                                 the sim.  Sync.
    ``cancelled_exc_class()``    what a cancelled checkpoint raises here
    ``task_blocked(task)``       is `task` parked (blocked or asleep)?  None live.  Sync.
    ``watch_progress()``         ``with watch_progress():`` the calling task's progress is
                                 noted while inside (the sim's footprints)
    ``task_progress(task)``      a token of how far `task` has run.  None live.  Sync.
    ``task_passed_over(t, tok)`` did the scheduler pass `t` over since `tok`?  None live.
    ==========================  =========================================================

    The runtime in effect is found the way anyio finds its backend: the sim runner sets a
    context variable in its root task's context; otherwise sniffio names the running
    event loop.  There is no module-level switch.

Concurrency
    Every function acts on the calling task's runtime only; none keeps state here.

See also
    `odp_async._runtime.sim.run` (the deterministic runner), `odp_async.sync`.
"""

from __future__ import annotations

import math
import types
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import sniffio

from ._base import (
    LIVE_RUNTIMES,
    MAX_DRAW,
    RUNTIME_VAR,
    CancelScopeLike,
    Runtime,
    TaskGroupLike,
    Waiter,
    WaitTarget,
    deadline_after,
    live_runtime,
)
from .sim import CHECKPOINT_TRAP

__all__ = [
    "MAX_DRAW",
    "CancelScopeLike",
    "Runtime",
    "TaskGroupLike",
    "WaitTarget",
    "Waiter",
    "cancel_scope",
    "cancelled_exc_class",
    "checkpoint",
    "current_runtime",
    "current_task",
    "draw",
    "fail_after",
    "move_on_after",
    "now",
    "run_live",
    "sleep",
    "task_blocked",
    "task_group",
    "task_passed_over",
    "task_progress",
    "task_name",
    "watch_progress",
]


T = TypeVar("T")


def run_live(
    main: Callable[..., Awaitable[T]], *args: Any, backend: str, timeout: float | None = None
) -> T:
    """Run ``main(*args)`` on a new trio or asyncio event loop (through anyio).

    With `timeout`, a run still going after that many seconds is cancelled and raises
    `odp_async.errors.RunTimeout` (a `TimeoutError`), told apart from a `TimeoutError`
    the program raises itself (that one leaves unchanged).  Raises `InvalidArgument` for
    an unknown backend.  Imports the live backends here, not at ``import odp_async``.
    """
    from ._live import run_live as run

    return run(main, *args, backend=backend, timeout=timeout)


#: ``RUNTIME_VAR.get``, bound once: `checkpoint` calls it at every step of the sim (a
#: lookup of ``.get`` on the variable per call costs ~7 % of a sim step).
_runtime_in_effect = RUNTIME_VAR.get


def current_runtime() -> Runtime:
    """The runtime of the calling task.  Raises `ProtocolViolation` outside any."""
    rt = _runtime_in_effect(None)
    if rt is not None:
        return rt
    # Hot path of every live acquire: sniffio's thread-local first, as `live_runtime` does.
    name = sniffio.thread_local.name or sniffio.current_async_library_cvar.get()
    if name is not None:
        live = LIVE_RUNTIMES.get(name)
        if live is not None:
            return live
    return live_runtime()


@types.coroutine
def checkpoint(label: object = None) -> Generator[Any, Any, None]:
    """Yield to the scheduler; raise the runtime's cancellation if cancelled.

    Blocks: only to let other tasks run.  Checkpoint: always.  In the sim, a choice point
    recorded with `label` (what the task is about to do: a string, a primitive).
    Raises `ProtocolViolation` when awaited outside any runtime.
    """
    rt: Any = _runtime_in_effect(None)
    if rt is not None:
        # Only the sim sets the variable.  This generator is the sim's trap itself (no
        # call of `trap`, no method call): one frame per step on the sim's hot path.  The
        # label goes straight to the running task (`SimTask.pending`, where the driver
        # would put it), and the trap is one constant: no tuple per step.
        rt._current.pending = label
        yield CHECKPOINT_TRAP
        return
    live: Any = live_runtime().checkpoint(label)
    if not isinstance(live, (types.GeneratorType, types.CoroutineType)):
        live = live.__await__()
    yield from live


def current_task() -> object:
    """The calling task's identity (hashable).  Sync; never a checkpoint.  Under the sim
    the program then tells this task from identical ones (`Runtime.reveal`)."""
    rt = current_runtime()
    task = rt.current_task()
    rt.reveal(task)
    return task


def task_name(task: object) -> str:
    """The name of a task returned by `current_task`."""
    return current_runtime().task_name(task)


def task_group() -> TaskGroupLike:
    """A new task group: ``async with task_group() as tg: tg.start_soon(fn, *args)``.

    The ``async with`` block does not exit before every child has finished.  An exception
    in a child cancels the group (siblings and body) and is re-raised from the block in an
    `ExceptionGroup`.
    """
    rt = _runtime_in_effect(None)  # `current_runtime()`'s first step, inlined (the sim's)
    return (rt if rt is not None else current_runtime()).task_group()


def cancel_scope(*, deadline: float = math.inf, shield: bool = False) -> CancelScopeLike:
    """A cancel scope with an absolute `deadline` on `now()`'s clock."""
    return current_runtime().cancel_scope(deadline=deadline, shield=shield)


def move_on_after(seconds: float, *, shield: bool = False) -> CancelScopeLike:
    """A cancel scope whose body is cancelled `seconds` from now (then silently left)."""
    rt = current_runtime()
    return rt.cancel_scope(deadline=deadline_after(rt.now(), seconds), shield=shield)


def fail_after(seconds: float) -> AbstractContextManager[CancelScopeLike]:
    """Like `move_on_after`, but leaving by the deadline raises `TimeoutError`."""
    return current_runtime().fail_after_scope(seconds)


def sleep(seconds: float) -> Awaitable[None]:
    """Sleep `seconds` (virtual in the sim, where time jumps when every task is idle).

    Blocks: for `seconds`.  Checkpoint: always.  Cancellation: raises, nothing to undo.
    """
    return current_runtime().sleep(seconds)


def now() -> float:
    """The runtime's clock: anyio's `current_time()` live, virtual seconds in the sim."""
    return current_runtime().now()


def draw(n: int, label: object = None) -> int:
    """An int in ``range(n)``.  In the sim the chooser picks it (and replays it); live, random.

    Sync; never a checkpoint.  `n`: an int from 1 to `MAX_DRAW` (65536; the exhaustive
    explorers take every value); anything else raises `InvalidArgument` naming it.  In the
    sim, an `n` past `MAX_DRAW` is the explorer's limit, not the program's bug: the run
    stops and the exploration raises it, whatever the program catches.
    """
    return current_runtime().draw(n, label)


def cancelled_exc_class() -> type[BaseException]:
    """The exception class a cancelled checkpoint raises on the current runtime."""
    return current_runtime().cancelled_exc_class()


def task_blocked(task: object) -> bool | None:
    """True if `task` is parked right now (blocked on a primitive, or asleep), False if
    it runs, could run, or finished; None on a runtime that cannot tell (the live ones).
    Sync; never a checkpoint.  In the sim the asking step conflicts with every other
    step (`Runtime.task_blocked`)."""
    return current_runtime().task_blocked(task)


class _ProgressWatch:
    """`watch_progress`'s context manager: one start and one stop, on one runtime."""

    __slots__ = ("_rt",)

    def __init__(self) -> None:
        self._rt: Runtime | None = None

    def __enter__(self) -> None:
        runtime = current_runtime()
        runtime.watch_progress(True)
        self._rt = runtime

    def __exit__(self, *exc: object) -> None:
        runtime, self._rt = self._rt, None
        if runtime is not None:
            runtime.watch_progress(False)


def watch_progress() -> AbstractContextManager[None]:
    """``with watch_progress():`` while inside, the calling task's steps, and the wakes of
    it, are noted in the sim as writes of its progress (`task_progress`,
    `task_passed_over` read it), so a step that asks about the task is ordered against
    them; outside, they are not (fewer conflicts).  Nests.  Nothing live.  Sync."""
    return _ProgressWatch()


def task_progress(task: object) -> int | None:
    """A token of how far `task` (from `current_task`) has run: a later token equal to it
    means the task ran no step in between.  None live.  Sync; never a checkpoint.  Ask
    only about a task inside `watch_progress` (`Runtime.task_progress`)."""
    return current_runtime().task_progress(task)


def task_passed_over(task: object, since: int) -> bool | None:
    """True if the scheduler passed `task` over since the `task_progress` token `since`:
    it ran no step since, and it is runnable now and was not made runnable by the running
    step (so it could have run and was not chosen).  False if it ran, or stayed parked
    (blocked or asleep), or finished.  None live (the live loops run woken tasks first
    come, first served).  Sync; never a checkpoint.  Ask only about a task inside
    `watch_progress` (`Runtime.task_passed_over`)."""
    return current_runtime().task_passed_over(task, since)
