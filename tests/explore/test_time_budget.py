"""The wall-clock budget (`ExploreConfig.time`, ``--time``), with a fake clock, and the
meaning of `ExploreResult.bound` on a hit and a miss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore import ExploreConfig
from odp_async.explore.executors import InlineExecutor
from odp_async.explore.runner import explore_target
from odp_async.explore.target import Target
from tests._usermod import module_name


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
    # pct's and the portfolio's probe runs read the clock first (one each, and one
    # before the first schedule); dpor: 4 traces
    budget = 15.0 if chooser in ("pct", "portfolio") else 3.0
    config = ExploreConfig(chooser=chooser, schedules=10_000, time=budget)
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


# A program whose every run takes one second of a fake clock (it moves the clock), and
# records the time each run starts at.
TICKING = """
import odp_async as oa

NOW = [0.0]
STARTS = []


async def prog():
    STARTS.append(NOW[0])
    NOW[0] += 1.0
    await oa.checkpoint()
"""


@pytest.mark.parametrize(
    ("chooser", "budget", "schedules", "probes"),
    [
        # the budget runs out in pct's probe runs (10: the start check's FIFO run, then
        # pct's, one fifo and 8 random): no run starts after it, not even the first
        # schedule (it used to run them all and one schedule)
        ("pct", 3.5, 0, 4),
        ("portfolio", 3.5, 0, 4),
        ("pct", 12.5, 3, 10),
        ("portfolio", 14.5, 4, 11),  # the portfolio's sweep is one more probe run
        ("random", 3.5, 3, 1),  # the start check's run
    ],
)
def test_every_run_starts_within_the_budget_and_is_counted(
    user_module: Any, chooser: str, budget: float, schedules: int, probes: int
) -> None:
    # trial d f4: `--chooser pct --time 2` of a 0.5 s program made 10 runs in 5 s
    module = user_module(TICKING, "ticking")
    target = Target.resolve(f"{module.__name__}:prog")
    config = ExploreConfig(chooser=chooser, schedules=100, time=budget)
    result = explore_target(target, config, clock=lambda: float(module.NOW[0]))
    assert result.out_of_time
    assert (result.schedules, result.probes) == (schedules, probes)
    assert len(module.STARTS) == schedules + probes  # every run counted or a probe
    assert max(module.STARTS) < budget  # none started past the budget
    assert module.NOW[0] <= budget + 1  # over by one run at most


SLOW_DPOR = """
import odp_async as oa

NOW = [0.0]
STARTS = []


async def prog():
    STARTS.append(NOW[0])
    NOW[0] += 1.0

    async def worker(name):
        for _ in range(3):
            await oa.checkpoint(name)

    async with oa.task_group() as tg:
        tg.start_soon(worker, "a", name="a")
        tg.start_soon(worker, "b", name="b")
"""


def test_the_portfolios_dpor_member_runs_nothing_ahead_under_a_budget(
    user_module: Any,
) -> None:
    # its executions used to run ahead of their slots in batches (1, 2, 4...): the ones
    # whose slot the budget never reached ran and were counted nowhere
    module = user_module(SLOW_DPOR, "slowdpor")
    target = Target.resolve(f"{module.__name__}:prog")
    config = ExploreConfig(schedules=300, time=53.5)
    result = explore_target(target, config, clock=lambda: float(module.NOW[0]))
    assert result.out_of_time
    assert result.probes == 11  # the start check's FIFO run, pct's 9, the sweep's
    assert len(module.STARTS) == result.schedules + result.pruned + result.probes
    assert max(module.STARTS) < 53.5


CLI = [sys.executable, "-m", "odp_async.cli", "explore"]

SLOW = """
import sys
import time

import odp_async as oa


async def prog():
    print("run", file=sys.stderr, flush=True)
    await oa.checkpoint()
    time.sleep(1.0)
"""


def test_the_cli_says_the_probe_runs_spent_the_budget(tmp_path: Path) -> None:
    # trial d f4's command line: every run of the program outlasts the budget, so only
    # the first probe run starts (it used to run 9 probe runs and a schedule)
    name = module_name("slowprobe", tmp_path)
    (tmp_path / f"{name}.py").write_text(SLOW)
    proc = subprocess.run(
        [*CLI, f"{name}:prog", "--chooser", "pct", "--time", "0.5", "--schedules", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("run\n") == 1
    assert "nothing explored - 0 schedules" in proc.stdout
    assert "out of time, after 1 probe run)" in proc.stdout
    assert "time budget reached before the first schedule" in proc.stderr


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
