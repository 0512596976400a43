"""A tracked field or container that hands out state nobody notes makes the step unknown:
an allow-list (values, tracked objects and containers, `odp_async.sync` primitives, frozen
records, tuples and functions of those), not a deny-list of containers.  Trial 15 (r3,
r4): a bound method of a plain object, a closure over a plain dict, a generator,
``itertools.count()`` and ``io.StringIO`` in a tracked field were read as plain values,
so dpor and dfs said ``complete`` over real races, and `track` passed them, so a model
world kept ``noted_only``.  Each case is a user module outside the package."""

from __future__ import annotations

import pytest

from odp_async.explore import explore
from odp_async.tracked import track
from tests.conftest import UserModule

HIDDEN = """
import dataclasses, enum, io, itertools
import attrs
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import TrackedDict, tracked


@tracked
class H:
    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class Plain:
    def __init__(self):
        self.n = 0

    def get(self):
        return self.n

    def put(self, v):
        self.n = v


def _lost_update(get, put, total):
    async def program():
        h = H(get=get, put=put)

        async def inc():
            v = h.get()
            await checkpoint()
            h.put(v + 1)

        async with task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        assert total() == 2, f"lost update: {total()}"

    return Scenario("lost", "", program, (), needs_world=False, noted_only=True)


def _first_wins(make, take):
    async def program():
        h = H(src=make())
        out = {}

        async def a():
            out["a"] = take(h.src, "a")

        async def b():
            out["b"] = take(h.src, "b")

        async with task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)
        assert out["a"] in (0, "a"), f"lost update: {out}"

    return Scenario("order", "", program, (), needs_world=False, noted_only=True)


def _bound():
    pl = Plain()
    return _lost_update(pl.get, pl.put, lambda: pl.n)


def _closure():
    box = {"n": 0}

    def get():
        return box["n"]

    def put(v):
        box["n"] = v

    return _lost_update(get, put, lambda: box["n"])


def _stringio_take(buf, who):
    buf.write(who)
    return buf.getvalue()[0]


@attrs.frozen
class Holder:
    box: dict


def _record_race(rec):
    async def program():
        h = H(rec=rec)

        async def inc():
            v = h.rec.box["n"]
            await checkpoint()
            h.rec.box["n"] = v + 1

        async with task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        assert rec.box["n"] == 2, f"lost update: {rec.box}"

    return Scenario("lost", "", program, (), needs_world=False, noted_only=True)


class Tagged(str):
    pass  # a str subclass with a __dict__: its fields make it state, not a value


def _tagged_race():
    async def program():
        tag = Tagged("t")
        tag.hits = 0
        h = H(t=tag)

        async def inc():
            v = h.t.hits
            await checkpoint()
            h.t.hits = v + 1

        async with task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        assert tag.hits == 2, f"lost update: {tag.hits}"

    return Scenario("lost", "", program, (), needs_world=False, noted_only=True)


RACES = {
    "bound_method": _bound(),
    "closure": _closure(),
    "count": _first_wins(itertools.count, lambda src, who: next(src)),
    "generator": _first_wins(lambda: (i for i in range(9)), lambda src, who: next(src)),
    "stringio": _first_wins(io.StringIO, _stringio_take),
    "builtin_bound": _first_wins(lambda: [0, 1].pop, lambda src, who: src(0)),
    "frozen_record": _record_race(Holder({"n": 0})),
    "str_subclass": _tagged_race(),
}


class Colour(enum.Enum):
    RED = 1


@attrs.frozen
class Rec:
    n: int
    name: str
    colour: Colour


@dataclasses.dataclass(frozen=True)
class DRec:
    n: int


def plain_function(x):
    return x + 1


@tracked
class Other:
    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1


def _values(value):
    # Two tasks read one field holding `value` and write fields of their own: nothing
    # they share changes, so DPOR explores one trace (no step made unknown).
    async def program():
        h = H(v=value, a=0, b=0)

        async def a():
            h.v
            await checkpoint()
            h.a = 1

        async def b():
            h.v
            await checkpoint()
            h.b = 1

        async with task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)

    return Scenario("values", "", program, (), needs_world=False, noted_only=True)


VALUES = {
    "record": Rec(1, "x", Colour.RED),
    "dataclass": DRec(1),
    "function": plain_function,
    "tuple": (1, "x", Colour.RED, frozenset({2}), None, 1.5, b"y", range(3)),
    "tracked_method": Other().bump,
    "builtin": len,
    "class": Plain,
    "tracked_dict": TrackedDict(k=1),
}
"""

