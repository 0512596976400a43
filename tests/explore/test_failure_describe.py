"""`Failure.describe()` (the `check(..., raise_on_failure=True)` message and the CLI's
report) names the cause and lists the last steps (issue 9 trial, defect 6).  User code
in tmp_path."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from odp_async.errors import ExplorationFailed
from odp_async.explore import check
from odp_async.explore.runner import STEPS_SHOWN
from tests.conftest import UserModule

USER_MODULE = """
from odp_async import checkpoint, task_group


async def long_lost_update(rounds):
    state = {"x": 0}

    async def increment():
        for _ in range(rounds):
            await checkpoint("idle")
        seen = state["x"]
        await checkpoint("read x")
        state["x"] = seen + 1

    async with task_group() as tg:
        tg.start_soon(increment, name="alpha")
        tg.start_soon(increment, name="beta")
    assert state["x"] == 2, f"lost update: x == {state['x']}"
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_describe")


@pytest.mark.parametrize("shrink", [True, False])
def test_the_failure_report_has_the_error_leaves_and_the_last_steps(
    user: ModuleType, shrink: bool
) -> None:
    with pytest.raises(ExplorationFailed) as caught:
        check(
            user.long_lost_update, 15, schedules=300, seed=3, shrink=shrink, raise_on_failure=True
        )
    text = str(caught.value)
    assert "AssertionError: lost update: x == 1" in text
    assert re.search(r"in task 'main' \(step \d+\), at \S*user_describe_\w+\.py:\d+", text), text
    assert "step by step" in text
    assert "earlier steps not shown" in text  # compact: only the last ones
    step_lines = [line for line in text.splitlines() if re.match(r"\s+step\s+\d+ ", line)]
    assert len(step_lines) == STEPS_SHOWN
    assert any("finished" in line for line in step_lines)
    assert any("alpha" in line for line in step_lines) or any(
        "beta" in line for line in step_lines
    )
    assert text.splitlines()[-1].startswith("replay: odp-async replay ")


EARLY_FAILURE = """
from odp_async import checkpoint, task_group


async def early_failure():
    async def reader():
        await checkpoint("look")
        raise AssertionError("seen too early")

    async def worker():
        for _ in range(3):
            await checkpoint("work")

    async with task_group() as tg:
        tg.start_soon(reader, name="reader")
        for i in range(40):
            tg.start_soon(worker, name=f"w{i}")
"""


def test_the_failing_step_is_shown_when_many_steps_follow_it(user_module: UserModule) -> None:
    """The steps after the failure (the other tasks' cancellation) used to fill the
    window: the report showed neither the failing step nor its `<==`."""
    mod = user_module(EARLY_FAILURE, "user_early_failure")
    with pytest.raises(ExplorationFailed) as caught:
        check(mod.early_failure, schedules=20, seed=0, raise_on_failure=True)
    text = str(caught.value)
    assert "<==" in text, text
    assert "later steps not shown" in text, text
