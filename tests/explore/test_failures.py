"""Failure reports name the cause: error leaves, raising tasks, user frames, the step list.

The programs under test live in a module written to tmp_path and imported by name, as a
user's own code would be.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from odp_async._runtime.choosers import RandomChooser, ReplayChooser
from odp_async.errors import ForeignAwait, InvalidArgument, ProtocolViolation
from odp_async.explore.config import ExploreConfig
from odp_async.explore.failures import describe_execution, error_leaves
from odp_async.explore.runner import explore_target
from odp_async.explore.target import Execution, Target
from odp_async.explore.testing import ExplorationFailed, explore_test
from odp_async.scenarios import Scenario

PROGRAMS = """
from odp_async import _runtime as rt
from odp_async.sync import Mutex, WaitQueue


async def overdraft():
    balance = [10]

    async def withdraw():
        await rt.checkpoint("read balance")
        seen = balance[0]
        await rt.checkpoint("write balance")
        balance[0] = seen - 20
        assert balance[0] >= 0, f"balance is {balance[0]}"  # LINE:overdraft

    async with rt.task_group() as tg:
        tg.start_soon(withdraw, name="withdraw")


async def wrong_release():
    m = Mutex("m")

    async def intruder():
        await rt.checkpoint()
        m.release()  # LINE:release

    async with rt.task_group() as tg:
        tg.start_soon(intruder, name="intruder")


async def type_error():
    async def adder():
        await rt.checkpoint()
        return 1 + "one"  # LINE:type

    async with rt.task_group() as tg:
        tg.start_soon(adder, name="adder")


async def two_errors():
    async def alpha():
        raise TypeError("bad operand")  # LINE:alpha

    async def beta():
        raise AssertionError("nope")  # LINE:beta

    async with rt.task_group() as tg:
        tg.start_soon(alpha, name="alpha")
        tg.start_soon(beta, name="beta")


async def nested():
    async def leaf():
        await rt.checkpoint()
        raise KeyError("deep")  # LINE:nested

    async def middle():
        async with rt.task_group() as inner:
            inner.start_soon(leaf, name="grandchild")

    async with rt.task_group() as tg:
        tg.start_soon(middle, name="child")


async def lost_wakeup():
    flag = [False]
    q = WaitQueue("q")

    async def waiter():
        await rt.checkpoint("check flag")
        if not flag[0]:
            await rt.checkpoint("park")
            await q.park()

    async def setter():
        await rt.checkpoint("set flag")
        flag[0] = True
        q.wake_one()

    async with rt.task_group() as tg:
        tg.start_soon(waiter, name="waiter")
        tg.start_soon(setter, name="setter")


async def locked_then_fails():
    m = Mutex("m")

    async def writer():
        async with m:
            await rt.checkpoint("write")
        raise RuntimeError("after the lock")

    async with rt.task_group() as tg:
        tg.start_soon(writer, name="writer")
"""


@pytest.fixture
def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = tmp_path / "user_programs.py"
    path.write_text(textwrap.dedent(PROGRAMS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_programs", raising=False)
    return importlib.import_module("user_programs")


def line_of(module: ModuleType, tag: str) -> str:
    """``user_programs.py:12``-style ending of the frame marked ``# LINE:tag``."""
    path = Path(module.__file__ or "")
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if text.endswith(f"# LINE:{tag}"):
            return f"{path.name}:{number}"
    raise AssertionError(f"no line tagged {tag}")


def target_of(fn: Any) -> Target:
    return Target(Scenario(fn.__name__, "", fn, (), needs_world=False))


def run_once(fn: Any, seed: int = 0, *, trace: bool = False) -> Execution:
    return target_of(fn).run(RandomChooser(seed), max_steps=1000, trace=trace)


