"""A run that reaches the step bound is no verdict: never the program's ``starvation``.

A correct program longer than ``max_steps`` (3 tasks x 400 checkpoints under a bound of
200) reaches the bound under every schedule, and a fair continuation of as many steps again
does not finish it either: the bound cannot tell it from a livelock.  Reporting it as
``starvation`` blamed the program for our bound; it is now *inconclusive*
(`ExploreResult.inconclusive`, ``unfinished`` runs counted), neither a pass nor a failure,
under random, pct, dfs, dpor and the portfolio, in one process or split over workers; the
CLI exits 5 and says to raise ``--max-steps``; ``check(raise_on_failure=True)`` and an
explored test raise `ExplorationInconclusive`; a matrix cell is ``inconclusive``.  A real
livelock (two tasks that each retry forever while the other is mid-operation) is never a
pass either.  Tried on a user's own module (tmp_path, imported by name) and the CLI in a
fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.errors import ExplorationFailed, ExplorationInconclusive
from odp_async.explore import check, encode_token
from odp_async.explore.carried import ArgumentWatch
from odp_async.explore.matrix import explore_cell
from odp_async.explore.testing import explore_test, explored_test_of
from odp_async.scenarios import Verdict
from odp_async.sim import RandomChooser
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER = """
from odp_async import checkpoint, sleep, task_group


async def long_correct() -> None:
    state = {"n": 0}

    async def work() -> None:
        for _ in range(400):
            await checkpoint("step")
            state["n"] += 1

    async with task_group() as tg:
        for i in range(3):
            tg.start_soon(work, name=f"w{i}")
    assert state["n"] == 1200


async def long_then_bug() -> None:
    state = {"n": 0}
    for _ in range(300):
        await checkpoint("warm-up")
    raise AssertionError("the end is wrong")


async def mutual_retry() -> None:
    busy = {"a": False, "b": False}
    done = []

    async def op(me: str, other: str) -> None:
        while True:
            busy[me] = True  # mid-operation
            await checkpoint("begin")
            if not busy[other]:
                break
            await checkpoint("retry")  # the other is mid-operation: retry (still busy)
        done.append(me)
        busy[me] = False

    async with task_group() as tg:
        tg.start_soon(op, "a", "b", name="a")
        tg.start_soon(op, "b", "a", name="b")


async def poll_a_sleeper(interval: float) -> None:
    flag = {"set": False}

    async def setter() -> None:
        await sleep(1)
        flag["set"] = True

    async def poller() -> None:
        while not flag["set"]:
            await sleep(interval)

    async with task_group() as tg:
        tg.start_soon(poller)
        tg.start_soon(setter)
"""

CHOOSERS = ["random", "pct", "dfs", "dpor", "portfolio"]


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "step_bound_user")


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_correct_program_longer_than_the_bound_is_inconclusive(
    user: ModuleType, chooser: str
) -> None:
    result = check(user.long_correct, chooser=chooser, schedules=12, max_steps=200, seed=1)
    assert result.failure is None, result.failure.describe()
    assert result.verdict is Verdict.INCONCLUSIVE  # no violation, and no pass either
    assert result.inconclusive
    assert result.unfinished == result.schedules == 12
    assert result.claim == (
        "inconclusive: 12 of 12 schedules reached the step bound of 200 steps unfinished "
        "(a livelock, or a run longer than the bound: raise --max-steps); no violation"
    )
    assert not result.complete
    # from Python, the message names check()'s keyword, not the CLI's option
    with pytest.raises(ExplorationInconclusive, match=r"raise max_steps=\.\.\.\)") as raised:
        check(
            user.long_correct, chooser=chooser, schedules=3, max_steps=200, raise_on_failure=True
        )
    assert not isinstance(raised.value, ExplorationFailed)


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_with_a_bound_long_enough_it_passes(user: ModuleType, chooser: str) -> None:
    result = check(user.long_correct, chooser=chooser, schedules=3, max_steps=5000, seed=1)
    assert result.failure is None
    assert not result.inconclusive
    assert result.unfinished == 0


@pytest.mark.parametrize("chooser", ["random", "dpor", "portfolio"])
def test_split_over_workers_counts_the_same(user: ModuleType, chooser: str) -> None:
    """jobs=2 (worker processes; the portfolio's chunks, dpor's subtrees) counts the same
    unfinished runs as jobs=1: the count crosses the process boundary."""
    settings = {"chooser": chooser, "schedules": 600, "max_steps": 150, "seed": 2}
    one = check(user.long_correct, **settings)
    two = check(user.long_correct, jobs=2, **settings)
    assert one.inconclusive
    assert two.inconclusive
    assert (two.schedules, two.unfinished) == (one.schedules, one.unfinished)
    assert two.claim == one.claim


def test_a_bug_after_the_bound_is_still_found(user: ModuleType) -> None:
    """The fair continuation still runs into what follows the bound: an error there is
    the program's error, reported as before (not hidden as inconclusive)."""
    result = check(user.long_then_bug, chooser="random", schedules=3, max_steps=200)
    assert result.failure is not None
    assert result.failure.violation.kind == "error"
    assert "the end is wrong" in result.failure.violation.detail


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_livelock_is_never_a_pass(user: ModuleType, chooser: str) -> None:
    """Both tasks mid-operation retry forever: every chooser that gets them there sees
    runs unfinished at the bound; none may call the program clean or starving."""
    # pct puts its change points over the long (unfinished) probe runs: it needs more
    # schedules to preempt right after the first "begin"
    schedules = 400 if chooser == "pct" else 40
    result = check(user.mutual_retry, chooser=chooser, schedules=schedules, max_steps=200)
    assert result.failure is None
    assert result.inconclusive, result.claim
    assert 0 < result.unfinished <= result.schedules


