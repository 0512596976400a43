"""The one-preemption sweep: every single preemption of one non-preemptive run, in order.

Contract
    `SweepChooser` is a systematic search of the schedules with exactly one preemption,
    in the order of the preemption's position: the idea of preemption bounding at bound
    1 (Musuvathi and Qadeer, PLDI 2007: most concurrency bugs need few preemptions),
    walked from the front of the run.

    - **The base run** never preempts: the task that ran the previous step (`last`)
      runs again while it can; when it blocks or ends, the runnable task of lowest id
      runs.  It is a function of the program alone.
    - **An opportunity** is a choice point of the base run where `last` could go on:
      its *alternatives* are the other runnable tasks, one per class.  A task that has
      not run yet is in the class of every other such task of the same group running the
      same code (``threads created at scheduling points``: 99 identical fresh writers
      are one alternative, the reader another); a task that ran is its own class; a
      class is represented by its task of lowest id.  Classes only order the sweep:
      nothing is claimed about the schedules they leave out.
    - ``SweepChooser(j)`` follows the base run, counting alternatives opportunity by
      opportunity, and at the opportunity where the count passes `j` switches to the
      ``j``-th alternative (counted from 0 over the whole run); from then on it runs
      non-preemptively as the base run does.  So ordinals ``0 .. total - 1`` are the
      one-preemption schedules, front to back, where `total` (the alternatives of the
      base run) is what ``SweepChooser(None)`` counts (it preempts nowhere).  An ordinal
      past the end runs the base run again.
    - Value choices (`draw`) are always 0.

    Nothing is random: ``SweepChooser(j)`` gives the same schedule in any process, for
    a program that replays its own choices.  A one-preemption bug whose preempted task
    runs early in the base run is found within a few alternatives per opportunity before
    it, whatever the number of identical tasks (``twostage_100``: ordinal 103 of 498),
    where a random choice of the point and the task has odds of about 1/(N·k).

Concurrency
    One chooser drives one sim run at a time, on the caller's thread.

See also
    `odp_async.explore.portfolio` (the ``sweep`` member), `odp_async.explore.dfs`
    (iterative preemption bounding, exhaustive).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from ..errors import InvalidArgument

__all__ = ["SweepChooser"]


def _class_key(task: Any) -> Hashable:
    """A fresh task's class: its group and code; a task that ran: itself."""
    coro = task.coro
    code = getattr(coro, "cr_code", None)
    # not started yet: neither suspended at an await nor finished (no frame)
    if code is not None and not coro.cr_suspended and coro.cr_frame is not None:
        return ("fresh", id(task.group), code)
    key: int = task.id
    return key


class SweepChooser:
    """The `ordinal`-th one-preemption schedule (None: the base run, counting).

    After a run, `total` is the number of alternatives it counted (with `ordinal` None,
    or past the end: every one-preemption schedule there is) and `preempted_at` the
    opportunity (0-based) where it switched, or None.  Raises `InvalidArgument` for an
    `ordinal` that is not None or an int >= 0.
    """

    __slots__ = ("_done", "opportunities", "ordinal", "preempted_at", "total")

    def __init__(self, ordinal: int | None = None) -> None:
        if ordinal is not None and (
            not isinstance(ordinal, int) or isinstance(ordinal, bool) or ordinal < 0
        ):
            raise InvalidArgument(
                f"ordinal must be None or an int >= 0, got {ordinal!r} ({type(ordinal).__name__})",
                "ordinal",
                ordinal,
            )
        self.ordinal = ordinal
        self.total = 0
        self.opportunities = 0
        self.preempted_at: int | None = None
        self._done = False

    def new_execution(self) -> None:
        self.total = 0
        self.opportunities = 0
        self.preempted_at = None
        self._done = False

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        at = -1
        if last is not None:
            for i, task in enumerate(runnable):
                if task is last:
                    at = i
                    break
        if at < 0:  # `last` blocked or ended: the oldest runnable task
            return min(range(len(runnable)), key=lambda i: runnable[i].id)
        if self._done:
            return at
        mine = _class_key(last)
        alternatives: dict[Hashable, int] = {}
        for i in sorted(range(len(runnable)), key=lambda i: runnable[i].id):
            if i != at:
                key = _class_key(runnable[i])
                if key != mine:
                    alternatives.setdefault(key, i)
        if not alternatives:
            return at
        reps = list(alternatives.values())
        j = self.ordinal
        if j is not None and self.total <= j < self.total + len(reps):
            self._done = True
            self.preempted_at = self.opportunities
            return reps[j - self.total]
        self.total += len(reps)
        self.opportunities += 1
        return at

    def draw(self, n: int, label: object) -> int:
        return 0

    def __repr__(self) -> str:
        return f"SweepChooser({self.ordinal!r})"