@pytest.mark.parametrize(
    ("program", "task", "error", "tag"),
    [
        ("overdraft", "withdraw", "AssertionError: balance is -10", "overdraft"),
        ("wrong_release", "intruder", "ProtocolViolation: release() of Mutex 'm'", "release"),
        ("type_error", "adder", "TypeError: unsupported operand", "type"),
        ("nested", "grandchild", "KeyError: 'deep'", "nested"),
    ],
)
def test_an_error_names_its_leaf_task_and_user_frame(
    programs: ModuleType, program: str, task: str, error: str, tag: str
) -> None:
    execution = run_once(getattr(programs, program))
    violation = execution.failure
    assert violation is not None
    assert violation.kind == "error"
    assert violation.tasks == (task,)  # the raiser, not "main"
    assert violation.detail.startswith(error)
    assert f"(in task {task!r} at " in violation.detail
    # the user's frame, not odp_async's (sync.py raised the ProtocolViolation)
    assert violation.detail.endswith(f"{line_of(programs, tag)})")
    assert "ExceptionGroup" not in violation.describe()
    [leaf] = error_leaves(execution.sim)
    assert leaf.task == task
    assert leaf.where is not None
    assert leaf.where.endswith(line_of(programs, tag))


def test_a_protocol_violation_leaf_keeps_its_type(programs: ModuleType) -> None:
    [leaf] = error_leaves(run_once(programs.wrong_release).sim)
    assert isinstance(leaf.error, ProtocolViolation)
    assert leaf.type_name == "ProtocolViolation"
    assert "which does not hold it (held by nobody)" in leaf.message


def test_an_exception_group_with_two_leaves_lists_both(programs: ModuleType) -> None:
    execution = run_once(programs.two_errors)
    violation = execution.failure
    assert violation is not None
    leaves = error_leaves(execution.sim)
    assert sorted(leaf.task for leaf in leaves) == ["alpha", "beta"]
    assert set(violation.tasks) == {"alpha", "beta"}
    assert violation.detail.startswith("2 errors: ")
    assert "TypeError: bad operand (in task 'alpha' at " in violation.detail
    assert f"{line_of(programs, 'alpha')})" in violation.detail
    assert "AssertionError: nope (in task 'beta' at " in violation.detail
    assert f"{line_of(programs, 'beta')})" in violation.detail
    # the violation's step is the step of the first raise, not the end of the run
    assert violation.step == min(leaf.step for leaf in leaves) < execution.sim.steps


def test_describe_execution_lists_the_leaves(programs: ModuleType) -> None:
    text = describe_execution(run_once(programs.two_errors, trace=True))
    lines = text.splitlines()
    assert "raised (2 errors):" in lines
    where = lines[lines.index("  TypeError: bad operand") + 1]
    assert where.startswith("    in task 'alpha' (step ")
    assert where.endswith(line_of(programs, "alpha"))


def first_failing_schedule(fn: Any, seeds: int = 200) -> tuple[int, ...]:
    for seed in range(seeds):
        execution = run_once(fn, seed)
        if execution.is_failure:
            return execution.sim.schedule
    raise AssertionError(f"{seeds} seeds found no failure")


def test_the_step_list_of_a_lost_wakeup_shows_the_finishing_step(programs: ModuleType) -> None:
    schedule = first_failing_schedule(programs.lost_wakeup)
    execution = target_of(programs.lost_wakeup).run(
        ReplayChooser(schedule), max_steps=1000, trace=True
    )
    assert execution.failure is not None
    assert execution.failure.kind == "deadlock"
    text = describe_execution(execution)
    lines = text.splitlines()
    assert lines[0].startswith("deadlock: deadlock (step ")
    rows = [line for line in lines if line.startswith("  step ")]
    assert len(rows) == execution.sim.steps  # every step, the finishing ones included
    # the crucial step: the setter sets the flag, wakes nobody, and finishes
    [crucial] = [row for row in rows if "setter" in row and "finished" in row]
    assert crucial.endswith("setter  set flag; finished")
    # the user's names, readable labels; no ids, no raw tuples
    assert any(row.endswith("waiter  park; waits on WaitQueue 'q'  <==") for row in rows)
    assert "task 1" not in text
    assert "(0," not in text
    assert "('" not in text
    assert rows[0].split()[2:4] == ["main", "starts;"]
    # the preemptions the chooser made are marked
    assert set(execution.sim.preemptions) == {
        int(row.split()[1]) for row in rows if row.split()[2] == "*"
    }


def test_the_step_list_names_lock_operations_and_errors(programs: ModuleType) -> None:
    text = describe_execution(run_once(programs.locked_then_fails, trace=True))
    assert "writer  Mutex 'm'.acquire; next: write" in text
    assert "writer  write, Mutex 'm'.release; raised RuntimeError: after the lock  <==" in text
    assert "main    wakes from its task group's children; raised ExceptionGroup (1 error" in text


