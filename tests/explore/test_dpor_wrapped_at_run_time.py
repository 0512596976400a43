"""A callable a noted-only program's main function makes each time it runs by wrapping
or calling (a `functools.lru_cache` / `functools.cache` wrapper, a `functools.wraps`'d
wrapper, a `staticmethod` object) is state no note sees: its cache holds what it
returned, and it takes attributes.  The run loses the noted-only promise
(`odp_async._tracked_code._made_at_run_time`), so DPOR, dfs and the portfolio never
claim ``complete`` past a lost update on it (new-user trial 18a, finding 4: each program
below made dpor claim ``complete: 1 trace, no violation``).  A nested function the tasks
only call, and a @tracked object given a field, keep the reduction.  User code in
tmp_path.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.explore import explore
from tests.conftest import UserModule

PROGRAMS = """
import functools

from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked


async def _race(read, write):
    async def inc():
        seen = read()
        await checkpoint("between the read and the write")
        write(seen + 1)

    async with task_group() as tg:
        tg.start_soon(inc)
        tg.start_soon(inc)
    assert read() == 2, "a lost update"


async def lru_cache_attribute():
    @functools.lru_cache
    def f():
        return 1

    f.n = 0

    def write(v):
        f.n = v

    await _race(lambda: f.n, write)


async def lru_cache_contents():
    @functools.lru_cache(maxsize=1)
    def f(x):
        return [x]

    def write(v):
        f(0)[0] = v

    await _race(lambda: f(0)[0], write)


async def cache_of_a_nested_function():
    def g(x):
        return [x]

    f = functools.cache(g)

    def write(v):
        f(0)[0] = v

    await _race(lambda: f(0)[0], write)


async def wraps_wrapper_attribute():
    def g():
        return 1

    @functools.wraps(g)
    def w():
        return g()

    w.n = 0

    def write(v):
        w.n = v

    await _race(lambda: w.n, write)


async def staticmethod_attribute():
    s = staticmethod(print)
    s.n = 0

    def write(v):
        s.n = v

    await _race(lambda: s.n, write)


@tracked
class Box:
    n: int = 0


@tracked
class Pair:
    a: int = 0
    b: int = 0


async def tracked_fields():
    # each task writes its own field of an object made here, through a helper made
    # here: nothing conflicts, one trace
    pair = Pair()
    pair.a = 0

    def helper(v):
        return v + 1

    async def set_a():
        pair.a = helper(pair.a)
        await checkpoint("a")
        pair.a = helper(pair.a)

    async def set_b():
        pair.b = helper(pair.b)
        await checkpoint("b")
        pair.b = helper(pair.b)

    async with task_group() as tg:
        tg.start_soon(set_a)
        tg.start_soon(set_b)
    assert (pair.a, pair.b) == (2, 2)


async def tracked_box():
    box = Box()
    box.n = 0

    def write(v):
        box.n = v

    def helper():
        return box.n

    await _race(helper, write)


SCENARIOS = {
    name: Scenario(name, "", main, (), needs_world=False, noted_only=True)
    for name, main in list(globals().items())
    if name.islower() and not name.startswith("_") and callable(main)
    and getattr(main, "__module__", None) == __name__ and name != "tracked"
}
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(PROGRAMS, "user_wrapped")


RACES = [
    "lru_cache_attribute",
    "lru_cache_contents",
    "cache_of_a_nested_function",
    "wraps_wrapper_attribute",
    "staticmethod_attribute",
]


@pytest.mark.parametrize("chooser", ["dpor", "dfs", "portfolio"])
@pytest.mark.parametrize("name", RACES)
def test_a_lost_update_on_a_wrapped_callable_is_found(
    user: ModuleType, name: str, chooser: str
) -> None:
    result = explore(user.SCENARIOS[name], chooser=chooser, schedules=500)
    assert not result.complete, result.claim
    assert result.failure is not None, result.claim
    assert "a lost update" in result.failure.describe()


def test_a_tracked_object_and_a_plain_helper_keep_the_reduction(user: ModuleType) -> None:
    result = explore(user.SCENARIOS["tracked_fields"], chooser="dpor", schedules=500)
    assert result.claim == "complete: 1 trace, no violation"
    result = explore(user.SCENARIOS["tracked_box"], chooser="dpor", schedules=500)
    assert result.failure is not None
    assert result.failure.index == 2  # found by the reduced search's second trace


def test_the_walk_names_what_was_made(user: ModuleType) -> None:
    from odp_async._tracked_code import _made_at_run_time

    made = {name: _made_at_run_time(getattr(user, name)) for name in RACES}
    assert any("a decorated function 'f'" in m for m in made["lru_cache_attribute"])
    assert any("a decorated function 'f'" in m for m in made["lru_cache_contents"])
    assert any("a wrapper of the function 'g'" in m for m in made["cache_of_a_nested_function"])
    assert any("a decorated function 'w'" in m for m in made["wraps_wrapper_attribute"])
    assert any("an object given the attribute 'n'" in m for m in made["staticmethod_attribute"])
    assert _made_at_run_time(user.tracked_box) == []
    assert _made_at_run_time(user.tracked_fields) == []
