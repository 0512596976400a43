"""A progress callback's ``done`` never goes down.

When the default portfolio completes (its dpor member ran every trace) while chunks ran
elsewhere, the chunks that went past the completion are taken out of the count
(`_Tally.trim`): the result counts only the schedules below it.  The progress line had
already shown those chunks' schedules as run; its ``done`` stays where it was (they did
run) rather than falling back.  Tried on a user's own module (written to tmp_path,
imported by name), with a chunk of every schedule on an inline executor.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.explore import ExploreConfig, explore, runner
from odp_async.explore.executors import InlineExecutor
from odp_async.explore.runner import ProgressUpdate, explore_target
from odp_async.explore.target import Target
from tests.conftest import UserModule

USER_SOURCE = '''
from odp_async import task_group
from odp_async.explore.shared import SharedCell
from odp_async.sync import Mutex


async def correct():
    """Two locked increments of a shared cell: no bug (the portfolio completes)."""
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
'''

BUDGET = 5000  # >= runner.SERIAL_BELOW: the schedules run in chunks


class _Clock:
    """One second per read: every progress report is due (none throttled away)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_progress")


def test_done_never_goes_down_when_a_completion_trims_chunks(
    user: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{user.__name__}:correct"
    serial = explore(name, schedules=BUDGET)
    assert serial.complete  # the portfolio completes, far below the budget
    assert serial.schedules < BUDGET // 10

    class OneChunk(runner._Sizer):  # one chunk of every schedule: far past the completion
        def size(self, remaining: int) -> int:
            return remaining

    monkeypatch.setattr(runner, "_Sizer", OneChunk)
    updates: list[ProgressUpdate] = []
    result = explore_target(
        Target.resolve(name),
        ExploreConfig(schedules=BUDGET),
        updates.append,
        executor=InlineExecutor(),
        clock=_Clock(),
    )
    # the verdict and the count are the serial run's: the chunk's part past the completion
    # is not counted
    assert (result.complete, result.schedules, result.claim) == (
        True,
        serial.schedules,
        serial.claim,
    )
    done = [u.done for u in updates]
    assert len(done) >= 2
    assert max(done) > result.schedules  # the chunk's schedules were shown as they ran ...
    assert done == sorted(done), done  # ... and the count never fell back
    assert all(0 <= u.done <= u.total == BUDGET for u in updates)
    assert [u.failures for u in updates] == [0] * len(updates)
