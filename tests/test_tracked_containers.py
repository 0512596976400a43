"""Tracked containers are built on purpose, never converted: two wrong verdicts a new
user found (trial 13), each pinned here from a module written outside the package.

- a missed race claimed complete: a plain list or dict in a tracked field was swapped for
  a tracked *subclass* of it, whose Python methods noted accesses; ``heapq.heappush``,
  ``list.append(obj.l, x)``, ``dict.update(obj.d, ...)`` and ``dict.__setitem__`` changed
  it through C and noted nothing, so DPOR said ``complete: 1 trace`` over a real race;
- a correct program failed: the swapped field's exact type was ``TrackedDict``, so an
  encoder testing ``type(v) is dict`` raised under DPOR only.

Now a plain container stays the program's own (reading it from a tracked field makes the
step unknown), and `TrackedDict`/`TrackedList`/`TrackedSet` are wrappers, not
subclasses: a C-level write to one raises `TypeError` under every chooser.
"""

from __future__ import annotations

import copy
import heapq
import pickle

import pytest

from odp_async.explore import check, explore
from odp_async.tracked import TrackedDict, TrackedList, TrackedSet
from tests.conftest import UserModule

RACES = """
import heapq
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked


@tracked
class Timers:
    def __init__(self):
        self.heap = []
        self.d = {}


def _racy(change, size):
    async def program():
        t = Timers()

        async def writer():
            await checkpoint("prepare")
            change(t)

        async def watcher():
            await checkpoint("prepare")
            n1 = size(t)
            await checkpoint("between")
            n2 = size(t)
            assert n1 == n2, f"changed under me: {n1} -> {n2}"

        async with task_group() as tg:
            tg.start_soon(writer)
            tg.start_soon(watcher)

    return program


heappush = _racy(lambda t: heapq.heappush(t.heap, (1, "a")), lambda t: len(t.heap))
list_append = _racy(lambda t: list.append(t.heap, 1), lambda t: len(t.heap))
dict_update = _racy(lambda t: dict.update(t.d, a=1), lambda t: len(t.d))
dict_setitem = _racy(lambda t: dict.__setitem__(t.d, "a", 1), lambda t: len(t.d))

SCENARIOS = {
    name: Scenario(name, "", fn, (), needs_world=False, noted_only=True)
    for name, fn in [
        ("heappush", heappush),
        ("list_append", list_append),
        ("dict_update", dict_update),
        ("dict_setitem", dict_setitem),
    ]
}
"""

ENCODER = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked


@tracked
class Store:
    def __init__(self):
        self.data = {}


def encode(v):                       # a hand-rolled encoder, exact types only
    if type(v) is dict:
        return {k: encode(x) for k, x in v.items()}
    if type(v) in (int, str):
        return v
    raise TypeError(f"cannot encode {type(v).__name__}")


async def ok_snapshot():             # correct in every schedule
    s = Store()

    async def put(k):
        s.data[k] = 1
        await checkpoint()

    async with task_group() as tg:
        tg.start_soon(put, "a")
        tg.start_soon(put, "b")
    assert encode(s.data) == {"a": 1, "b": 1}


OK = Scenario("ok_snapshot", "", ok_snapshot, (), needs_world=False, noted_only=True)
"""

WRAPPED = """
import heapq
from odp_async import checkpoint, task_group
from odp_async.tracked import TrackedList, tracked


@tracked
class Timers:
    def __init__(self):
        self.heap = TrackedList()


async def push_on_a_tracked_list():
    t = Timers()
    await checkpoint("prepare")
    heapq.heappush(t.heap, 1)
