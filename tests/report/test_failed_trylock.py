"""A failed trylock (``acquire_nowait`` raising `WouldBlock`, ``try_acquire_write``
returning False) is drawn as a failed attempt, never as a hold: no lock span, a
``trylock-failed`` instant, and a step label that says so (new-user trial 10, defect 3).
User code in tmp_path."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.explore.failures import describe_execution
from odp_async.explore.target import Target
from odp_async.report.svg import render_svg
from odp_async.report.text import render_text
from odp_async.report.timeline import Timeline
from odp_async.sim import RandomChooser
from tests.conftest import UserModule

USER_MODULE = """
from odp_async import Completion, Mutex, RWLock, WouldBlock, task_group

OUTCOME = {}


async def trylock_while_held():
    m = Mutex("m")
    rw = RWLock("rw")
    held = Completion("held")
    tried = Completion("tried")

    async def holder():
        async with m:
            await rw.acquire_write()
            held.complete()
            await tried.wait()
            rw.release_write()

    async def trier():
        await held.wait()
        try:
            m.acquire_nowait()
        except WouldBlock:
            OUTCOME["mutex"] = "would block"
        OUTCOME["rw"] = rw.try_acquire_write()
        tried.complete()

    async with task_group() as tg:
        tg.start_soon(holder, name="holder")
        tg.start_soon(trier, name="trier")
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_trylock")


def test_a_failed_trylock_is_an_attempt_not_a_hold(user: ModuleType) -> None:
    target = Target.resolve(user.trylock_while_held)
    execution = target.run(RandomChooser(0), max_steps=1000, trace=True)
    assert execution.failure is None
    assert user.OUTCOME == {"mutex": "would block", "rw": False}
    timeline = Timeline.from_execution(execution)
    trier = next(lane.task_id for lane in timeline.lanes if lane.name == "trier")
    holder = next(lane.task_id for lane in timeline.lanes if lane.name == "holder")
    locks = [s for s in timeline.spans if s.category == "lock"]
    assert {s.name for s in locks if s.lane == holder} == {"m", "rw"}
    assert [s for s in locks if s.lane == trier] == []
    tries = [i for i in timeline.instants if i.category == "trylock-failed"]
    assert sorted((i.lane, i.name) for i in tries) == [(trier, "m"), (trier, "rw")]

    steps = describe_execution(execution, max_steps_shown=50)
    trier_lines = [line for line in steps.splitlines() if " trier " in line]
    assert any("Mutex 'm'.acquire (trylock failed)" in line for line in trier_lines), steps
    assert any("RWLock 'rw'.acquire-write (trylock failed)" in line for line in trier_lines)
    assert not any("'m'.acquire," in line or line.endswith("'m'.acquire") for line in trier_lines)

    text = render_text(timeline, width=200)
    assert "trylock-failed" in text
    svg = render_svg(timeline)
    assert "trylock-failed" in svg