RACE_NAMES = [
    "bound_method",
    "closure",
    "count",
    "generator",
    "stringio",
    "builtin_bound",
    "frozen_record",
    "str_subclass",
]


@pytest.mark.parametrize("name", RACE_NAMES)
def test_hidden_state_handed_out_by_a_tracked_field_is_found(
    user_module: UserModule, name: str
) -> None:
    mod = user_module(HIDDEN, f"tracked_allow_{name}")
    for chooser in ("dpor", "dfs"):
        found = explore(mod.RACES[name], chooser=chooser, schedules=200, shrink=False)
        assert not found.complete, (chooser, found.claim)
        assert found.failure is not None, (chooser, found.claim)
        assert "lost update" in found.failure.describe()


VALUE_NAMES = [
    "record",
    "dataclass",
    "function",
    "tuple",
    "tracked_method",
    "builtin",
    "class",
    "tracked_dict",
]


@pytest.mark.parametrize("name", VALUE_NAMES)
def test_values_on_the_allow_list_keep_the_reduction(user_module: UserModule, name: str) -> None:
    mod = user_module(HIDDEN, f"tracked_allow_v_{name}")
    found = explore(mod._values(mod.VALUES[name]), chooser="dpor", schedules=200, shrink=False)
    assert found.complete, found.claim
    assert found.claim == "complete: 1 trace, no violation"


WALKED = """
import io, itertools
from odp_async.tracked import tracked


@tracked
class Proto:
    def __init__(self, held):
        self.held = held


def closure_over(box):
    def get():
        return box["n"]

    return get


def plain(x):
    return x


HELD = {
    "count": itertools.count(),
    "generator": (i for i in range(3)),
    "stringio": io.StringIO(),
    "closure": closure_over({"n": 0}),
    "builtin_bound": [].append,
}
"""


@pytest.mark.parametrize("name", ["count", "generator", "stringio", "closure", "builtin_bound"])
def test_track_reports_hidden_state_that_is_not_a_container(
    user_module: UserModule, name: str
) -> None:
    """Trial 15 (r4): the world walk passed these, so a model world kept ``noted_only``."""
    mod = user_module(WALKED, f"tracked_walk_{name}")
    assert track(mod.Proto(mod.HELD[name])).untracked
    assert track(mod.Proto(mod.plain)).untracked == ()
    assert track(mod.Proto((1, "x", len))).untracked == ()


WRAPPER = """

def wrap(fn):
    def wrapper(*args):
        return fn(*args)

    return wrapper
"""


def test_only_a_wrapper_of_a_library_named_for_it_is_not_a_closure(
    user_module: UserModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_tracked_code._WRAPPER_TOP` (empty; mutmut under tools/mutation.sh): a closure whose
    code is that library's is its wrapper, not the program's state; any other closure,
    and that one when the library is not named, is reported."""
    from odp_async import _tracked_code

    mod = user_module(WALKED + WRAPPER, "tracked_walk_wrapper")
    top = mod.__name__.split(".", 1)[0]
    closure = mod.wrap(mod.plain)
    assert track(mod.Proto(closure)).untracked
    monkeypatch.setattr(_tracked_code, "_WRAPPER_TOP", frozenset({top}))
    assert track(mod.Proto(closure)).untracked == ()
    monkeypatch.setattr(_tracked_code, "_WRAPPER_TOP", frozenset({top + "_other"}))
    assert track(mod.Proto(closure)).untracked