"""


@pytest.mark.parametrize("name", ["heappush", "list_append", "dict_update", "dict_setitem"])
def test_a_write_through_c_is_found_and_never_claimed_complete(
    user_module: UserModule, name: str
) -> None:
    """On main (200762e) each said ``complete: 1 traces, no violation``."""
    mod = user_module(RACES, f"tracked_c_{name}")
    found = explore(mod.SCENARIOS[name], chooser="dpor", schedules=200, shrink=False)
    assert found.failure is not None, found.claim
    assert "changed under me" in found.failure.describe()
    assert not found.complete


def test_an_exact_type_check_holds_in_dpor_runs(user_module: UserModule) -> None:
    """On main (200762e) it failed under DPOR only: ``cannot encode TrackedDict``."""
    mod = user_module(ENCODER, "tracked_exact_type")
    for found in (
        explore(mod.OK, chooser="dpor", schedules=100, shrink=False),
        check(mod.ok_snapshot, chooser="dpor", schedules=100, shrink=False),
    ):
        assert found.failure is None, found.failure.describe() if found.failure else ""
        assert found.claim.startswith("complete"), found.claim
    store = mod.Store()
    assert type(store.data) is dict  # after the runs, too


@pytest.mark.parametrize("chooser", ["random", "pct", "dpor"])
def test_a_c_write_to_a_tracked_list_is_the_same_error_under_every_chooser(
    user_module: UserModule, chooser: str
) -> None:
    mod = user_module(WRAPPED, f"tracked_wrapped_{chooser}")
    found = check(mod.push_on_a_tracked_list, chooser=chooser, schedules=5, shrink=False)
    assert found.failure is not None
    assert "heappush() argument 1 must be list, not TrackedList" in found.failure.describe()


def test_c_level_writes_to_tracked_containers_raise() -> None:
    tl: TrackedList[int] = TrackedList([3, 1])
    td: TrackedDict[str, int] = TrackedDict(a=1)
    ts: TrackedSet[int] = TrackedSet({1})
    with pytest.raises(TypeError):
        heapq.heappush(tl, 2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        list.append(tl, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dict.update(td, b=2)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        dict.__setitem__(td, "b", 2)  # type: ignore[index]
    with pytest.raises(TypeError):
        set.add(ts, 2)  # type: ignore[arg-type]
    assert (list(tl), dict(td), set(ts)) == ([3, 1], {"a": 1}, {1})


def test_tracked_containers_behave_as_their_plain_ones() -> None:
    tl = TrackedList([3, 1, 2])
    tl.sort()
    tl += [4]
    assert tl == [1, 2, 3, 4]
    assert tl[1:3] == [2, 3]
    assert tl.index(3) == 2
    td = TrackedDict(a=1)
    td.update(b=2)
    assert td == {"a": 1, "b": 2}
    assert td.setdefault("c", 3) == 3
    assert td.pop("a") == 1
    assert list(td.items()) == [("b", 2), ("c", 3)]
    assert td.get("z", 0) == 0
    ts = TrackedSet({1, 2})
    ts |= {3}
    assert ts == {1, 2, 3}
    assert ts - {1} == {2, 3}
    assert {0} | ts == {0, 1, 2, 3}
    for box in (tl, td, ts):
        twin = copy.copy(box)
        assert type(twin) is type(box)
        assert twin == box
        assert twin._plain() is not box._plain()
        again = pickle.loads(pickle.dumps(box))
        assert type(again) is type(box)
        assert again == box
        with pytest.raises(TypeError):
            hash(box)


KEPT = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import TrackedDict, TrackedList, TrackedSet, tracked


@tracked
class Box:
    def __init__(self):
        self.d = TrackedDict(k=1)
        self.l = TrackedList([1, 2])
        self.s = TrackedSet([1, 2])


def _kept(make, use, change):
    # The reader makes an iterator or a view, checkpoints, then uses it: a write in
    # between changes what it sees.
    async def program():
        b = Box()

        async def writer():
            await checkpoint("prepare")
            change(b)

        async def reader():
            kept = make(b)
            first = use(kept)
            await checkpoint("between")
            assert use(kept) == first, f"changed under me: {first} -> {use(kept)}"

        async with task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)

    return Scenario("kept", "", program, (), needs_world=False, noted_only=True)


def _iter_kept(get, change):
    # The reader takes one item, checkpoints, then takes the rest: a write in between
    # changes what the iterator yields (or makes it raise).
    async def program():
        b = Box()

        async def writer():
            await checkpoint("prepare")
            change(b)

        async def reader():
            snapshot = list(get(b))
            it = iter(get(b))
            head = next(it)
            await checkpoint("between")
            seen = [head, *it]
            assert seen == snapshot, f"changed under me: {snapshot} -> {seen}"

        async with task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)

    return Scenario("iter-kept", "", program, (), needs_world=False, noted_only=True)


def _set_k(b):
    b.d["k"] = 2


def _add_j(b):
    b.d["j"] = 2


KEPT = {
    "values": _kept(lambda b: b.d.values(), sum, _set_k),
    "items": _kept(lambda b: b.d.items(), lambda v: sorted(v), _set_k),
    "keys_len": _kept(lambda b: b.d.keys(), len, _add_j),
    "keys_in": _kept(lambda b: b.d.keys(), lambda v: "j" in v, _add_j),
    "dict_iter": _iter_kept(lambda b: b.d, _add_j),
    "list_iter": _iter_kept(lambda b: b.l, lambda b: b.l.insert(0, 0)),
    "set_iter": _iter_kept(lambda b: b.s, lambda b: b.s.discard(2)),
}
"""


@pytest.mark.parametrize(
    "name", ["values", "items", "keys_len", "keys_in", "dict_iter", "list_iter", "set_iter"]
)
def test_a_view_or_iterator_kept_across_a_checkpoint_is_read_when_used(
    user_module: UserModule, name: str
) -> None:
    """Trial 14: a view (``d.values()``) or an iterator of a tracked container, made in
    one step and used in a later one, read the container unnoted in the later step, so
    dpor and dfs said ``complete: 2 traces`` over a real race.  Each use now reads it in
    the step that uses it."""
    mod = user_module(KEPT, f"tracked_kept_{name}")
    for chooser in ("dpor", "dfs"):
        found = explore(mod.KEPT[name], chooser=chooser, schedules=200, shrink=False)
        assert not found.complete, (chooser, found.claim)
        assert found.failure is not None, (chooser, found.claim)
        assert "changed under me" in found.failure.describe() or "changed size" in (
            found.failure.describe()
        )