def test_an_explored_test_is_inconclusive(user: ModuleType) -> None:
    @explore_test(schedules=5, max_steps=200)
    async def test_long() -> None:
        await user.long_correct()

    with pytest.raises(ExplorationInconclusive, match="step bound of 200 steps"):
        test_long()


def test_an_explored_tests_replay_of_an_unfinished_run_is_inconclusive(user: ModuleType) -> None:
    """``--odp-replay`` of a schedule that reaches the bound unfinished is no pass (the
    replay used to return as if the schedule passed now)."""

    @explore_test(chooser="random", schedules=2, max_steps=200)
    async def test_long() -> None:
        await user.long_correct()

    spec = explored_test_of(test_long)
    assert spec is not None
    target = spec._target((), {}, "t.py::test_long", ArgumentWatch.take({}))
    execution = target.run(RandomChooser(0), max_steps=200)
    assert execution.unfinished
    assert execution.verdict is Verdict.INCONCLUSIVE
    token = encode_token(target, execution.sim.schedule, execution, 200)
    with pytest.raises(ExplorationInconclusive, match="step bound of 200 steps unfinished"):
        spec.call(node_id="t.py::test_long", replay=token)


def test_a_matrix_cell_is_inconclusive_not_clean() -> None:
    """A built-in cell expected clean, under a step bound too small for it."""
    cell = explore_cell("registration-race", "interval-seq", budget=5, max_steps=12)
    assert cell.verdict is Verdict.INCONCLUSIVE  # never clean
    assert cell.inconclusive
    assert cell.unfinished > 0
    assert not cell.matches  # clean is unproven
    assert cell.claim.startswith("inconclusive: ")
    roomy = explore_cell("registration-race", "interval-seq", budget=5)
    assert not roomy.inconclusive
    assert roomy.matches


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )


def test_the_cli_exits_5_and_says_to_raise_the_bound(user: ModuleType, tmp_path: Path) -> None:
    name = f"{user.__name__}:long_correct"
    for extra in ((), ("--chooser", "dpor", "--jobs", "2"), ("--chooser", "pct")):
        proc = _cli(tmp_path, "explore", name, "--max-steps", "200", "--schedules", "20", *extra)
        assert proc.returncode == 5, (extra, proc.stdout, proc.stderr)
        assert "starvation" not in proc.stdout
        assert f"{user.long_correct.__name__}: inconclusive - " in proc.stdout
        assert "raise --max-steps" in proc.stdout
    proc = _cli(tmp_path, "explore", name, "--max-steps", "200", "--schedules", "20", "--json")
    assert proc.returncode == 5, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["verdict"], data["unfinished"], data["failure"]) == ("inconclusive", 20, None)
    proc = _cli(tmp_path, "explore", name, "--max-steps", "5000", "--schedules", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr


PYTEST_FILE = """
from odp_async.explore.testing import explore_test

from {module} import long_correct


@explore_test(schedules=5, max_steps=200)
async def test_long():
    await long_correct()


@explore_test(schedules=5, max_steps=5000)
async def test_long_enough():
    await long_correct()
"""


def test_pytest_fails_an_inconclusive_test_and_passes_a_bounded_one(
    user: ModuleType, tmp_path: Path
) -> None:
    """The pytest plugin in a fresh process: the test under a bound too small for it fails
    as inconclusive (not a violation), the same test with a bound long enough passes."""
    (tmp_path / "test_user_long.py").write_text(PYTEST_FILE.format(module=user.__name__))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user_long.py"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "ExplorationInconclusive" in proc.stdout
    assert "step bound of 200 steps" in proc.stdout
    assert "starvation" not in proc.stdout


def test_a_sleep_0_poller_keeps_virtual_time_still(user: ModuleType) -> None:
    """The README's virtual-time caveat (trial 14): polling with ``sleep(0)`` never lets a
    sleeping task's deadline come (time jumps only when every task waits), so the run is
    inconclusive at its bound, never ``starvation``; polling with a non-zero sleep ends."""
    stuck = check(user.poll_a_sleeper, 0, chooser="random", schedules=3, max_steps=300)
    assert stuck.failure is None
    assert stuck.inconclusive
    assert stuck.unfinished == 3
    fine = check(user.poll_a_sleeper, 0.1, chooser="random", schedules=3, max_steps=300)
    assert fine.failure is None
    assert not fine.inconclusive


def test_a_failure_past_the_bound_says_where_the_listing_stops(user: ModuleType) -> None:
    """Trial 15: the step list ended at the bound (200) while the header named a failure
    at a later step, found by the fair continuation: the list now says so."""
    result = check(user.long_then_bug, chooser="random", schedules=3, max_steps=200)
    assert result.failure is not None
    step = result.failure.violation.step
    assert step is not None
    assert step > 200
    text = result.failure.describe()
    assert (
        f"  ... steps 201-{step}: past the step bound, continued under a fair (round-robin) "
        f"scheduler, not listed; the failure is at step {step}  <=="
    ) in text
