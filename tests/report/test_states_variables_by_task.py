"""Trial 22b f6: the report's variables panel is keyed by task.  Two tasks running the
same function (so of the same name) each keep their own locals in the panel, under
their lanes' titles (``name#<id>``), as the tasks panel names them; a task of a unique
name keeps its plain name.  User code from a module outside the package."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.explore.target import Target
from odp_async.report import render_html
from odp_async.report.states import step_states
from odp_async.sim import RandomChooser
from tests.conftest import UserModule

PROGRAM = """
from odp_async import checkpoint, task_group

SHARED = {"n": 0}


async def worker(mine):
    seen = mine * 10
    await checkpoint("a")
    SHARED["n"] += mine
    await checkpoint("b")


async def lone(tag):
    await checkpoint("c")


async def racy():
    state = {"x": 0}

    async def bump():
        value = state["x"]
        await checkpoint("read")
        state["x"] = value + 1

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert state["x"] == 2


async def child_raises():
    async def check(n):
        got = n * 3
        await checkpoint("c")
        assert got == 4, got

    async with task_group() as tg:
        tg.start_soon(check, 1)


async def two_workers():
    async with task_group() as tg:
        tg.start_soon(worker, 1)
        tg.start_soon(worker, 2)
        tg.start_soon(lone, "only")
"""


@pytest.fixture
def program(user_module: UserModule) -> ModuleType:
    return user_module(PROGRAM, "pertask")


def test_two_tasks_of_one_function_keep_their_own_variables(program: ModuleType) -> None:
    target = Target.resolve(program.two_workers)
    ex = target.run(RandomChooser(0), max_steps=1000, trace=True)
    states = step_states(ex, target)
    titles = {t["task"] for s in states for t in s["tasks"]}
    both = next(
        s["variables"] for s in states if sum("seen" in v for v in s["variables"].values()) == 2
    )
    workers = {k: v for k, v in both.items() if k.startswith("worker")}
    assert len(workers) == 2, both
    assert set(workers) <= titles  # the tasks panel's names
    assert all("#" in k for k in workers)
    assert sorted(v["mine"] for v in workers.values()) == ["1", "2"]
    assert sorted(v["seen"] for v in workers.values()) == ["10", "20"]
    assert states[0]["variables"]["lone"] == {"tag": "'only'"}
    html = render_html(ex, target=target)
    assert "worker#1" in html
    assert "worker#2" in html


def test_without_a_target_there_is_no_panel(program: ModuleType) -> None:
    target = Target.resolve(program.two_workers)
    ex = target.run(RandomChooser(0), max_steps=1000, trace=True)
    assert "variables" not in step_states(ex)[0]


def test_the_main_tasks_own_variables_are_shown(program: ModuleType) -> None:
    # Trial: the main task of a user function runs inside the report's wrapper, whose
    # frame (no plain data) was the one read: `state`, the race's shared dict, never showed.
    target = Target.resolve(program.racy)
    ex = target.run(RandomChooser(0), max_steps=1000, trace=True)
    states = step_states(ex, target)
    mains = [s["variables"].get("main") for s in states]
    assert any(v is not None and v.get("state", "").startswith("{'x': ") for v in mains), mains


@pytest.mark.parametrize(
    ("function", "expected", "ended"),
    [
        ("racy", {"state": "{'x': 1}"}, "raised AssertionError"),
        ("child_raises", {"got": "3", "n": "1"}, "raised AssertionError: 3"),
    ],
)
def test_a_task_that_raised_shows_its_variables_at_the_step_it_raised(
    program: ModuleType, function: str, expected: dict[str, str], ended: str
) -> None:
    # Trial: a raising task's coroutine is finished after its last step, so the panel
    # lost its variables exactly at the failure; they come from the exception's traceback.
    # And the step said the task "finished" where the text report says it raised.
    target = Target.resolve(getattr(program, function))
    runs = (target.run(RandomChooser(seed), max_steps=1000, trace=True) for seed in range(50))
    ex, raised = next(
        (ex, end) for ex in runs for end in ex.sim.ends if isinstance(end.error, AssertionError)
    )
    state = next(s for s in step_states(ex, target) if s["step"] == raised.step)
    shown = state["variables"].get(raised.task)  # a task of a unique name: its name
    assert shown == expected, state
    assert state["did"] == ended
    assert {"task": raised.task, "status": f"ran this step and {ended}"} in state["tasks"]
