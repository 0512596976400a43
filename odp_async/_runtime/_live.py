"""The live runtimes: real tasks on trio or asyncio, inside the user's own program.

Contract
    `live_runtime()` returns the runtime of the event loop running the current task,
    found with sniffio exactly as anyio finds its backend; outside any loop it raises
    `ProtocolViolation`.  Task groups, cancel scopes, sleeping and the clock are anyio's,
    so odp_async code composes with the user's anyio/trio/asyncio code (their cancel
    scopes cancel our waits, our task groups are theirs).  Parking and waking are written
    per backend on its cheapest primitive: trio's `wait_task_rescheduled`/`reschedule`,
    an asyncio future.

Concurrency
    A trio park is aborted only before its wake (trio calls the abort function only while
    the task is still blocked), so trio never needs the pass-on path.  On asyncio a task
    can be cancelled after its future got a result; the waiter then carries ``woken`` and
    the queue passes the wake on (see `odp_async.sync.WaitQueue.park`).

See also
    `odp_async._runtime._base` (the trap protocol), `odp_async._runtime.sim`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import secrets
import types
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import anyio
import outcome
import sniffio
import trio
import trio.lowlevel

from ..errors import InvalidArgument, ProtocolViolation, RunTimeout
from ._base import (
    LIVE_RUNTIMES,
    NO_LIVE_RUNTIME,
    CancelScopeLike,
    Runtime,
    TaskGroupLike,
    Waiter,
    check_draw,
    check_sleep,
    deadline_after,
    live_runtime,
)

__all__ = [
    "LIVE_RUNTIMES",
    "AsyncioRuntime",
    "TrioRuntime",
    "find_live_runtime",
    "live_runtime",
    "run_live",
]

T = TypeVar("T")


class _AnyioRuntime(Runtime):
    """What both live runtimes take from anyio unchanged."""

    __slots__ = ()

    def sleep(self, seconds: float) -> Awaitable[None]:
        check_sleep(seconds)
        return anyio.sleep(seconds)

    def now(self) -> float:
        return anyio.current_time()

    def task_group(self) -> TaskGroupLike:
        return anyio.create_task_group()

    def cancel_scope(self, *, deadline: float = math.inf, shield: bool = False) -> CancelScopeLike:
        return anyio.CancelScope(deadline=deadline, shield=shield)

    def fail_after_scope(self, seconds: float) -> AbstractContextManager[CancelScopeLike]:
        deadline_after(0.0, seconds)  # the sim's check of `seconds`: InvalidArgument
        return anyio.fail_after(seconds)

    def cancelled_exc_class(self) -> type[BaseException]:
        return anyio.get_cancelled_exc_class()

    def draw(self, n: int, label: object = None) -> int:
        check_draw(n)
        # Live interleavings are not controlled, so neither are live draws.
        return secrets.randbelow(n)


class TrioRuntime(_AnyioRuntime):
    """Parks on `trio.lowlevel.wait_task_rescheduled`, wakes with `reschedule`."""

    __slots__ = ()

    checkpoint_if_cancelled = staticmethod(trio.lowlevel.checkpoint_if_cancelled)

    def yield_after_grant(self) -> Awaitable[None]:
        return trio.lowlevel.cancel_shielded_checkpoint()  # noqa: ASYNC105 - awaited by caller

    current_task = staticmethod(trio.lowlevel.current_task)

    def running_task_probe(self, task: object) -> tuple[Callable[[Any], object], Any]:
        return _TRIO_PROBE

    def task_name(self, task: object) -> str:
        return str(getattr(task, "name", task))

    def checkpoint(self, label: object = None) -> Awaitable[None]:
        return trio.lowlevel.checkpoint()  # noqa: ASYNC105 - the caller awaits it

    def park(self, waiter: Waiter) -> Awaitable[object]:
        waiter.handle = trio.lowlevel.current_task()
        if not waiter.cancellable:
            return _park_shielded()

        def abort(_: Any) -> trio.lowlevel.Abort:
            # Called only while the task is still blocked, i.e. before any wake.
            waiter.queue._discard(waiter)
            return trio.lowlevel.Abort.SUCCEEDED

        return trio.lowlevel.wait_task_rescheduled(abort)  # noqa: ASYNC105 - caller awaits

    def wake(self, waiter: Waiter, value: object) -> None:
        trio.lowlevel.reschedule(waiter.handle, outcome.Value(value))  # type: ignore[arg-type]


def _trio_task_now(_: object) -> object:
    try:
        return trio.lowlevel.current_task()
    except RuntimeError:  # no trio run on this thread
        return None


def _trio_probe() -> tuple[Callable[[Any], object], Any]:
    """`running_task_probe` for trio: ``getattr(GLOBAL_RUN_CONTEXT, "task", None)``, what
    `trio.lowlevel.current_task` reads, as one C call (no Python frame, no exception
    outside trio); `_trio_task_now` if trio's internals are laid out otherwise."""
    run_context = getattr(
        getattr(getattr(trio, "_core", None), "_run", None), "GLOBAL_RUN_CONTEXT", None
    )
    if run_context is None:
        return _trio_task_now, None
    return functools.partial(getattr, run_context, "task"), None


_TRIO_PROBE = _trio_probe()


