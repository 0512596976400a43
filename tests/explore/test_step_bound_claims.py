"""A systematic search whose run stopped at the step bound claims no completeness.

A task that spins (``while not state["done"]: await checkpoint()``) runs alone up to the
step bound in DPOR's first execution (it continues the running task); the fair
continuation that then finishes the run (`odp_async.explore.fairness`) is not part of
DPOR's trace, so the race between the two other tasks is never reversed.  Such a search
must not say ``complete`` (nor stop the portfolio, nor make the matrix's cell verified):
it is `truncated`, and its claim says the step bound was reached.  Tried on a user's
own module (tmp_path, imported by name) through the API and the CLI in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from odp_async.explore.config import ExploreConfig
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.explore.matrix import _Schedules
from odp_async.explore.portfolio import DporShare
from odp_async.explore.target import Target
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER_SOURCE = '''
from odp_async import checkpoint, sleep, task_group


async def spin_and_lost_update():
    """A spinner waits for the second bumper; the two bumpers lose an update."""
    state = {"done": False, "n": 0}

    async def spinner():
        while not state["done"]:
            await checkpoint("spin")

    async def bump(pad, last):
        for _ in range(pad):
            await checkpoint("pad")
        v = state["n"]
        await checkpoint("read")
        state["n"] = v + 1
        if last:
            state["done"] = True

    async with task_group() as tg:
        tg.start_soon(spinner)
        tg.start_soon(bump, 1, False)
        tg.start_soon(bump, 8, True)
    assert state["n"] == 2, f"lost update: {state['n']}"


async def spin_with_sleep0():
    """The same with ``await sleep(0)`` in the spin loop."""
    state = {"done": False, "n": 0}

    async def spinner():
        while not state["done"]:
            await sleep(0)

    async def bump(pad, last):
        for _ in range(pad):
            await checkpoint("pad")
        v = state["n"]
        await checkpoint("read")
        state["n"] = v + 1
        if last:
            state["done"] = True

    async with task_group() as tg:
        tg.start_soon(spinner)
        tg.start_soon(bump, 1, False)
        tg.start_soon(bump, 8, True)
    assert state["n"] == 2, f"lost update: {state['n']}"


async def spin_long():
    """A spinner waits for a bumper whose 120 steps do not fit in the half of the step
    bound (300) that DPOR runs round-robin: its first run stops at the bound (a fair
    continuation of 600 steps finishes it: no starvation)."""
    state = {"done": False, "n": 0}

    async def spinner():
        while not state["done"]:
            await checkpoint("spin")

    async def bump(pad, last):
        for _ in range(pad):
            await checkpoint("pad")
        v = state["n"]
        await checkpoint("read")
        state["n"] = v + 1
        if last:
            state["done"] = True

    async with task_group() as tg:
        tg.start_soon(spinner)
        tg.start_soon(bump, 1, False)
        tg.start_soon(bump, 120, True)
    assert state["n"] == 2, f"lost update: {state['n']}"


async def late_correct():
    """One task's 400 steps, then two tasks that share nothing: no bug; every run stops at
    a step bound of 300 (a fair continuation finishes it)."""
    for _ in range(400):
        await checkpoint("warm-up")
    state = {"a": 0, "b": 0}

    async def bump(key):
        await checkpoint("go")
        state[key] += 1

    async with task_group() as tg:
        tg.start_soon(bump, "a")
        tg.start_soon(bump, "b")
    assert state == {"a": 1, "b": 1}


async def late_race():
    """One task's 400 steps, then a lost update between two tasks."""
    for _ in range(400):
        await checkpoint("warm-up")
    state = {"n": 0}

    async def bump():
        v = state["n"]
        await checkpoint("read")
        state["n"] = v + 1

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert state["n"] == 2, f"lost update: {state['n']}"


async def spin_correct():
    """A spinner waits for a flag that one task sets: no bug in any schedule."""
    state = {"done": False, "n": 0}

    async def spinner():
        while not state["done"]:
            await checkpoint("spin")

    async def setter():
        for _ in range(3):
            await checkpoint("pad")
        state["n"] += 1
        state["done"] = True

    async with task_group() as tg:
        tg.start_soon(spinner)
        tg.start_soon(setter)
    assert state["n"] == 1
