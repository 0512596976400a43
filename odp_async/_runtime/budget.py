"""A wall-clock budget that a sim run looks at between steps.

Contract
    `spending(out_of_time)` is a context manager: while it is open, every sim run driven
    in its context (a copy of it included: the sim runs tasks in one) calls
    ``out_of_time()`` every `CHECK_EVERY` steps (every ``CHECK_EVERY // 64`` in a run
    that keeps footprints or a trace), between two steps, and when it returns
    True abandons the run: its tasks are unwound as for a chooser's error and
    `RunOutOfTime` propagates to whoever started the run.  The run's result is never
    built, so nothing it did counts: the caller reports the schedules that ended before
    it.  ``out_of_time=None`` (the default outside any ``with``) looks at nothing.

    Without it, ``explore --time`` could not stop a schedule already running: one
    schedule of a scenario with a million pages takes minutes (trial 21c f3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["CHECK_EVERY", "RunOutOfTime", "spending", "time_check"]

#: Steps between two looks at the clock (a power of two: a mask test per step).
CHECK_EVERY = 1024

_OUT_OF_TIME: ContextVar[Callable[[], bool] | None] = ContextVar(
    "odp_async_out_of_time", default=None
)


class RunOutOfTime(Exception):
    """A sim run was abandoned between two steps: the wall-clock budget was spent."""


@contextmanager
def spending(out_of_time: Callable[[], bool] | None) -> Iterator[None]:
    """Runs driven inside look at `out_of_time` every `CHECK_EVERY` steps."""
    token = _OUT_OF_TIME.set(out_of_time)
    try:
        yield
    finally:
        _OUT_OF_TIME.reset(token)


def time_check() -> Callable[[], bool] | None:
    """The budget in force for a run starting now (None: none)."""
    return _OUT_OF_TIME.get()