def _no_abort(_: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


async def _park_shielded() -> object:
    with trio.CancelScope(shield=True):
        value = await trio.lowlevel.wait_task_rescheduled(_no_abort)
    return value


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    # What asyncio.sleep(0) does, without its two extra layers: a bare yield makes the
    # task give way for one loop iteration.
    yield


def _asyncio_current_task_of() -> Callable[[asyncio.AbstractEventLoop], object]:
    """``asyncio.current_task(loop)``, without its Python layer where it has one (3.11:
    a function reading the loop's entry of ``asyncio.tasks._current_tasks``, the table
    the C tasks keep), on the hot path of every live acquire and release."""
    table = getattr(asyncio.tasks, "_current_tasks", None)
    if isinstance(asyncio.current_task, types.FunctionType) and isinstance(table, dict):
        return table.get
    return asyncio.current_task


_current_task_of = _asyncio_current_task_of()
_TASK: Any = asyncio.Task
_FUTURE: Any = asyncio.Future
_BASE_CREATE_FUTURE = asyncio.BaseEventLoop.create_future


class AsyncioRuntime(_AnyioRuntime):
    """Parks on an asyncio future, wakes with ``set_result``."""

    __slots__ = ()

    wakes_future = True

    def current_task(self) -> object:
        return _current_task_of(asyncio.get_running_loop())

    def running_task_probe(self, task: object) -> tuple[Callable[[Any], object], Any] | None:
        # The current task of the task's own loop: no get_running_loop (its getpid()
        # check is a system call).
        if not isinstance(task, asyncio.Task):
            return None
        return _current_task_of, task.get_loop()

    def future_maker(self, task: object) -> Callable[[], Any] | None:
        # What `park` makes, as one C call: ``Future(loop=loop)`` unless the loop makes its
        # own futures.
        if not isinstance(task, asyncio.Task):
            return None
        loop = task.get_loop()
        if type(loop).create_future is _BASE_CREATE_FUTURE:
            return functools.partial(_FUTURE, loop=loop)
        return loop.create_future

    def task_name(self, task: object) -> str:
        if isinstance(task, asyncio.Task):
            return task.get_name()
        return repr(task)

    def checkpoint(self, label: object = None) -> Awaitable[None]:
        return _yield_once()

    def yield_after_grant(self) -> Awaitable[None]:
        return _yield_once()

    def park(self, waiter: Waiter) -> Awaitable[object]:
        task: Any = waiter.task
        loop = task.get_loop() if type(task) is _TASK else asyncio.get_running_loop()
        fut: asyncio.Future[object]
        if type(loop).create_future is _BASE_CREATE_FUTURE:
            fut = _FUTURE(loop=loop)  # what it would make, without its Python layer
        else:
            fut = loop.create_future()
        waiter.handle = fut
        if not waiter.cancellable:
            return _await_shielded(fut)
        return fut

    def wake(self, waiter: Waiter, value: object) -> None:
        # `Runtime.wakes_future`: `odp_async.sync.Mutex.release` does this inline (and
        # `Mutex` parks inline on a future of `future_maker`).
        fut: Any = waiter.handle  # the future `park` made
        # A cancelled future means the task is unwinding; it sees `waiter.woken` and
        # passes the wake on, so nothing is lost by not setting a result here.
        if not fut.done():
            fut.set_result(value)


async def _await_shielded(fut: asyncio.Future[object]) -> object:
    with anyio.CancelScope(shield=True):
        await asyncio.shield(fut)
    return fut.result()


# Stateless, one per backend: registered once, at this module's first import.
LIVE_RUNTIMES.update(trio=TrioRuntime(), asyncio=AsyncioRuntime())


def find_live_runtime() -> Runtime:
    """`live_runtime`'s slow path: the running loop's runtime, or `ProtocolViolation`."""
    # sniffio's own lookup order, minus its slow generic asyncio probe.
    name = sniffio.thread_local.name or sniffio.current_async_library_cvar.get()
    if name is None:
        if asyncio._get_running_loop() is None:
            raise ProtocolViolation(NO_LIVE_RUNTIME)
        name = "asyncio"
    try:
        return LIVE_RUNTIMES[name]
    except KeyError:
        raise ProtocolViolation(
            f"odp_async runs on trio or asyncio, but the running async library is {name!r}"
        ) from None


def run_live(
    main: Callable[..., Awaitable[T]], *args: Any, backend: str, timeout: float | None = None
) -> T:
    """Run ``main(*args)`` on a new trio or asyncio event loop (through anyio).

    With `timeout`, a run still going after that many seconds is cancelled and raises
    `RunTimeout` (a `TimeoutError`); a `TimeoutError` of the program's own (its
    `fail_after`, a ``raise``) leaves unchanged, as any exception of the program does.
    Raises `InvalidArgument` for an unknown backend.
    """
    if backend not in LIVE_RUNTIMES:
        raise InvalidArgument(f"unknown backend {backend!r}; expected trio or asyncio")

    async def bounded() -> T:
        with anyio.move_on_after(timeout):
            return await main(*args)
        # Only the limit's cancellation, caught by the scope, gets here: the program
        # neither returned nor raised.
        raise RunTimeout(f"the run did not finish within {timeout}s")

    return anyio.run(bounded, backend=backend)
