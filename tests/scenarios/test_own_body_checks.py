"""What a check of your own in a `Scenario` body gives (README, "What `found` means, and
`error`"): a failed ``assert`` is `error`; the same check recorded with the world's
checker is `found`, with its kind."""

from __future__ import annotations

from odp_async.explore.runner import explore
from odp_async.scenarios import Scenario, Verdict
from odp_async.world import World


async def _asserts(w: World) -> None:
    assert w.mm.is_dead, "my own check"


async def _records(w: World) -> None:
    if not w.mm.is_dead:
        w.checker.violation("stale-dma", "my own check")


def test_an_assert_in_a_body_is_an_error() -> None:
    found = explore(Scenario("asserts", "", _asserts, ()), "odp2014", schedules=3)
    assert found.failure is not None
    assert found.failure.verdict is Verdict.ERROR
    assert "my own check" in found.failure.describe()


def test_a_check_recorded_with_the_checker_is_found() -> None:
    found = explore(Scenario("records", "", _records, ()), "odp2014", schedules=3)
    assert found.failure is not None
    assert found.failure.verdict is Verdict.FOUND
    assert found.failure.violation.kind == "stale-dma"
    assert found.failure.violation.detail == "my own check"
