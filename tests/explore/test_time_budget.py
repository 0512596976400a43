"""The wall-clock budget (`ExploreConfig.time`, ``--time``), with a fake clock, and the
meaning of `ExploreResult.bound` on a hit and a miss."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore import ExploreConfig
from odp_async.explore.executors import InlineExecutor
from odp_async.explore.runner import explore_target
from odp_async.explore.target import Target


class FakeClock:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("chooser", ["portfolio", "random", "pct", "dfs", "dpor"])
def test_the_budget_stops_every_chooser(chooser: str) -> None:
    target = Target.resolve("classic:twostage_fixed")  # no bug: it would run the budget
    config = ExploreConfig(chooser=chooser, schedules=10_000, time=3.0)  # dpor: 4 traces
    result = explore_target(target, config, clock=FakeClock())
    assert result.out_of_time
    assert 0 < result.schedules < 10
    assert not result.complete
    assert result.claim.endswith("schedules (time budget reached, not complete)")
    unlimited = explore_target(target, config.evolve(time=None, schedules=30), clock=FakeClock())
    assert not unlimited.out_of_time
    assert unlimited.schedules == 30 or unlimited.complete


def test_the_budget_stops_submitting_chunks() -> None:
    # no bug, and the portfolio's dpor member completes only at schedule 406
    target = Target.resolve("classic:locked-counter-3")
    config = ExploreConfig(schedules=10_000, time=20.0)
    result = explore_target(target, config, executor=InlineExecutor(), clock=FakeClock())
    assert result.out_of_time
    assert result.schedules < 10_000


def test_a_failure_before_the_budget_is_reported() -> None:
    target = Target.resolve("classic:lost-update")
    result = explore_target(target, ExploreConfig(time=1000.0, shrink=False), clock=FakeClock())
    assert result.failure is not None
    assert not result.out_of_time


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("nan"), float("inf"), 10**9, "5", True])
def test_bad_budgets_are_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="time must be"):
        ExploreConfig(time=bad)  # type: ignore[arg-type]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("bad", ["0", "-3", "nan", "inf", "3000000"])
def test_cli_refuses_a_bad_time_in_one_line(bad: str) -> None:
    proc = _cli("explore", "classic:lost-update", "--time", bad)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--time" in lines[0]
    assert bad in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_time_runs_and_reports() -> None:
    proc = _cli(
        "explore", "classic:locked-counter-3", "--time", "600", "--schedules", "50", "--json"
    )  # no bug, and the portfolio's dpor member completes only at schedule 406
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["out_of_time"] is False
    assert data["chooser"] == "portfolio"
    assert data["schedules"] == 50


# --- bound: the same meaning on a hit and a miss ---------------------------------------------


def test_dfs_bound_is_the_completed_level_on_a_hit() -> None:
    # lost update needs one preemption: found while exploring level 1, level 0 complete
    target = Target.resolve("classic:lost-update")
    hit = explore_target(target, ExploreConfig(chooser="dfs", shrink=False))
    assert hit.failure is not None
    assert hit.found_bound == 1
    assert hit.bound == 0


def test_dfs_bound_is_the_completed_level_on_a_miss() -> None:
    # a budget spent inside level 1: level 0 is the one completed, as on a hit
    target = Target.resolve("classic:twostage_fixed")
    miss = explore_target(target, ExploreConfig(chooser="dfs", schedules=3))
    assert miss.failure is None
    assert not miss.complete
    assert miss.bound == 0
    assert miss.found_bound is None
    whole = explore_target(target, ExploreConfig(chooser="dfs", schedules=10_000))
    assert whole.complete
    assert whole.bound == 3


def test_a_bounded_dpor_cut_by_the_clock_does_not_blame_its_bound() -> None:
    target = Target.resolve("classic:account_fixed")  # 6 traces; the clock stops it at 3
    config = ExploreConfig(chooser="dpor", schedules=10_000, time=3.0, preemption_bound=2)
    result = explore_target(target, config, clock=FakeClock())
    assert result.out_of_time
    assert not result.complete
    assert result.claim == "no violation in 3 schedules (time budget reached, not complete)"
