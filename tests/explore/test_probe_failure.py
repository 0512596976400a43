"""A probe run that fails is never a pass.

pct and the portfolio run the program a few times before schedule 1 to size their
search (`runner._steps_hint`: one run that never preempts, eight seeded random ones,
the portfolio's sweep base run).  A failure in one of those runs was dropped: when the
schedules then missed the bug, the search said ``no violation in N schedules`` (or, for
a portfolio whose dpor member completed, ``complete``; in the matrix, ``clean``)
although it had run the program and seen it fail.  Now, when no schedule fails, the
first failing probe run is the search's failure: index 0, ``violation in a probe run
before schedule 1: <kind>``, found by ``fifo-probe``, ``random-probe`` or
``sweep-probe``, shrunk, with a token that replays it in a fresh process; on every path
(the budget, Ctrl-C, a stall), with ``--all-failures``, and in the matrix.  A failing
schedule still comes first: no result that has one changes.

The user programs (a module written to tmp_path): `natural` fails only when every task
runs in the order it started, none preempted, which the FIFO probe does and pct's
random priorities do not (nor random); `rare` fails in about one random run in 30,
which with seed 1 is the third random probe run and none of 20 schedules.  Every test
here failed before the change (checked).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import ExplorationFailed, ExploreInterrupted
from odp_async.explore import ExploreConfig, ProgressUpdate, check, runner
from odp_async.explore.claims import PROBE_RUN
from odp_async.explore.matrix import explore_cell
from odp_async.explore.runner import ExploreResult, Failure, explore_target
from odp_async.explore.target import Target
from odp_async.explore.testing import explore_test
from odp_async.explore.tokens import decode_token, replay_token
from odp_async.scenarios import Verdict
from tests._usermod import cli_in
from tests.conftest import UserModule

pytest_plugins = ["pytester"]

USER = """
import pathlib
import time

from odp_async import Mutex, checkpoint, task_group

#: Every task in the order it started, none preempted: what the run that never preempts
#: (FIFO) does; random priorities (pct) and random choices almost never do.
NATURAL = ["h1", "h2", "w", 0, 1, 2, 3]


async def natural() -> None:
    order = []
    lock = Mutex("lock")

    async def holder() -> None:
        async with lock:
            order.append("h1")
            await checkpoint("held")
            order.append("h2")

    async def waiter() -> None:
        async with lock:
            order.append("w")

    async def other(i: int) -> None:
        order.append(i)

    async with task_group() as tg:
        tg.start_soon(holder, name="holder")
        tg.start_soon(waiter, name="waiter")
        for i in range(4):
            tg.start_soon(other, i, name=f"o{i}")
    assert order != NATURAL, "every task ran in the order it started"


async def natural_or_stall() -> None:
    order = []
    lock = Mutex("lock")

    async def holder() -> None:
        async with lock:
            order.append("h1")
            await checkpoint("held")
            order.append("h2")

    async def waiter() -> None:
        async with lock:
            order.append("w")

    async def other(i: int) -> None:
        if not order:
            time.sleep(10**6)  # a step that never returns when the holder is not first
        order.append(i)

    async with task_group() as tg:
        tg.start_soon(holder, name="holder")
        tg.start_soon(waiter, name="waiter")
        for i in range(4):
            tg.start_soon(other, i, name=f"o{i}")
    assert order != NATURAL, "every task ran in the order it started"


async def rare() -> None:
    # About one random run in 30 fails; with seed 1 the third random probe run does,
    # and no schedule of 20 (pct's or the portfolio's).
    order = []

    async def worker(i: int) -> None:
        await checkpoint("start")
        order.append(i)

    async with task_group() as tg:
        for i in range(6):
            tg.start_soon(worker, i, name=f"w{i}")
    assert order[:2] != [5, 4], "w5 and w4 overtook the others"


async def fails_once(marker: str) -> None:
    # State kept outside the program (a file): only the first run fails.  One task, so
    # the portfolio's dpor member completes (1 trace) while that run was a probe.
    await checkpoint("look")
    path = pathlib.Path(marker)
    if not path.exists():
        path.write_text("seen")
        raise AssertionError("the first run fails")
