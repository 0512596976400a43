"""The `@explore_test` failure message says each thing once: the violation once, one
step list header (issue 9 trial, defect 7).  The test function lives in tmp_path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.errors import ExplorationFailed
from odp_async.explore.testing import REPLAY_ENV, explore_test

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
    name = f"user_report_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


def _says_each_thing_once(message: str) -> None:
    lines = message.splitlines()
    violation = [line for line in lines if line.startswith("error (step")]
    assert len(violation) <= 1, message
    assert not any(line.startswith(("found: ", "raised:")) for line in lines), message
    assert message.count("step by step") == 1, message
    # the violation once, plus the step where it was raised
    assert message.count("lost update: x == 1") == 2, message
    assert "alpha" in message
    assert "finished" in message


def test_the_failure_message_says_each_thing_once(
    user: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REPLAY_ENV, raising=False)
    explored = explore_test(schedules=200)(user.lost_update)
    with pytest.raises(ExplorationFailed) as info:
        explored()
    message = str(info.value)
    _says_each_thing_once(message)
    token = message.split(f"{REPLAY_ENV}='")[1].split("'")[0]
    monkeypatch.setenv(REPLAY_ENV, token)  # the replayed failure's message too
    with pytest.raises(ExplorationFailed) as info:
        explored()
    _says_each_thing_once(str(info.value))
