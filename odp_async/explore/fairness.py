"""Did a run that hit its step bound stop only because the chooser kept a task from
finishing, or does it not finish under a fair scheduler either (no verdict: a livelock
and a program longer than the bound look the same)?  A liveness verdict must hold under
a fair scheduler (CHESS's fair search, Coyote's fair-prioritization): pct keeps a
low-priority task off the CPU for as long as it likes, and dfs with its preemptions spent
runs one task until it blocks, so a task that spins waiting for another (``while not
flag: await checkpoint()``) reaches any step bound under them although the program
finishes under every fair scheduler.

Contract
    `fair_continuation(run, schedule, max_steps)` replays `schedule` (the bounded run's
    choices), then lets `RoundRobinChooser` continue for up to `max_steps` more steps, and
    returns that run's `SimResult`.  Its outcome decides: still ``step-limit`` means the
    program does not finish even when every runnable task keeps getting turns, within
    the steps given: a livelock or a longer program, undecided (`Execution.unfinished`,
    never starvation); any other outcome means the bound was the chooser's doing.
    Deterministic: the continuation depends only on the schedule, so a token replays to
    the same verdict.

    `fair_after(max_steps)` is the step from which DPOR's own new choices are round-robin
    (`odp_async.explore.dpor.DporChooser`'s ``fair_after``): half the step bound, so the
    tasks a spinning task waits for run inside DPOR's trace, where their races are
    reversed, rather than only in a continuation outside it.

See also
    `odp_async.explore.target.Target.run`, which applies it to every ``step-limit`` run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._runtime.choosers import Chooser, ReplayChooser
from .._runtime.sim import SimResult

__all__ = ["RoundRobinChooser", "fair_after", "fair_continuation"]


class RoundRobinChooser:
    """A fair chooser: the runnable task it picked least recently (a task it has not yet
    picked first, oldest first).  Every task that stays runnable gets a turn within as
    many choices as there are runnable tasks.  Draws answer 0."""

    __slots__ = ("_picked", "_turn")

    def __init__(self) -> None:
        self._picked: dict[int, int] = {}
        self._turn = 0

    def new_execution(self) -> None:
        self._picked.clear()
        self._turn = 0

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        best = min(range(len(runnable)), key=lambda i: self._picked.get(runnable[i].id, -1))
        self._turn += 1
        self._picked[runnable[best].id] = self._turn
        return best

    def draw(self, n: int, label: object) -> int:
        return 0


def fair_after(max_steps: int) -> int:
    """The step (half of `max_steps`) from which a DPOR search chooses round-robin."""
    return max_steps // 2


def fair_continuation(
    run: Callable[[Chooser, int], SimResult], schedule: Sequence[int], max_steps: int
) -> SimResult:
    """`run(chooser, step_bound)` once more: `schedule` replayed, then round-robin for up
    to `max_steps` further steps."""
    chooser = ReplayChooser(schedule, then=RoundRobinChooser(), exact=False)
    return run(chooser, 2 * max_steps)