def test_the_step_list_is_cut_to_its_last_steps(programs: ModuleType) -> None:
    execution = run_once(programs.overdraft, trace=True)
    text = describe_execution(execution, max_steps_shown=2)
    assert f"  ... {execution.sim.steps - 2} earlier steps not shown" in text
    assert len([line for line in text.splitlines() if line.startswith("  step ")]) == 2
    assert "step by step" not in describe_execution(execution, steps=False)
    untraced = run_once(programs.overdraft)
    assert "run it with trace=True" in describe_execution(untraced)


def test_duplicate_task_names_are_told_apart() -> None:
    from odp_async import _runtime as rt

    async def main() -> None:
        async def worker() -> None:
            await rt.checkpoint("work")

        async with rt.task_group() as tg:
            tg.start_soon(worker, name="worker")
            tg.start_soon(worker, name="worker")

    text = describe_execution(run_once(main, trace=True))
    assert "worker#1" in text
    assert "worker#2" in text


# --- usage errors are not findings ---------------------------------------------------------

FOREIGN = """
import asyncio

import trio


async def asyncio_sleep():
    await asyncio.sleep(0)


async def asyncio_event():
    await asyncio.Event().wait()


async def trio_event():
    await trio.Event().wait()


async def trio_sleep():
    await trio.sleep(0)
"""


@pytest.fixture
def foreign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    (tmp_path / "user_foreign.py").write_text(FOREIGN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_foreign", raising=False)
    return importlib.import_module("user_foreign")


@pytest.mark.parametrize(
    ("program", "named"),
    [
        ("asyncio_sleep", "a bare yield (None) - e.g. asyncio.sleep(0)"),
        ("asyncio_event", "asyncio.locks.Event.wait()"),
        ("trio_event", "trio._sync.Event.wait()"),
        ("trio_sleep", "CancelShieldedCheckpoint"),
    ],
)
def test_a_foreign_await_under_explore_is_a_usage_error(
    foreign: ModuleType, program: str, named: str
) -> None:
    fn = getattr(foreign, program)
    with pytest.raises(ForeignAwait) as caught:
        explore_target(target_of(fn), ExploreConfig(schedules=20))
    assert isinstance(caught.value, InvalidArgument)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message
    assert "odp_async.checkpoint()" in message
    assert "odp_async.sync" in message


def test_a_foreign_await_in_an_explored_test_is_no_exploration_failure(
    foreign: ModuleType,
) -> None:
    @explore_test(schedules=5)
    async def test_uses_asyncio() -> None:
        await foreign.asyncio_sleep()

    with pytest.raises(ForeignAwait):
        test_uses_asyncio()


def test_a_users_own_runtime_error_is_still_a_finding(programs: ModuleType) -> None:
    with pytest.raises(ExplorationFailed, match="RuntimeError: after the lock"):
        explore_test(schedules=5)(_call(programs.locked_then_fails))()


def _call(fn: Any) -> Any:
    async def test_body() -> None:
        await fn()

    return test_body


def test_the_step_list_of_a_shrunk_odp_race_reads_as_the_model() -> None:
    result = explore_target(
        Target.resolve("registration-race", "odp2014"), ExploreConfig(schedules=200)
    )
    failure = result.failure
    assert failure is not None
    assert failure.shrunk is not None
    target = Target.resolve("registration-race", "odp2014").with_params(**failure.shrunk.params)
    execution = target.run(
        ReplayChooser(failure.shrunk.schedule), max_steps=result.config.max_steps, trace=True
    )
    text = describe_execution(execution, max_steps_shown=1000)
    rows = [line for line in text.splitlines() if line.startswith("  step ")]
    assert len(rows) == execution.sim.steps
    assert text.splitlines()[0].startswith("found: stale-")
    marked = [row for row in rows if row.endswith("<==")]
    assert len(marked) == 1
    assert " madvise " in marked[0]
    assert any("RWLock 'mmap_sem'.acquire-read" in row for row in rows)
    assert any(" register " in row and row.endswith("; finished") for row in rows)
    assert "(not completed);" not in text  # a primitive's old state is not what a step did
