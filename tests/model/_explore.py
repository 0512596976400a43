"""Shared helpers: explore a scenario until it fails, or prove it clean over a budget."""

from __future__ import annotations

from typing import Any

from odp_async.explore.runner import ExploreResult, explore
from odp_async.scenarios import Scenario

#: Schedules a fixed variant must stay clean over, per chooser (issue 10).
CLEAN_BUDGET = 2000
CHOOSERS = ("random", "pct")


def find(
    scenario: str | Scenario,
    chooser: str,
    *,
    protocol: str = "odp2014",
    options: dict[str, Any] | None = None,
    budget: int = CLEAN_BUDGET,
) -> ExploreResult:
    """Explore until the first failing schedule (not shrunk: we count schedules)."""
    return explore(
        scenario, protocol, options=options, chooser=chooser, schedules=budget, shrink=False
    )


def assert_clean(
    scenario: str | Scenario,
    chooser: str,
    *,
    protocol: str = "odp2014",
    options: dict[str, Any] | None = None,
) -> ExploreResult:
    result = find(scenario, chooser, protocol=protocol, options=options)
    assert result.failure is None, result.failure.describe()
    assert result.schedules == CLEAN_BUDGET
    return result


def assert_found(
    scenario: str | Scenario,
    chooser: str,
    kind: str,
    *,
    protocol: str = "odp2014",
    options: dict[str, Any] | None = None,
) -> ExploreResult:
    result = find(scenario, chooser, protocol=protocol, options=options)
    assert result.failure is not None, f"{chooser}: nothing found in {result.schedules}"
    assert result.failure.violation.kind == kind, result.failure.describe()
    return result
