"""A deadlock through a `Completion` is described by its wait-for edges, never by a
claim of who could complete it (a completion has no owner): task ``a`` holds ``m`` and
waits on ``done``; main waits on ``m`` and would then complete ``done`` (new-user trial
10, defect 4).  User code in tmp_path."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.explore import check
from odp_async.explore.target import Target
from odp_async.report.timeline import Timeline
from odp_async.sim import ReplayChooser
from tests.conftest import UserModule

USER_MODULE = """
from odp_async import Completion, Mutex, task_group


async def prog():
    m, done, held = Mutex("m"), Completion("done"), Completion("held")

    async def a():
        async with m:
            held.complete_all()
            await done.wait()

    async with task_group() as tg:
        tg.start_soon(a, name="a")
        await held.wait()
        async with m:
            pass
        done.complete_all()
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_dl_msg")


def test_the_report_names_the_wait_for_edges_not_a_completer(user: ModuleType) -> None:
    result = check(user.prog, schedules=10, seed=0)
    failure = result.failure
    assert failure is not None
    assert str(failure.verdict) == "deadlock"
    text = failure.describe()
    assert "a waits for Completion 'done' (not completed)" in text
    assert "main waits for Mutex 'm' held by a" in text
    assert "could complete" not in text
    assert "waits on itself" not in text
    assert "only a itself" not in text

    target = Target.resolve(user.prog)
    schedule = failure.shrunk.schedule if failure.shrunk is not None else failure.schedule
    execution = target.run(ReplayChooser(schedule), max_steps=1000, trace=True)
    timeline = Timeline.from_execution(execution)
    # no drawn edge "a waits for done held by a"
    assert all(edge.waiter != edge.holder for edge in timeline.cycle), timeline.cycle
