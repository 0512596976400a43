"""A plain function's timeline shows each task's finish on its own lane, at its step,
from the sim's `TaskEnd` records (issue 9 trial, defect 4).  User code in tmp_path."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.explore import check
from odp_async.explore.target import Target
from odp_async.report.svg import render_svg
from odp_async.report.text import render_text
from odp_async.report.timeline import Timeline
from odp_async.sim import ReplayChooser
from tests._usermod import lost_update_source
from tests.conftest import UserModule

USER_MODULE = lost_update_source("alpha", "beta")


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_ends")


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
