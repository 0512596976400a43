"""`tracking_session`: one install of `tracked`'s hooks for the runs of a search, taken
off when the block ends, however it ends; nothing for a chooser that keeps no
footprints.  Tried on a user's own tracked class, driven by `sim.run` as a user's own
search loop would be."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from odp_async import tracked as tracked_module
from odp_async._runtime import sim
from odp_async._runtime.footprint import tracking_session
from odp_async.explore.dfs import DfsChooser, PrunedExecution
from odp_async.explore.dpor import DporChooser
from tests.conftest import UserModule

USER_SOURCE = """
from odp_async import checkpoint, task_group
from odp_async.tracked import tracked


@tracked
class Box:
    def __init__(self):
        self.x = 0


async def main():
    box = Box()

    async def bump():
        value = box.x
        await checkpoint("between the read and the write")
        box.x = value + 1

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    return box.x
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_tracking_session")


def hooked(cls: type) -> bool:
    return tracked_module._is_hook(cls.__dict__.get("__getattribute__"))


def search(main: Any, chooser: Any, cls: type) -> tuple[int, set[object], set[bool]]:
    """(traces, values, whether the class had its hooks before each run)."""
    traces, values, before = 0, set(), set()
    while chooser.has_more:
        before.add(hooked(cls))
        try:
            result = sim.run(main, chooser=chooser)
        except PrunedExecution:
            continue
        traces += 1
        values.add(result.value)
    assert chooser.is_complete
    return traces, values, before


def test_the_hooks_stay_on_between_the_runs_of_a_session_and_come_off_after(
    user: ModuleType,
) -> None:
    assert not hooked(user.Box)
    with tracking_session(DporChooser()):
        assert hooked(user.Box)  # on at the start, not at the first run's
        _, _, before = search(user.main, DporChooser(), user.Box)
    assert before == {True}
    assert not hooked(user.Box)
    assert tracked_module._DEPTH == [0]


def test_without_a_session_each_run_puts_them_on_and_takes_them_off(user: ModuleType) -> None:
    _, _, before = search(user.main, DporChooser(), user.Box)
    assert before == {False}
    assert not hooked(user.Box)


def test_a_search_in_a_session_finds_what_it_finds_without(user: ModuleType) -> None:
    alone = search(user.main, DporChooser(), user.Box)[:2]
    with tracking_session(DporChooser()):
        inside = search(user.main, DporChooser(), user.Box)[:2]
    assert inside == alone
    assert alone[1] == {1, 2}  # the lost update and the serial result


def test_a_chooser_that_keeps_no_footprints_gets_no_session(user: ModuleType) -> None:
    chooser = DfsChooser(reduction=False)
    assert not chooser.wants_footprints
    with tracking_session(chooser):
        assert not hooked(user.Box)
        _, values, before = search(user.main, chooser, user.Box)
    assert before == {False}
    assert values == {1, 2}


def test_the_hooks_come_off_when_the_block_raises(user: ModuleType) -> None:
    seen: list[bool] = []

    def failing_search() -> None:
        with tracking_session():
            seen.append(hooked(user.Box))
            raise KeyError("the search's own error")

    with pytest.raises(KeyError):
        failing_search()
    assert seen == [True]
    assert not hooked(user.Box)
    assert tracked_module._DEPTH == [0]


def test_sessions_nest(user: ModuleType) -> None:
    with tracking_session():
        with tracking_session():
            assert hooked(user.Box)
        assert hooked(user.Box)  # the inner end only un-nests
    assert not hooked(user.Box)