'''

#: Small enough to be quick, large enough for every task's steps.
MAX_STEPS = 300


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_spin")


@pytest.mark.parametrize("fn", ["spin_and_lost_update", "spin_with_sleep0"])
def test_dpor_finds_the_race_behind_a_spinner(user: ModuleType, fn: str) -> None:
    # From half the step bound on, DPOR's own choices are round-robin: the bumpers run
    # inside its trace, and their race is reversed.
    result = explore(f"{user.__name__}:{fn}", chooser="dpor", max_steps=MAX_STEPS, schedules=200)
    assert result.failure is not None, result.claim
    assert "lost update" in result.failure.describe()
    assert not result.truncated  # every run ended inside the search


def test_dpor_that_hit_the_step_bound_claims_nothing(user: ModuleType) -> None:
    for jobs in (1, 2):
        result = explore(
            f"{user.__name__}:spin_long",
            chooser="dpor",
            max_steps=MAX_STEPS,
            schedules=50,
            jobs=jobs,
        )
        assert not result.complete
        assert result.truncated
        if result.failure is None:
            assert "complete:" not in result.claim
            assert f"step bound of {MAX_STEPS} steps, not complete" in result.claim


def test_the_portfolio_does_not_stop_at_a_truncated_dpor_search(user: ModuleType) -> None:
    result = explore(f"{user.__name__}:spin_long", max_steps=MAX_STEPS, schedules=300)
    assert not result.complete
    assert not result.claim.startswith("complete")
    if result.failure is not None:
        assert "lost update" in result.failure.describe()


@pytest.mark.parametrize("fn", ["spin_and_lost_update", "spin_with_sleep0"])
def test_the_portfolio_finds_the_race_behind_a_spinner(user: ModuleType, fn: str) -> None:
    result = explore(f"{user.__name__}:{fn}", max_steps=MAX_STEPS, schedules=400)
    assert not result.complete
    assert result.failure is not None, result.claim
    assert "lost update" in result.failure.describe()


def test_dfs_that_hit_the_step_bound_claims_no_level(user: ModuleType) -> None:
    result = explore(
        f"{user.__name__}:late_correct", chooser="dfs", max_steps=MAX_STEPS, schedules=200
    )
    assert result.failure is None
    assert not result.complete
    assert result.bound is None  # level 0 holds a truncated run: no level is whole
    assert "complete for" not in result.claim


def test_a_correct_spinning_program_is_not_failed(user: ModuleType) -> None:
    for chooser in ("portfolio", "dpor", "random"):
        result = explore(
            f"{user.__name__}:spin_correct", chooser=chooser, max_steps=MAX_STEPS, schedules=200
        )
        assert result.failure is None, (chooser, result.failure.describe())
        assert not result.complete


def test_a_race_past_the_step_bound_is_no_complete_search(user: ModuleType) -> None:
    # DPOR's only run stops at the bound before the race: it sees no race, so its search
    # ends after one trace, which proves nothing.
    for chooser in ("dpor", "portfolio"):
        result = explore(
            f"{user.__name__}:late_race", chooser=chooser, max_steps=MAX_STEPS, schedules=100
        )
        assert not result.complete
        assert not result.claim.startswith("complete")
        if result.failure is not None:
            assert "lost update" in result.failure.describe()
    result = explore(
        f"{user.__name__}:late_correct", chooser="dpor", max_steps=MAX_STEPS, schedules=100
    )
    assert result.failure is None
    assert result.schedules == 1
    assert result.truncated
    assert not result.complete
    assert result.claim == (
        f"no violation in 1 trace (a run reached the step bound of {MAX_STEPS} steps, "
        "not complete)"
    )


def test_the_matrix_share_is_not_verified(user: ModuleType) -> None:
    target = Target.resolve(f"{user.__name__}:late_correct")
    share = DporShare(target, ExploreConfig(max_steps=MAX_STEPS))
    ordinal = 0
    while share.run(ordinal) is not None:
        ordinal += 1
    assert share.done
    assert share.chooser.truncated
    assert not share.exhausted
    assert not share.verified


def test_the_matrix_schedules_run_on(user: ModuleType) -> None:
    target = Target.resolve(f"{user.__name__}:late_correct")
    schedules = _Schedules(target, "portfolio", 0, MAX_STEPS)
    for index in range(60):
        ran = schedules.run(index)
        assert ran is not None  # never "verified": nothing stops the cell
        assert not ran[1].is_failure
    assert schedules.dpor is not None
    assert schedules.dpor.done
    assert not schedules.complete


@pytest.mark.parametrize("bad", [-1, "3", True, 1.5])
def test_fair_after_is_checked(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="fair_after"):
        DporChooser(fair_after=bad)  # type: ignore[arg-type]


def test_the_choosers_withdraw_exhaustiveness() -> None:
    dpor = DporChooser()
    dpor.note_step_limit()
    assert dpor.truncated
    assert not dpor.is_exhaustive
    dfs = DfsChooser(2, iterative=True)
    assert not dfs.truncated
    assert dfs.complete_bound is None
    dfs.note_step_limit()
    assert dfs.truncated
    assert not dfs.is_exhaustive
    assert dfs.complete_bound is None


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )


def test_the_cli_never_claims_completeness(user: ModuleType, tmp_path: Path) -> None:
    name = f"{user.__name__}:spin_and_lost_update"
    steps = ("--max-steps", str(MAX_STEPS))
    proc = _cli(tmp_path, name, *steps, "--schedules", "400")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lost update" in proc.stdout
    for extra in (("--chooser", "dpor"), ("--chooser", "dpor", "--jobs", "2"), ("--jobs", "2")):
        proc = _cli(tmp_path, name, *steps, "--schedules", "400", *extra)
        assert "complete:" not in proc.stdout, (extra, proc.stdout)
        if proc.returncode == 0:
            assert "step bound" in proc.stdout, (extra, proc.stdout)
        else:
            assert proc.returncode == 1, (extra, proc.stdout)
            assert "lost update" in proc.stdout, (extra, proc.stdout)
