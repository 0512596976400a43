"""`odp_async.tracked`: state a tracked object holds but nobody notes (a container of
the standard library other than dict/list/set, a tuple holding one, the object's
``__dict__`` read directly) makes the reading step unknown, so DPOR never claims
`complete` past a race on it; a tracked object pickles inside a tracking run.  Each
case is a user module outside the package (the new-user trial's programs)."""

from __future__ import annotations

import pytest

from odp_async.explore import explore
from tests.conftest import UserModule

HIDDEN = """
import array, collections, pickle
import attrs
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked

class History(list):
    pass

@tracked
@attrs.define
class Box:
    held: object = None

def _lost(make, read, write):
    async def body():
        box = Box(make())
        async def bump():
            seen = read(box.held)
            await checkpoint("between the read and the write")
            write(box.held, seen + 1)
        async with task_group() as tg:
            tg.start_soon(bump)
            tg.start_soon(bump)
        assert read(box.held) == 2, "a lost update"
    return body

def _get(c):
    return c["n"]

def _put(c, v):
    c["n"] = v

def _seq_get(c):
    return c[0]

def _seq_put(c, v):
    c[0] = v

def _in_tuple_get(t):
    return t[0]["n"]

def _in_tuple_put(t, v):
    t[0]["n"] = v

CASES = {
    "defaultdict": (lambda: collections.defaultdict(int), _get, _put),
    "counter": (collections.Counter, _get, _put),
    "ordereddict": (lambda: collections.OrderedDict(n=0), _get, _put),
    "deque": (lambda: collections.deque([0]), _seq_get, _seq_put),
    "bytearray": (lambda: bytearray(1), _seq_get, _seq_put),
    "array": (lambda: array.array("i", [0]), _seq_get, _seq_put),
    "list-subclass": (lambda: History([0]), _seq_get, _seq_put),
    "tuple-of-dict": (lambda: ({"n": 0},), _in_tuple_get, _in_tuple_put),
}
SCENARIOS = {
    name: Scenario(name, "", _lost(*case), (), needs_world=False, noted_only=True)
    for name, case in CASES.items()
}

@tracked
@attrs.define(slots=False)
class Plain:
    n: int = 0

async def through_dict():
    p = Plain()
    async def bump():
        seen = vars(p)["n"]
        await checkpoint("between the read and the write")
        vars(p)["n"] = seen + 1
    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert p.n == 2, "a lost update"

VARS = Scenario("vars", "", through_dict, (), needs_world=False, noted_only=True)

@tracked
@attrs.define
class Snap:
    n: int = 0

async def save_and_restore():
    s = Snap()
    async def bump():
        await checkpoint("bump")
        s.n += 1
    async with task_group() as tg:
        tg.start_soon(bump)
    copy = pickle.loads(pickle.dumps(s))
    assert copy.n == 1

PICKLE = Scenario("pickle", "", save_and_restore, (), needs_world=False, noted_only=True)
"""

NAMES = (
    "defaultdict",
    "counter",
    "ordereddict",
    "deque",
    "bytearray",
    "array",
    "list-subclass",
    "tuple-of-dict",
)


@pytest.mark.parametrize("name", NAMES)
def test_a_race_on_state_in_an_unnoted_container_is_found(
    user_module: UserModule, name: str
) -> None:
    """Before the fix: `complete: 1 trace, no violation` for every one of these."""
    mod = user_module(HIDDEN, f"hidden_{name.replace('-', '_')}")
    found = explore(mod.SCENARIOS[name], chooser="dpor", schedules=200)
    assert found.failure is not None, found.claim
    assert found.failure.violation.kind == "error"
    assert not found.claim.startswith("complete")


def test_a_race_through_the_objects_dict_is_found(user_module: UserModule) -> None:
    mod = user_module(HIDDEN, "hidden_vars")
    found = explore(mod.VARS, chooser="dpor", schedules=200)
    assert found.failure is not None, found.claim


def test_a_tracked_object_pickles_inside_a_dpor_run(user_module: UserModule) -> None:
    """Before the fix the twin was pickled by name: `PicklingError`, an `error` verdict
    on a correct program."""
    mod = user_module(HIDDEN, "hidden_pickle")
    found = explore(mod.PICKLE, chooser="dpor", schedules=200)
    assert found.failure is None, found.failure
    assert found.claim.startswith("complete")
