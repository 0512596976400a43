"""Defects a new-user trial found in the explorer: a search that ran nothing reported as
clean, ``--time`` ignored by the split dpor search, a target that needs arguments, the
shrinker dropping a minimality it proved, and serial dpor's header and bound 0."""

from __future__ import annotations

import attrs
import pytest

from odp_async.cli import ExitCode, main
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


# --- 1. zero schedules are never "clean" ------------------------------------------------


@pytest.mark.parametrize("chooser", ["portfolio", "random", "pct", "dfs", "dpor"])
def test_a_budget_spent_in_the_setup_still_runs_the_first_schedule(chooser: str) -> None:
    target = Target.resolve("classic:twostage_fixed")
    config = ExploreConfig(chooser=chooser, schedules=100, time=0.5)  # spent at once
    result = explore_target(target, config, clock=FakeClock())
    assert result.schedules >= 1
    assert result.out_of_time
    assert "nothing explored" not in result.claim


def test_a_result_with_no_schedule_claims_nothing() -> None:
    target = Target.resolve("classic:twostage_fixed")
    ran = explore_target(target, ExploreConfig(schedules=2), clock=FakeClock())
    empty = attrs.evolve(ran, schedules=0, out_of_time=True)
    assert empty.claim == "nothing explored (time budget reached before the first schedule)"
    assert "clean" not in empty.claim
    assert "no violation" not in empty.claim


def test_the_cli_exits_2_when_nothing_was_explored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import odp_async.explore.runner as runner

    real = runner.explore

    def explore_nothing(*args: object, **kwargs: object) -> object:
        return attrs.evolve(real(*args, **kwargs), schedules=0, out_of_time=True)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "explore", explore_nothing)
    code = main(["explore", "classic:twostage_fixed", "--schedules", "2", "--time", "5"])
    out, err = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert "clean" not in out
    assert "nothing explored" in out
    assert "nothing explored (time budget reached before the first schedule)" in err
    assert "Traceback" not in err


# --- 2. --time stops the split dpor search ----------------------------------------------


def test_the_budget_stops_the_split_dpor_search() -> None:
    target = Target.resolve("classic:reorder_3_fixed")
    config = ExploreConfig(chooser="dpor", schedules=100_000, jobs=2, time=3.0)
    unlimited = explore_target(
        target, config.evolve(time=None), executor=InlineExecutor(), clock=FakeClock()
    )
    result = explore_target(target, config, executor=InlineExecutor(), clock=FakeClock())
    assert result.out_of_time
    assert not result.complete
    assert 0 < result.schedules < unlimited.schedules
    assert result.claim.endswith("(time budget reached, not complete)")
    assert not unlimited.out_of_time