"""

#: A budget the schedules miss both bugs in (seed 0 for `natural`, `RARE_SEED` for `rare`).
SCHEDULES = 20
RARE_SEED = 1

CLAIM = "violation in a probe run before schedule 1: error"


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "probe_failure_user")


def _assert_probe_failure(result: ExploreResult, by: str) -> Failure:
    """`result`'s failure is the probe run `by`'s, of index 0, said so everywhere."""
    failure = result.failure
    assert failure is not None  # it said "no violation in 20 schedules"
    assert (failure.index, failure.found_by, result.found_by) == (0, by, by)
    assert failure.violation.kind == "error"
    assert result.claim == CLAIM
    assert not result.complete
    assert result.failing == (0,)
    assert str(result.verdict) == "found"
    report = failure.describe()
    assert report.startswith(f"found in a probe run before schedule 1 (found by {by})"), report
    assert "schedule 0" not in report
    # the token of the run as found and that of the run shown (shrunk) replay it
    for token in {failure.token, failure.replay_token}:
        assert token is not None
        assert decode_token(token).found_by == by
        replayed = replay_token(token).failure
        assert replayed is not None
        assert replayed.kind == "error"
    return failure


def test_pct_reports_the_failing_fifo_probe_run(user: ModuleType) -> None:
    # random's schedules miss the bug in this budget, as pct's do; the FIFO run before
    # the search (`odp_async.explore.start_check`) sees it, under every chooser
    _assert_probe_failure(check(user.natural, chooser="random", schedules=SCHEDULES), "fifo-probe")
    # (dfs's first schedule is that order: found there, by the search itself)
    found = check(user.natural, chooser="dfs", schedules=SCHEDULES).failure
    assert found is not None
    assert (found.index, found.found_by) == (1, "dfs")
    result = check(user.natural, chooser="pct", schedules=SCHEDULES)
    failure = _assert_probe_failure(result, "fifo-probe")
    assert "every task ran in the order it started" in failure.violation.describe()
    assert result.schedules == SCHEDULES  # the schedules ran their budget, as before
    with pytest.raises(ExplorationFailed, match="in a probe run before schedule 1"):
        check(user.natural, chooser="pct", schedules=SCHEDULES, raise_on_failure=True)
    # A failing schedule still comes first: the portfolio's dpor member runs that order
    # at schedule 2, which stays the failure, as it was (the FIFO probe failed too).
    first = check(user.natural, chooser="portfolio", schedules=SCHEDULES)
    assert first.failure is not None
    assert (first.failure.index, first.found_by) == (2, "dpor")
    assert first.claim == "violation at schedule 2: error"
    assert first.failing == (2,)


@pytest.mark.parametrize("chooser", ["pct", "portfolio"])
def test_a_failing_random_probe_run_is_reported(user: ModuleType, chooser: str) -> None:
    assert check(user.rare, chooser="random", schedules=SCHEDULES, seed=RARE_SEED).failure is None
    result = check(user.rare, chooser=chooser, schedules=SCHEDULES, seed=RARE_SEED)
    failure = _assert_probe_failure(result, "random-probe")
    assert "w5 and w4 overtook the others" in failure.violation.describe()
    assert result.schedules == SCHEDULES


@pytest.mark.parametrize(
    ("fn", "chooser", "seed", "by"),
    [
        ("natural", "pct", 0, "fifo-probe"),
        ("rare", "portfolio", RARE_SEED, "random-probe"),
    ],
)
def test_the_cli_exits_1_and_its_token_replays_in_a_fresh_process(
    user: ModuleType, tmp_path: Path, fn: str, chooser: str, seed: int, by: str
) -> None:
    argv = ("explore", f"{user.__name__}:{fn}", "--chooser", chooser, "--seed", str(seed))
    argv += ("--schedules", str(SCHEDULES))
    done = cli_in(tmp_path, *argv)
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    assert f"\n{CLAIM}\n" in done.stdout
    assert f"found in a probe run before schedule 1 (found by {by})" in done.stdout
    assert "schedule 0" not in done.stdout
    token = done.stdout.split("replay: odp-async replay ")[1].split()[0]
    again = cli_in(tmp_path, "replay", token, "--json")
    assert again.returncode == ExitCode.VIOLATION, again.stdout + again.stderr
    assert json.loads(again.stdout)["violations"][0]["kind"] == "error"
    data = json.loads(cli_in(tmp_path, *argv, "--json").stdout)
    assert data["claim"] == CLAIM
    assert (data["failure"]["schedule_index"], data["found_by"]) == (0, by)
    assert data["failing"] == [0]
    assert data["verdict"] == "found"


def test_an_explored_test_fails_on_it(user: ModuleType) -> None:
    @explore_test(chooser="pct", schedules=SCHEDULES)
    async def test_natural() -> None:
        await user.natural()

    with pytest.raises(ExplorationFailed) as info:
        test_natural()
    head = str(info.value).splitlines()[0]
    assert "found in a probe run before schedule 1 (pct, seed 0, found by fifo-probe)" in head
    assert "schedule 0" not in str(info.value)
    assert "after 0 schedules" not in str(info.value)


def test_all_failures_lists_the_probe_run(user: ModuleType, tmp_path: Path) -> None:
    result = check(user.natural, chooser="pct", schedules=SCHEDULES, stop_on_first=False)
    _assert_probe_failure(result, "fifo-probe")
    [run] = result.failures
    assert (run.index, run.kind, run.found_by) == (0, "error", "fifo-probe")
    assert run.token is not None
    assert replay_token(run.token).failure is not None
    argv = ("explore", f"{user.__name__}:natural", "--chooser", "pct", "--all-failures")
    done = cli_in(tmp_path, *argv, "--schedules", str(SCHEDULES))
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    assert "no failing schedule, but a probe run before schedule 1 failed" in done.stdout
    line = "  a probe run before schedule 1: error (found by fifo-probe): odp-async replay "
    assert line in done.stdout
    assert "schedule 0" not in done.stdout


def test_a_completion_that_a_probe_contradicts_is_withdrawn(
    user: ModuleType, tmp_path: Path
) -> None:
    # The portfolio's dpor member ran the one trace of a program whose first run (a
    # probe) failed: a contradiction (its runs are not a function of their schedule);
    # never "complete: 1 trace, no violation".  The FIFO schedule run again after the
    # search does not fail: the runs did not start from the same state, so no verdict
    # (the failure kept, as one that may come of that state).
    marker = str(tmp_path / "marker")
    result = check(user.fails_once, marker, schedules=SCHEDULES, shrink=False)
    assert result.failure is not None
    assert (result.failure.index, result.failure.found_by) == (0, "fifo-probe")
    assert not result.complete
    assert result.traces is None
    assert result.claim.startswith(
        "inconclusive: the program's runs shared state: the same schedule ran differently "
        "before the search (2 steps, error, error at step 2) and after it (2 steps, ok)"
    )
    assert "(one failing, error, in a probe run before schedule 1, which may come" in (
        result.claim
    )


def test_out_of_time_in_the_probes_reports_it(user: ModuleType) -> None:
    class Clock:
        """One second per reading: the budget of 2.5 s runs out after two probe runs."""

        now = 0.0

        def __call__(self) -> float:
            self.now += 1.0
            return self.now

    target = Target.resolve(user.natural)
    config = ExploreConfig(chooser="pct", schedules=SCHEDULES, time=2.5)
    result = explore_target(target, config, clock=Clock())
    assert result.out_of_time
    assert result.schedules == 0
    assert result.failure is not None  # it said "nothing explored"
    assert (result.failure.index, result.failure.found_by) == (0, "fifo-probe")
    assert result.claim == CLAIM


def test_ctrl_c_after_the_probes_reports_it(
    user: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)

    def progress(update: ProgressUpdate) -> None:
        if update.done >= 2:
            raise KeyboardInterrupt  # as Ctrl-C does, between two schedules

    with pytest.raises(ExploreInterrupted) as info:
        check(user.natural, chooser="pct", schedules=SCHEDULES, progress=progress)
    partial = info.value.result
    assert partial.interrupted
    assert partial.failure is not None  # it said "no violation in 2 schedules"
    assert (partial.failure.index, partial.failure.found_by) == (0, "fifo-probe")
    assert partial.failure.token is not None
    assert partial.claim == CLAIM


@pytest.mark.timeout(300)
def test_a_probe_that_stalls_after_one_failed_reports_the_failure(
    user: ModuleType, tmp_path: Path
) -> None:
    # The FIFO probe fails; a random probe after it stalls (the holder is not first).
    argv = ("explore", f"{user.__name__}:natural_or_stall", "--chooser", "pct")
    done = cli_in(tmp_path, *argv, "--stall", "0.5", "--json")
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["stalled_run"] == PROBE_RUN
    assert data["claim"] == CLAIM
    assert (data["failure"]["schedule_index"], data["found_by"]) == (0, "fifo-probe")
    again = cli_in(tmp_path, "replay", data["failure"]["replay_token"])
    assert again.returncode == ExitCode.VIOLATION, again.stdout + again.stderr


def test_a_matrix_cell_takes_a_failing_probe_runs_verdict(tmp_path: Path) -> None:
    # A built-in cell: with 2 schedules, neither deadlocks, but a random probe run did.
    # It was "clean" (expected deadlock: a mismatch) with a claim of no violation.
    cell = explore_cell("lastdereg-vs-register", "odp2014", 2)
    assert (cell.verdict, cell.expected, cell.matches) == (Verdict.DEADLOCK,) * 2 + (True,)
    assert (cell.first_hit, cell.found_by) == (0, "random-probe")
    assert cell.claim == "violation in a probe run before schedule 1: deadlock"
    assert cell.token is not None
    replayed = replay_token(cell.token).failure
    assert replayed is not None
    assert replayed.kind == "deadlock"
    argv = ("matrix", "--scenario", "lastdereg-vs-register", "-p", "odp2014", "--budget", "2")
    done = cli_in(tmp_path, *argv, "--jobs", "1", "--json")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    [row] = json.loads(done.stdout)["cells"]
    assert (row["found"], row["schedules_to_first"], row["claim"]) == (
        "deadlock",
        0,
        cell.claim,
    )
    table = cli_in(tmp_path, *argv, "--jobs", "1")
    assert table.returncode == ExitCode.OK, table.stdout + table.stderr
    assert "(by random-probe)" in table.stdout


NATURAL_TEST = """
from odp_async import Mutex, checkpoint, task_group
from odp_async.explore.testing import explore_test

NATURAL = ["h1", "h2", "w", 0, 1, 2, 3]


@explore_test(schedules=20, chooser="random")
async def test_natural():
    order = []
    lock = Mutex("lock")

    async def holder():
        async with lock:
            order.append("h1")
            await checkpoint("held")
            order.append("h2")

    async def waiter():
        async with lock:
            order.append("w")

    async def other(i):
        order.append(i)

    async with task_group() as tg:
        tg.start_soon(holder, name="holder")
        tg.start_soon(waiter, name="waiter")
        for i in range(4):
            tg.start_soon(other, i, name=f"o{i}")
    assert order != NATURAL, "every task ran in the order it started"
"""


def test_an_explored_test_whose_fifo_run_fails_fails(pytester: pytest.Pytester) -> None:
    """The plugin runs the FIFO schedule before the exploration (its start check); a
    failure there failed nothing when random's 20 schedules missed the bug."""
    pytester.makepyfile(test_natural=NATURAL_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--odp-database=none", timeout=120
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_natural.py::test_natural: found in a probe run before schedule 1 "
            "(random, seed 0, found by fifo-probe)*",
            "*every task ran in the order it started*",
            "*--odp-replay=*",
        ]
    )
