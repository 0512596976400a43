"""A tracked class's data attributes are watched afresh after it changes between runs.

Each tracking run's start watches every data attribute of the tracked classes: a write
past the hooks (``type(self).total += 1``) stops a search under the noted-only promise
with `NondeterminismError`.  Which entries are data is remembered per class
(`_tracked_code._tracked_class_data`) while its ``__dict__`` keeps the same names
holding values of the same types; a class changed between two searches (a method
replaced by a number, a number added) is scanned again, so the next search still sees
its writes.  (A class the program's code names is also watched through the walk, which
catches the replaced method even with the types left out of the memo's check; a name
added is caught by the session's scan alone.)
"""

from __future__ import annotations

import pytest

from odp_async.errors import NondeterminismError
from odp_async.explore import explore
from tests.conftest import UserModule

BOX = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked


@tracked
class Box:
    def __init__(self):
        self.a = 0
        self.b = 0

    def total(self):
        return self.a + self.b

    def bump(self, name):
        owner = type(self)  # a computed owner: only the watch sees the write
        setattr(owner, name, getattr(owner, name) + 1)


def body_writing(name):
    async def body():
        box = Box()

        async def a():
            if name:
                box.bump(name)
            await checkpoint("a")
            box.a = 1

        async def b():
            await checkpoint("b")
            box.b = 1

        async with task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)

    return body


QUIET = Scenario("quiet", "", body_writing(""), (), needs_world=False, noted_only=True)
TOTAL = Scenario("total", "", body_writing("total"), (), needs_world=False, noted_only=True)
COUNT = Scenario("count", "", body_writing("count"), (), needs_world=False, noted_only=True)
"""


@pytest.mark.parametrize("change", ["method-replaced-by-a-number", "number-added"])
def test_a_class_changed_between_searches_is_watched_as_it_is_now(
    user_module: UserModule, change: str
) -> None:
    mod = user_module(BOX, "scan_memo")
    assert explore(mod.QUIET, chooser="dpor").complete  # the class's scan is remembered
    if change == "method-replaced-by-a-number":
        mod.Box.total = 0  # the same names, a value of another type
        name, scenario = "total", mod.TOTAL
    else:
        mod.Box.count = 0  # a new name
        name, scenario = "count", mod.COUNT
    with pytest.raises(NondeterminismError, match=rf"Box\.{name} changed during a run"):
        explore(scenario, chooser="dpor")


def test_an_unchanged_class_is_still_watched(user_module: UserModule) -> None:
    mod = user_module(BOX, "scan_memo")
    mod.Box.count = 0
    assert explore(mod.QUIET, chooser="dpor").complete
    with pytest.raises(NondeterminismError, match=r"Box\.count changed during a run"):
        explore(mod.COUNT, chooser="dpor")
