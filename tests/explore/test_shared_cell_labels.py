"""A `SharedCell`'s load and store are shown as what they did (``store 'counter'``), not
as a bare ``Footprint``, in the failure text and the timeline; the label is display only
(new-user trial, item 1).  User code in tmp_path."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async._runtime.footprint import Footprint, declared_footprint, independent
from odp_async.explore import check
from odp_async.explore.shared import SharedCell
from odp_async.explore.target import Target
from odp_async.report.text import render_text
from odp_async.report.timeline import Timeline
from odp_async.sim import ReplayChooser
from tests.conftest import UserModule

USER_MODULE = """
from odp_async import task_group
from odp_async.explore.shared import SharedCell


async def lost_update() -> None:
    counter = SharedCell(0, "counter")

    async def bump() -> None:
        seen = await counter.load()
        await counter.store(seen + 1)

    async with task_group() as tg:
        tg.start_soon(bump, name="alpha")
        tg.start_soon(bump, name="beta")
    assert counter.get() == 2, f"lost update: {counter.get()}"
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_cells")


def test_failure_and_timeline_name_the_cell_access(user: ModuleType) -> None:
    result = check(user.lost_update, chooser="dfs")
    assert result.failure is not None
    text = result.failure.describe()
    assert "next: load 'counter'" in text
    assert "store 'counter'; finished" in text
    assert "Footprint" not in text
    target = Target.resolve(user.lost_update)
    execution = target.run(ReplayChooser(result.failure.schedule), max_steps=10_000, trace=True)
    timeline = render_text(Timeline.from_execution(execution), width=200)
    assert "counter [store]" in timeline  # the name first: it survives a cut column
    assert "Footprint" not in timeline


def test_the_label_is_display_only() -> None:
    cell = SharedCell(0)
    labelled = Footprint(writes=frozenset((cell,)), label="store SharedCell")
    assert labelled == Footprint.write(cell)
    assert hash(labelled) == hash(Footprint.write(cell))
    assert declared_footprint(labelled, trust_primitives=False) is labelled
    assert not independent(labelled, Footprint.read(cell))
