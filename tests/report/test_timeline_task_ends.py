"""A plain function's timeline shows each task's finish on its own lane, at its step,
from the sim's `TaskEnd` records (issue 9 trial, defect 4).  User code in tmp_path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import check
from odp_async.explore.target import Target
from odp_async.report.svg import render_svg
from odp_async.report.text import render_text
from odp_async.report.timeline import Timeline
from odp_async.sim import ReplayChooser

USER_MODULE = """
from odp_async import checkpoint, task_group


async def lost_update():
    state = {"x": 0}

    async def increment():
        seen = state["x"]
        await checkpoint("read x")
        state["x"] = seen + 1

    async with task_group() as tg:
        tg.start_soon(increment, name="alpha")
        tg.start_soon(increment, name="beta")
    assert state["x"] == 2, f"lost update: x == {state['x']}"
"""


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    name = f"user_ends_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


def test_each_task_end_is_on_its_lane_at_its_step(user: ModuleType) -> None:
    result = check(user.lost_update, schedules=200, seed=1)
    assert result.failure is not None
    target = Target.resolve(user.lost_update)
    execution = target.run(ReplayChooser(result.failure.schedule), max_steps=10_000, trace=True)
    timeline = Timeline.from_execution(execution)
    ends = {e.task: e.step for e in execution.sim.ends}
    assert {"alpha", "beta"} <= set(ends)
    for name in ("alpha", "beta"):
        lane = next(lane for lane in timeline.lanes if lane.name == name)
        (row,) = (r for r in timeline.rows if r.step == ends[name])
        assert (row.lane, row.action) == (lane.task_id, "end")
    assert all(r.lane is not None for r in timeline.rows if r.action == "end")
    text = render_text(timeline, width=200)
    assert "a task (ends)" not in text
    assert "(a task" not in render_svg(timeline)
