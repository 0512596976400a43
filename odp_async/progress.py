"""How far a long exploration has got, shown while it runs: a live line or a periodic one.

Contract
    `ExploreProgress(label, stream=..., live=..., every=...)` is the ``progress=``
    callback of `odp_async.explore.explore`: call it with each progress update (any object
    with ``done``, ``total``, ``failures`` and ``elapsed``: schedules run, the budget,
    failing schedules found so far, seconds since the exploration started).  Use it as a
    context manager around the exploration.

    ``live=True`` (a terminal) draws one rich progress line on `stream`, redrawn in place
    (at most every `LIVE_EVERY` seconds of the exploration): schedules done/total,
    schedules per second, failures found so far, time left; it is erased when the
    context ends.  ``live=False`` writes a plain line to `stream` whenever
    at least `every` seconds of the exploration (``elapsed``, the runner's clock, so a
    test drives it with made-up updates) have passed since the last line, e.g.::

        registration-race/odp2014: 2000/10000 schedules, 1234/s, 0 found, ~6s left

    The time left is the schedules still to run at the rate so far, never more than what
    is left of a wall-clock ``budget`` (seconds: ``--time``); it is omitted until the
    rate is known.  Nothing is written after the context ends.

Concurrency
    Called from the exploring thread only (the runner calls its callback between
    schedules).

See also
    `odp_async.cli` (the ``explore`` command), `odp_async.explore.runner`.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any, Protocol, TextIO

__all__ = ["LIVE_EVERY", "ExploreProgress", "ProgressLike", "describe_progress"]

#: Seconds between redraws of the live line.
LIVE_EVERY = 0.1


class ProgressLike(Protocol):
    """What a progress update carries (`odp_async.explore`'s `ProgressUpdate` has these)."""

    @property
    def done(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def elapsed(self) -> float: ...


def _duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate(update: ProgressLike) -> float:
    return update.done / update.elapsed if update.elapsed > 0 else 0.0


def _left(update: ProgressLike, budget: float | None = None) -> str:
    """``~12s left`` at the rate so far, never past the time `budget` (seconds, or None);
    empty while the rate is unknown, or when done."""
    rate = _rate(update)
    if rate <= 0 or update.done >= update.total:
        return ""
    left = (update.total - update.done) / rate
    if budget is not None:
        left = min(left, max(0.0, budget - update.elapsed))
    return f"~{_duration(left)} left"


def describe_progress(label: str, update: ProgressLike, budget: float | None = None) -> str:
    """One plain line for `update` (see the module docstring); `budget`: the search's
    wall-clock budget in seconds, which bounds the time left shown."""
    line = f"{label}: {update.done}/{update.total} schedules, {_rate(update):.0f}/s"
    line += f", {update.failures} found"
    left = _left(update, budget)
    return f"{line}, {left}" if left else line


class ExploreProgress:
    """The ``progress=`` callback of an exploration; see the module docstring."""

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        live: bool,
        every: float = 5.0,
        budget: float | None = None,
    ) -> None:
        if not every >= 0:  # also refuses nan
            from .errors import InvalidArgument

            raise InvalidArgument(f"progress interval must be >= 0 seconds, got {every!r}")
        self.label = label
        self.stream = stream
        self.live = live
        self.every = every
        #: The search's wall-clock budget in seconds (None: none): bounds the time left.
        self.budget = budget
        #: The exploration time of the last line written or drawn (None: none yet).
        self.last_line: float | None = None
        self.lines = 0
        self._open = False
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ExploreProgress:
        self._open = True
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "schedules, {task.fields[rate]}/s, "
                    "{task.fields[found]} found{task.fields[left]}"
                ),
                # only used on a terminal: drawn in place, by `__call__` (no thread)
                console=Console(file=self.stream, force_terminal=True),
                transient=True,
                auto_refresh=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.label, total=None, rate="-", found=0, left=""
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, update: ProgressLike) -> None:
        if not self._open:
            return
        since = update.elapsed - (self.last_line if self.last_line is not None else 0.0)
        if self._progress is not None:
            if self.last_line is not None and since < LIVE_EVERY:
                return
            rate = _rate(update)
            self._progress.update(
                self._task,
                completed=update.done,
                total=update.total,
                rate=f"{rate:.0f}",
                found=update.failures,
                left=f", {left}" if (left := _left(update, self.budget)) else "",
            )
            self._progress.refresh()
            self.last_line = update.elapsed
            self.lines += 1
            return
        if since >= self.every:
            self.stream.write(describe_progress(self.label, update, self.budget) + "\n")
            self.stream.flush()
            self.last_line = update.elapsed
            self.lines += 1
