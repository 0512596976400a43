"""The `@explore_test` failure message says each thing once: the violation once, one
step list header (issue 9 trial, defect 7).  The test function lives in tmp_path."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.errors import ExplorationFailed
from odp_async.explore.testing import REPLAY_ENV, explore_test
from tests._usermod import lost_update_source
from tests.conftest import UserModule

USER_MODULE = lost_update_source("alpha", "beta")


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_report")


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
