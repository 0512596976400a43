"""Copying and pickling tracked state, and subclassing a tracked container: wrong verdicts
a new user found (trial 15), each pinned here from a module written outside the package.

- ``copy.deepcopy``, ``pickle.dumps``, ``__reduce_ex__`` and ``__getstate__`` of a
  `TrackedDict`/`TrackedList`/`TrackedSet` read the private plain container in C, past
  the notes, and ``pickle.dumps`` of a ``@tracked`` object with a ``__dict__`` read that
  dict in C: dpor and dfs said ``complete`` over a real race.  Each is now a noted read
  of everything (containers) or makes the step's footprint unknown (tracked objects).
- a subclass of a tracked container kept its own fields plain and unnoted: subclassing
  one now raises `TypeError` at class creation.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from odp_async.explore import explore
from odp_async.tracked import TrackedDict, TrackedList, TrackedSet
from tests.conftest import UserModule

SNAPSHOTS = """
import copy, pickle
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import TrackedDict, TrackedList, TrackedSet, tracked


@tracked
class Acct:
    def __init__(self):
        self.bal = 0


def _race(build, snap, change, get):
    # The reader snapshots, checkpoints, then looks at its snapshot: the writer's change
    # before the snapshot makes it 5.
    async def program():
        obj = build()
        out = {}

        async def reader():
            s = snap(obj)
            await checkpoint()
            out["v"] = get(s)

        async def writer():
            change(obj)

        async with task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
        assert out["v"] == 0, f"snapshot saw the write: {out}"

    return Scenario("snap", "", program, (), needs_world=False, noted_only=True)


def _d():
    return TrackedDict(a=0)


def _l():
    return TrackedList([0])


def _s():
    return TrackedSet([0])


def _set_d(d):
    d["a"] = 5


def _set_l(l):
    l[0] = 5


def _set_s(s):
    s.discard(0)
    s.add(5)


def _in_s(s):
    return 0 if 0 in s else 5


def _state(t):
    return copy.copy(next(iter(t.__getstate__()[1].values())))


RACES = {
    "deepcopy_dict": _race(_d, copy.deepcopy, _set_d, lambda s: s["a"]),
    "deepcopy_list": _race(_l, copy.deepcopy, _set_l, lambda s: s[0]),
    "deepcopy_set": _race(_s, copy.deepcopy, _set_s, _in_s),
    "pickle_dict": _race(_d, pickle.dumps, _set_d, lambda s: pickle.loads(s)["a"]),
    "pickle_list": _race(_l, pickle.dumps, _set_l, lambda s: pickle.loads(s)[0]),
    "pickle_set": _race(_s, pickle.dumps, _set_s, lambda s: _in_s(pickle.loads(s))),
    "reduce_dict": _race(_d, lambda t: pickle.dumps(t.__reduce_ex__(4)), _set_d,
                         lambda s: pickle.loads(s)[2][1]["_d"]["a"]),
    "getstate_list": _race(_l, _state, _set_l, lambda s: s[0]),
    "getstate_set": _race(_s, _state, _set_s, _in_s),
    "pickle_tracked": _race(Acct, pickle.dumps, lambda a: setattr(a, "bal", 5),
                            lambda s: pickle.loads(s).bal),
    "reduce_tracked": _race(Acct, lambda a: pickle.dumps(a.__reduce_ex__(4)),
                            lambda a: setattr(a, "bal", 5),
                            lambda s: pickle.loads(s)[2]["bal"]),
}
"""

NAMES = [
    "deepcopy_dict",
    "deepcopy_list",
    "deepcopy_set",
    "pickle_dict",
    "pickle_list",
    "pickle_set",
    "reduce_dict",
    "getstate_list",
    "getstate_set",
    "pickle_tracked",
    "reduce_tracked",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_copy_or_pickle_of_tracked_state_is_ordered_against_writes(
    user_module: UserModule, name: str
) -> None:
    """Trial 15 (r1, p6): dpor and dfs said ``complete`` here; now they find the race."""
    mod = user_module(SNAPSHOTS, f"tracked_snap_{name}")
    for chooser in ("dpor", "dfs"):
        found = explore(mod.RACES[name], chooser=chooser, schedules=200, shrink=False)
        assert not found.complete, (chooser, found.claim)
        assert found.failure is not None, (chooser, found.claim)
        assert "snapshot saw the write" in found.failure.describe()


def test_copies_and_pickles_outside_a_run_are_as_before() -> None:
    d = TrackedDict(a=[1])
    d["self"] = d  # type: ignore[assignment]
    for again in (copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert type(again) is TrackedDict
        assert again["a"] == [1]
        assert again["a"] is not d["a"]
        assert again["self"] is again
    lst, st = TrackedList([1, [2]]), TrackedSet([1, 2])
    assert copy.deepcopy(lst) == [1, [2]]
    assert copy.deepcopy(lst)[1] is not lst[1]
    assert pickle.loads(pickle.dumps(lst)) == [1, [2]]
    assert type(copy.deepcopy(st)) is TrackedSet
    assert copy.deepcopy(st) == {1, 2}
    assert pickle.loads(pickle.dumps(st)) == {1, 2}


SUBCLASS = """
from odp_async.tracked import {base}


class Counting({base}):
    def __init__(self):
        super().__init__()
        self.hits = 0
"""


@pytest.mark.parametrize("base", ["TrackedDict", "TrackedList", "TrackedSet"])
def test_subclassing_a_tracked_container_raises(user_module: UserModule, base: str) -> None:
    """Trial 15 (r2): a subclass's own fields were plain, so dpor said ``complete`` over a
    lost update on one.  Now the class statement raises, naming the fix."""
    with pytest.raises(TypeError, match=rf"Counting: {base} cannot be subclassed.*@tracked"):
        user_module(SUBCLASS.format(base=base), f"tracked_sub_{base}")
