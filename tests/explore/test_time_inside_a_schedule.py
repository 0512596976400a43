"""Trial 21c f3: ``--time`` could not stop a schedule already running, so one schedule
of a scenario with a million pages (minutes, at the loader's limit) ran on past any
budget.  A run now looks at the budget every `CHECK_EVERY` steps, between two steps, and
a spent budget abandons it: the result counts the schedules that ended before it, says
``out_of_time`` and is not complete; the abandoned one counts for nothing."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from odp_async.cli import ExitCode
from odp_async.explore import ExploreConfig
from odp_async.explore.runner import explore_target
from odp_async.explore.target import Target
from tests._usermod import module_name

LONG = """
from odp_async import checkpoint, task_group


async def long_run(n=10**9):
    async def spin(name):
        for _ in range(n):
            await checkpoint(name)

    async with task_group() as tg:
        tg.start_soon(spin, "a", name="a")
        tg.start_soon(spin, "b", name="b")


async def short_run():
    await long_run(3)
"""


@pytest.fixture
def long(user_module: Any) -> ModuleType:
    module: ModuleType = user_module(LONG, "long_run")
    return module


def fake_clock(step: float) -> Any:
    """A clock that advances `step` seconds each time it is read."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


@pytest.mark.parametrize("chooser", ["random", "pct", "portfolio", "dpor"])
def test_a_schedule_longer_than_the_budget_is_abandoned(long: ModuleType, chooser: str) -> None:
    target = Target.resolve(f"{long.__name__}:long_run")
    config = ExploreConfig(chooser=chooser, schedules=5, time=50.0, max_steps=10**9)
    result = explore_target(target, config, clock=fake_clock(1.0))
    assert result.schedules == 0
    assert result.out_of_time
    assert not result.complete
    assert result.failure is None


def test_schedules_that_end_before_the_budget_count(long: ModuleType) -> None:
    target = Target.resolve(f"{long.__name__}:short_run")
    config = ExploreConfig(chooser="random", schedules=10**6, time=200.0)
    result = explore_target(target, config, clock=fake_clock(1.0))
    assert 0 < result.schedules < 10**6
    assert result.out_of_time


CLI = [sys.executable, "-m", "odp_async.cli", "explore"]
LONG_OPTIONS = ["--chooser", "random", "--max-steps", str(10**9), "--time", "1"]


def test_the_cli_stops_a_long_schedule_at_its_time_budget(tmp_path: Path) -> None:
    name = module_name("long_cli", tmp_path)
    (tmp_path / f"{name}.py").write_text(LONG)
    proc = subprocess.run(
        [*CLI, f"{name}:long_run", *LONG_OPTIONS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,  # without the check: 10**9 steps, hours
        check=False,
    )
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "time budget reached before the first schedule" in proc.stderr
    assert "give a longer --time" in proc.stderr
    assert "Traceback" not in proc.stderr
