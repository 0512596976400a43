"""The portfolio stops where its dpor member completes, as the matrix does.

`explore` under the default portfolio stops at the first dpor slot that finds the DPOR
search over with every trace run and none failing, provided no schedule before it failed:
it counts the schedules below that slot and claims ``complete: N traces, no violation``
(`odp_async.explore.claims`), the same count and words for any ``jobs``, an executor, a run
log, and the same stopping index for every ``start``.  Tried on a user's own module
(written to tmp_path, imported by name) through the API and the CLI in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import explore
from odp_async.explore.executors import InlineExecutor
from odp_async.explore.matrix import explore_cell
from odp_async.explore.portfolio import dpor_ordinal, member_at
from odp_async.explore.runner import ExploreResult
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER_SOURCE = '''
from odp_async import checkpoint, task_group
from odp_async.explore.shared import SharedCell
from odp_async.scenarios import Scenario
from odp_async.sync import Mutex


async def correct():
    """Two locked increments of a shared cell: no bug."""
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


async def buggy():
    """The same increments, unlocked: a lost update."""
    counter = SharedCell(0, "counter")

    async def increment():
        value = await counter.load()
        await counter.store(value + 1)

    async with task_group() as tg:
        tg.start_soon(increment)
        tg.start_soon(increment)
    assert counter.get() == 2, f"lost update: {counter.get()}"


SHARED = {"n": 0}


async def hidden():
    async def increment():
        value = SHARED["n"]
        await checkpoint("between")
        SHARED["n"] = value + 1

    SHARED["n"] = 0
    try:  # reset when the run ends too: runs that share state get no verdict
        async with task_group() as tg:
            tg.start_soon(increment)
            tg.start_soon(increment)
        assert SHARED["n"] == 2, f"lost update: {SHARED['n']}"
    finally:
        SHARED["n"] = 0


# A false promise (noted_only): its race is on a plain dict, which no footprint records,
# so its DPOR search completes in one clean trace while random finds the lost update.
LYING = Scenario("lying", "an unrecorded lost update", hidden, ("main",),
                 needs_world=False, noted_only=True)
'''

BUDGET = 5000  # >= runner.SERIAL_BELOW: jobs=2 runs worker processes


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_completion")


def completion_index(traces: int) -> int:
    """The first dpor slot whose ordinal is `traces`: where the search is found over."""
    return next(
        i
        for i in range(10 * traces + 10)
        if member_at(i).kind == "dpor" and (dpor_ordinal(i) == traces)
    )


def facts(r: ExploreResult) -> tuple[object, ...]:
    """What must not depend on jobs, executors or run logs (and the workers account for
    every schedule counted)."""
    assert sum(r.per_worker.values()) == r.schedules, r.per_worker
    return (r.schedules, r.steps, r.pruned, r.complete, r.traces, r.claim, r.failing)


def test_explore_of_a_correct_user_program_stops_complete(user: ModuleType) -> None:
    name = f"{user.__name__}:correct"
    dpor = explore(name, chooser="dpor", schedules=BUDGET)
    assert dpor.complete
    result = explore(name, schedules=BUDGET)
    assert result.failure is None
    assert result.complete
    assert result.traces == dpor.schedules  # the same search, run as the portfolio's member
    assert result.claim == f"complete: {dpor.schedules} traces, no violation"
    # it stops at the dpor slot that finds the search over, long before the budget
    assert result.schedules == completion_index(dpor.schedules) < BUDGET
    assert result.per_worker == {"main": result.schedules}


def test_jobs_executors_and_run_logs_change_nothing(user: ModuleType, tmp_path: Path) -> None:
    name = f"{user.__name__}:correct"
    serial = explore(name, schedules=BUDGET)
    assert serial.complete
    two = explore(name, schedules=BUDGET, jobs=2)
    assert facts(two) == facts(serial)
    assert set(two.per_worker) - {"main"}  # the worker processes ran chunks
    assert facts(explore(name, schedules=BUDGET, executor=InlineExecutor())) == facts(serial)
    log = tmp_path / "run.log"
    assert facts(explore(name, schedules=BUDGET, jobs=2, resume=log)) == facts(serial)
    resumed = explore(name, schedules=BUDGET, jobs=2, resume=log)  # chunks past it logged
    assert facts(resumed) == facts(serial)
    assert "resumed" in resumed.per_worker


def test_a_chunk_that_straddles_the_completion_is_counted_below_it(user: ModuleType) -> None:
    from odp_async.explore import runner

    name = f"{user.__name__}:correct"
    serial = explore(name, schedules=BUDGET)
    # one chunk of every schedule: the worker's chunk runs far past the completion
    taken: list[list[tuple[int, int]]] = []
    trim = runner._Tally.trim

    def spy(tally: runner._Tally, cut: int) -> list[tuple[int, int]]:
        taken.append(trim(tally, cut))
        return taken[-1]

    class OneChunk(runner._Sizer):
        def size(self, remaining: int) -> int:
            return remaining

    mp = pytest.MonkeyPatch()
    with mp.context() as m:
        m.setattr(runner, "_Sizer", OneChunk)
        m.setattr(runner._Tally, "trim", spy)
        inline = explore(name, schedules=BUDGET, executor=InlineExecutor())
    assert taken == [[(0, serial.schedules)]]  # taken out, and its part below run again
    assert facts(inline) == facts(serial)


def test_a_shard_stops_at_the_same_index(user: ModuleType) -> None:
    name = f"{user.__name__}:correct"
    whole = explore(name, schedules=BUDGET)
    cut = whole.schedules
    for start in (1, 9, cut - 1):
        shard = explore(name, schedules=BUDGET, start=start)
        assert (shard.schedules, shard.claim) == (cut - start, whole.claim)
    # a shard that starts past it: its own dpor share still ran (and checked) every trace
    late = explore(name, schedules=BUDGET, start=cut + 50)
    assert late.complete
    assert late.claim == whole.claim
    assert late.schedules < 9  # only up to its first dpor slot


def test_a_time_budget_that_ends_first_is_not_complete(user: ModuleType) -> None:
    from odp_async.explore import ExploreConfig
    from odp_async.explore.runner import explore_target
    from odp_async.explore.target import Target

    class Clock:  # one second per read (the first 11 by the probe runs)
        now = 0.0

        def __call__(self) -> float:
            self.now += 1.0
            return self.now

    target = Target.resolve(f"{user.__name__}:correct")
    for executor in (None, InlineExecutor()):
        result = explore_target(
            target, ExploreConfig(schedules=BUDGET, time=21.0), executor=executor, clock=Clock()
        )
        assert result.out_of_time
        assert not result.complete
        assert result.claim.endswith("(time budget reached, not complete)")


def test_a_completion_is_withdrawn_when_the_time_is_up_before_all_below_it_ran(
    user: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from odp_async.explore import ExploreConfig, runner
    from odp_async.explore.target import Target

    # The parent runs every dpor slot up to the completion before any chunk (one schedule
    # each) comes back; the clock says the time is up as soon as it completed.
    completed = [False]
    real = runner._run_dpor_slot

    def slot(*args: object) -> bool:
        done = real(*args)  # type: ignore[arg-type]
        completed[0] = completed[0] or done
        return done

    class OneEach(runner._Sizer):
        def size(self, remaining: int) -> int:
            return 1

    monkeypatch.setattr(runner, "_run_dpor_slot", slot)
    monkeypatch.setattr(runner, "_Sizer", OneEach)
    monkeypatch.setattr(runner, "INLINE_SLICE", 3600.0)
    target = Target.resolve(f"{user.__name__}:correct")
    result = runner.explore_target(
        target,
        ExploreConfig(schedules=BUDGET, time=10.0),
        executor=InlineExecutor(),
        clock=lambda: 1e9 if completed[0] else 0.0,
    )
    assert completed[0]  # the dpor member did complete ...
    assert result.out_of_time  # ... but the seeded schedules below it did not all run
    assert not result.complete
    assert result.traces is None
    assert result.claim.endswith("(time budget reached, not complete)")


def test_a_buggy_user_program_still_reports_its_violation(user: ModuleType) -> None:
    name = f"{user.__name__}:buggy"
    for jobs in (1, 2):
        result = explore(name, schedules=BUDGET, jobs=jobs, shrink=False)
        assert result.failure is not None
        assert not result.complete
        assert result.claim == f"violation at schedule {result.failure.index}: error"
    # every failing schedule of the whole budget: the dpor member's search is not clean,
    # so it never completes
    every = explore(name, schedules=300, stop_on_first=False, shrink=False)
    assert every.schedules == 300
    assert not every.complete


def test_a_shard_past_a_failing_dpor_trace_never_claims_completion(user: ModuleType) -> None:
    name = f"{user.__name__}:buggy"
    dpor = explore(name, chooser="dpor", schedules=BUDGET, stop_on_first=False, shrink=False)
    assert dpor.failing  # some of its traces fail
    traces = dpor.schedules
    # A shard whose one schedule is a dpor slot past the search's end: its dpor share runs
    # (below its start, uncounted) every trace, some failing; that proves nothing.
    start = completion_index(traces) + 9
    assert member_at(start).kind == "dpor"
    shard = explore(name, schedules=1, start=start, stop_on_first=False, shrink=False)
    assert not shard.complete
    assert shard.schedules == 1  # the slot runs random, as any slot of a finished search
    assert not shard.claim.startswith("complete")


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_violation_another_member_found_is_never_hidden(user: ModuleType, jobs: int) -> None:
    # The dpor member completes (one clean trace: the false promise hides the race), but
    # random found the lost update first: a find, and the search does not stop there.
    result = explore(user.LYING, schedules=BUDGET, jobs=jobs, stop_on_first=False, shrink=False)
    assert result.failure is not None
    assert result.failure.index < completion_index(1)
    assert result.found_by == "random"
    assert not result.complete
    assert result.schedules == BUDGET
    assert result.claim.startswith(f"violation at schedule {result.failure.index}: ")


def test_explore_and_the_matrix_agree_on_a_builtin_cell() -> None:
    cell = explore_cell("registration-count", "kvm-seq", 300)
    for jobs in (1, 2):
        result = explore("registration-count", "kvm-seq", schedules=BUDGET, jobs=jobs)
        assert (result.schedules, result.claim) == (cell.schedules, cell.claim)
    assert cell.claim == "complete: 3 traces, no violation"  # 4 before the join edges


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )


def test_the_cli_stops_complete_for_any_jobs(user: ModuleType, tmp_path: Path) -> None:
    name = f"{user.__name__}:correct"
    seen = []
    for jobs in ("1", "2"):
        proc = _cli(tmp_path, name, "--schedules", str(BUDGET), "--jobs", jobs, "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["complete"] is True
        assert data["verdict"] == "clean"
        assert data["claim"] == f"complete: {data['traces']} traces, no violation"
        assert data["schedules"] == completion_index(data["traces"]) < BUDGET
        seen.append((data["schedules"], data["steps"], data["traces"], data["claim"]))
    assert seen[0] == seen[1]
    text = _cli(tmp_path, name, "--schedules", str(BUDGET), "--jobs", "2")
    assert text.returncode == 0, text.stderr
    assert f"\n{seen[0][3]}\n" in text.stdout
    assert f"{seen[0][0]} schedules" in text.stdout
    # a shard past the completion establishes it too: not "nothing explored", exit 0
    late = _cli(tmp_path, name, "--schedules", "10", "--start", "1000", "--json")
    assert late.returncode == 0, late.stderr
    assert json.loads(late.stdout)["claim"] == seen[0][3]


def test_the_cli_reports_a_buggy_programs_violation(user: ModuleType, tmp_path: Path) -> None:
    name = f"{user.__name__}:buggy"
    for jobs in ("1", "2"):
        proc = _cli(tmp_path, name, "--schedules", str(BUDGET), "--jobs", jobs, "--json")
        assert proc.returncode == 1, proc.stderr
        data = json.loads(proc.stdout)
        assert data["complete"] is False
        assert data["traces"] is None
        assert data["claim"].startswith("violation at schedule ")
