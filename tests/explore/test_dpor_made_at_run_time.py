"""State that a noted-only program's main function makes each time it runs (a function
defined in it whose defaults are built then, a function given an attribute, a class
defined in it) is seen by no note and reached by no walk of the module: the run loses the
noted-only promise (`odp_async._tracked_code._made_at_run_time`), so DPOR and the default
portfolio never claim ``complete`` past a lost update on it.  Before, each program below
made ``explore(..., chooser="dpor")`` claim ``complete: 1 trace, no violation`` while
random found the lost update at once.  A nested function with constant defaults keeps the
reduction.
"""

from __future__ import annotations

import pytest

from odp_async.explore import explore
from tests.conftest import UserModule

PROGRAMS = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario


async def _race(read, write):
    async def inc():
        seen = read()
        await checkpoint("between the read and the write")
        write(seen + 1)

    async with task_group() as tg:
        tg.start_soon(inc)
        tg.start_soon(inc)
    assert read() == 2, "a lost update"


async def nested_default():
    def store(d={"n": 0}):
        return d

    def write(v):
        store()["n"] = v

    await _race(lambda: store()["n"], write)


async def nested_kwdefault():
    def store(*, d={"n": 0}):
        return d

    def write(v):
        store()["n"] = v

    await _race(lambda: store()["n"], write)


async def function_attribute():
    def store():
        return None

    store.n = 0

    def write(v):
        store.n = v

    await _race(lambda: store.n, write)


async def nested_class():
    class Box:
        n = 0

    def write(v):
        Box.n = v

    await _race(lambda: Box.n, write)


async def constant_defaults():
    def scale(v, by=1, name="x"):
        return v * by

    async with task_group() as tg:
        tg.start_soon(checkpoint, name_of(scale(1)))
        tg.start_soon(checkpoint, name_of(scale(2)))


def name_of(v):
    return f"step {v}"


def scenario(main):
    return Scenario(main.__name__, "", main, (), needs_world=False, noted_only=True)
"""


@pytest.mark.parametrize(
    "name", ["nested_default", "nested_kwdefault", "function_attribute", "nested_class"]
)
@pytest.mark.parametrize("chooser", ["dpor", None])
def test_state_made_by_main_is_not_claimed_complete(
    user_module: UserModule, name: str, chooser: str | None
) -> None:
    mod = user_module(PROGRAMS, "made_at_run_time")
    scenario = mod.scenario(getattr(mod, name))
    kwargs = {} if chooser is None else {"chooser": chooser}
    result = explore(scenario, schedules=200, **kwargs)
    assert result.failure is not None, result.claim
    assert "lost update" in str(result.failure.violation)


def test_constant_defaults_keep_the_reduction(user_module: UserModule) -> None:
    mod = user_module(PROGRAMS, "made_at_run_time")
    result = explore(mod.scenario(mod.constant_defaults), chooser="dpor", schedules=200)
    assert result.claim.startswith("complete: 1 trace"), result.claim
