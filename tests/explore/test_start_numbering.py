"""`start` counts schedules from 0, reports count them from 1 (one pinned rerun)."""

from __future__ import annotations

from odp_async.explore.runner import explore


def test_the_failure_at_schedule_n_is_rerun_by_start_n_minus_1() -> None:
    found = explore("classic:lost-update", chooser="random", seed=3, shrink=False)
    assert found.failure is not None
    n = found.failure.index
    again = explore(
        "classic:lost-update", chooser="random", seed=3, start=n - 1, schedules=1, shrink=False
    )
    assert again.failure is not None
    assert again.failure.index == n
    assert again.failure.schedule == found.failure.schedule
