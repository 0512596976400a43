"""One check shared by the executor tests: two explorations found the same thing."""

from __future__ import annotations

from odp_async.explore import ExploreResult


def same(a: ExploreResult, b: ExploreResult) -> None:
    """The same search outcome: counts, every failing index, the first failure (its
    index, schedule and token); and `b`'s workers account for all its schedules."""
    assert (a.schedules, a.failing, a.steps) == (b.schedules, b.failing, b.steps)
    assert a.failure is not None
    assert b.failure is not None
    assert (a.failure.index, a.failure.schedule, a.failure.token) == (
        b.failure.index,
        b.failure.schedule,
        b.failure.token,
    )
    assert sum(b.per_worker.values()) == b.schedules
