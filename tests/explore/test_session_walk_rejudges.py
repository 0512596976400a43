"""Within one tracking session (a DPOR search, a portfolio's dpor batch) the code of the
program is read once, but every `track` of the session judges what that code reaches:
a plain dict inside a tracked object held in a module global is reported by each run's
`track`, not only by the first (a later run would otherwise take the noted-only promise
while the dict's accesses go unnoted).  Tried on a user's own module."""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async._runtime.footprint import tracking_run_ends, tracking_run_starts
from odp_async.tracked import track
from tests.conftest import UserModule

USER_SOURCE = """
import attrs
from odp_async.tracked import tracked


@tracked
@attrs.define
class Box:
    d: dict = attrs.field(factory=dict)


BOX = Box()


async def main():
    BOX.d["x"] = BOX.d.get("x", 0) + 1
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_session_walk")


def test_every_track_of_a_session_reports_what_the_code_reaches(user: ModuleType) -> None:
    alone = track((), code=(user.main,)).untracked
    assert alone == ("builtins.dict",)
    tracking_run_starts()
    try:
        runs = [track((), code=(user.main,)).untracked for _ in range(3)]
    finally:
        tracking_run_ends()
    assert runs == [alone] * 3
