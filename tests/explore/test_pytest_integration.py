"""`explore_test`: explored async tests, their failure report, replay by token, pytest-trio."""

from __future__ import annotations

import pytest

import odp_async as oa
from odp_async.explore.testing import REPLAY_ENV, ExplorationFailed, explore_test


@explore_test(schedules=100, chooser="random")
async def test_an_explored_test_that_holds() -> None:
    lock = oa.Mutex("lock")
    state = {"x": 0}

    async def increment() -> None:
        async with lock:
            value = state["x"]
            await oa.checkpoint()
            state["x"] = value + 1

    async with oa.task_group() as tg:
        for _ in range(3):
            tg.start_soon(increment)
    assert state["x"] == 3


@pytest.fixture
def rounds() -> int:
    return 2


@explore_test(schedules=30, chooser="pct")
async def test_explored_tests_take_fixtures(rounds: int) -> None:
    done = []
    for _ in range(rounds):
        await oa.checkpoint()
        done.append(1)
    assert len(done) == 2


async def lost_update() -> None:
    state = {"x": 0}

    async def increment() -> None:
        value = state["x"]
        await oa.checkpoint()
        state["x"] = value + 1

    async with oa.task_group() as tg:
        tg.start_soon(increment, name="a")
        tg.start_soon(increment, name="b")
    assert state["x"] == 2, f"lost update: x == {state['x']}"


def test_a_failing_explored_test_reports_the_violation_the_schedule_and_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    explored = explore_test(schedules=200, chooser="dfs")(lost_update)
    monkeypatch.delenv(REPLAY_ENV, raising=False)
    with pytest.raises(ExplorationFailed) as info:
        explored()
    message = str(info.value)
    assert "lost update: x == 1" in message
    assert "the run, step by step" in message
    token = message.split(f"{REPLAY_ENV}='")[1].split("'")[0]
    assert token.startswith("odp2.")

    # re-run that one schedule: it fails the same way, and no exploration runs
    monkeypatch.setenv(REPLAY_ENV, token)
    with pytest.raises(ExplorationFailed, match=r"replayed .*lost update: x == 1"):
        explored()


def test_a_token_of_another_test_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    explored = explore_test(schedules=200)(lost_update)
    monkeypatch.delenv(REPLAY_ENV, raising=False)
    with pytest.raises(ExplorationFailed) as info:
        explored()
    token = str(info.value).split(f"{REPLAY_ENV}='")[1].split("'")[0]

    async def unrelated() -> None:
        await oa.checkpoint()

    monkeypatch.setenv(REPLAY_ENV, token)
    explore_test(schedules=5)(unrelated)()  # explores normally, and passes


def test_explore_test_needs_an_async_function() -> None:
    def not_async() -> None:
        pass

    with pytest.raises(oa.InvalidArgument, match="needs an async def test"):
        explore_test()(not_async)  # type: ignore[arg-type]


@pytest.mark.trio
async def test_pytest_trio_runs_beside_explored_tests() -> None:
    """A plain pytest-trio test in the same module: our primitives on the live trio loop."""
    done = oa.Completion("done")

    async def worker() -> None:
        await oa.sleep(0)
        done.complete()

    async with oa.task_group() as tg:
        tg.start_soon(worker)
        await done.wait()
    assert done.statistics().tasks_waiting == 0
