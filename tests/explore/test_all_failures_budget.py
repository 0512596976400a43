"""``stop_on_first=False`` (``--all-failures``) runs the whole budget, even past the point
where the portfolio's dpor member completes; the completion is still claimed when no
schedule failed.  A failure past that point (possible only where the footprints lie: a
``noted_only`` scenario whose race is on a plain dict it reaches by a computed name,
past what the noted-only walk reads) is reported, and the claim is
withdrawn.  Tried on a user's own module through the API and the CLI in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import explore
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER_SOURCE = """
from odp_async import checkpoint, task_group
from odp_async.explore.shared import SharedCell
from odp_async.scenarios import Scenario
from odp_async.sync import Mutex


async def correct():
    m = Mutex("m")
    counter = SharedCell(0, "counter")

    async def increment():
        async with m:
            value = await counter.load()
            await counter.store(value + 1)

    async with task_group() as tg:
        tg.start_soon(increment)
        tg.start_soon(increment)
    assert counter.get() == 2, f"lost update: {counter.get()}"


SHARED = {"n": 0}


def _shared():
    # reached by a name computed at run time: past what the noted-only walk can read
    return globals()["".join(("SHA", "RED"))]


async def hidden():
    async def increment():
        for _ in range(6):
            await checkpoint("pad")
        value = _shared()["n"]
        await checkpoint("between")
        _shared()["n"] = value + 1

    _shared()["n"] = 0
    async with task_group() as tg:
        tg.start_soon(increment)
        tg.start_soon(increment)
    assert _shared()["n"] == 2, f"lost update: {_shared()['n']}"


# A false promise (noted_only): no footprint records its race, so its DPOR search
# completes in one clean trace, early, while the seeded members find the lost update.
LYING = Scenario("lying", "an unrecorded lost update", hidden, ("main",),
                 needs_world=False, noted_only=True)
"""

BUDGET = 600


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_allfail")


@pytest.mark.parametrize("jobs", [1, 2])
def test_all_failures_runs_the_whole_budget_and_keeps_the_claim(
    user: ModuleType, jobs: int
) -> None:
    first = explore(f"{user.__name__}:correct", schedules=BUDGET, jobs=jobs)
    assert first.complete
    assert first.schedules < BUDGET
    result = explore(f"{user.__name__}:correct", schedules=BUDGET, stop_on_first=False, jobs=jobs)
    assert result.schedules == BUDGET
    assert result.complete
    assert result.traces == first.traces
    assert result.claim == first.claim


@pytest.mark.parametrize("jobs", [1, 2])
def test_all_failures_past_a_false_completion_reports_them(user: ModuleType, jobs: int) -> None:
    # its dpor member completes in one clean trace (the footprints lie), but a random
    # probe run meets the lost update: never the false completion
    stopped = explore(f"{user.__name__}:LYING", schedules=BUDGET, jobs=jobs)
    assert not stopped.complete
    assert stopped.failure is not None
    assert (stopped.failure.index, stopped.found_by) == (0, "random-probe")
    result = explore(f"{user.__name__}:LYING", schedules=BUDGET, stop_on_first=False, jobs=jobs)
    assert result.schedules == BUDGET
    assert result.failure is not None
    assert result.failure.index > stopped.schedules  # a schedule's failure, past the end
    assert result.failing
    assert min(result.failing) > stopped.schedules
    assert not result.complete
    assert result.traces is None
    assert result.claim.startswith("violation at schedule")


def test_the_cli_all_failures_runs_the_budget(user: ModuleType, tmp_path: Path) -> None:
    for jobs in ("1", "2"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "odp_async.cli",
                "explore",
                f"{user.__name__}:correct",
                "--schedules",
                str(BUDGET),
                "--all-failures",
                "--json",
                "--jobs",
                jobs,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=pythonpath_env(tmp_path),
        )
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["schedules"] == BUDGET
        assert data["complete"] is True
        assert data["claim"] == f"complete: {data['traces']} traces, no violation"
