"""One exhaustive search's loop, shared by the tests that compare what searches reach."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from odp_async._runtime.footprint import tracking_session
from odp_async.explore.dfs import PrunedExecution

R = TypeVar("R")


class Search(Generic[R]):
    """Iterating runs `chooser`'s search in one `tracking_session`, yielding the result
    of each finished ``run()`` while ``chooser.has_more`` (asked first: DPOR's finishes
    the last run) and the budgets allow: ``chooser.executions < max_executions`` (blocked
    runs count there), ``runs < max_runs``.  A run that raises `PrunedExecution` is
    counted in `pruned`, not yielded; `runs` counts the yielded ones, the current one
    included.  The session ends with the loop, or when the iterator is closed (the
    caller's loop raised).  A loop that ended, the budget spent or not, asserts
    ``chooser.is_complete`` after the session if `complete`.  Keeps no result."""

    def __init__(
        self,
        chooser: Any,
        run: Callable[[], R],
        *,
        max_executions: int | None = None,
        max_runs: int | None = None,
        complete: bool = True,
    ) -> None:
        self.chooser = chooser
        self._run = run
        self._max_executions = max_executions
        self._max_runs = max_runs
        self._complete = complete
        self.runs = 0
        self.pruned = 0

    def _within_budget(self) -> bool:
        if self._max_executions is not None and self.chooser.executions >= self._max_executions:
            return False
        return self._max_runs is None or self.runs < self._max_runs

    def __iter__(self) -> Iterator[R]:
        with tracking_session(self.chooser):
            while self.chooser.has_more and self._within_budget():
                try:
                    result = self._run()
                except PrunedExecution:
                    self.pruned += 1
                    continue
                self.runs += 1
                yield result
        if self._complete:
            assert self.chooser.is_complete, self.chooser.statistics()
