"""`odp_async.explore.carried`: what the watch of an explored test's arguments sees change."""

from __future__ import annotations

import array
import ctypes
import functools
import hashlib
import io
import itertools
import threading
from collections import deque
from pathlib import Path
from typing import Any

import attrs
import pytest

from odp_async.explore.carried import MAX_DEPTH, ArgumentWatch, Change, code_names, outside_names
from odp_async.intervals import IntervalTree


def _watch(value: object) -> ArgumentWatch:
    return ArgumentWatch.take({"fixture 'v'": ("v", lambda: value)})


def _change_after(value: Any, mutate: Any) -> Change | None:
    watch = _watch(value)
    watch.run_starts()
    mutate(value)
    watch.run_starts()
    return watch.change


@attrs.define
class _Slotted:
    items: list[int]
    __hidden: int = 0  # a private slot (its name is mangled)

    def bump(self) -> None:
        self.__hidden += 1


class _Cached:
    @functools.cached_property
    def total(self) -> int:
        return 3


@pytest.mark.parametrize(
    ("value", "mutate", "path", "before", "after"),
    [
        ({"x": 0}, lambda d: d.update(x=2), "v['x']", "0", "2"),
        ({"x": 1}, lambda d: d.update(x=True), "v['x']", "1", "True"),
        ({"x": 0}, lambda d: d.update(y=1), "v['y']", "absent", "1"),
        ([1, 2], lambda v: v.append(3), "v", "a list of 2 items", "a list of 3 items"),
        ([[1], [2]], lambda v: v[1].append(3), "v[1]", "a list of 1 items", "a list of 2 items"),
        (deque([1]), lambda v: v.appendleft(0), "v", "a deque of 1 items", "a deque of 2 items"),
        ({1, 2}, lambda v: v.discard(1), "v", "a set of 2 items", "a set of 1 items"),
        (bytearray(b"a"), lambda v: v.extend(b"b"), "v", "b'a'", "b'ab'"),
        (
            _Slotted([1]),
            lambda v: v.items.append(2),
            "v.items",
            "a list of 1 items",
            "a list of 2 items",
        ),
        (_Slotted([1]), lambda v: v.bump(), "v._Slotted__hidden", "0", "1"),
        (_Cached(), lambda v: v.total, "v.total", "absent", "3"),
    ],
)
def test_a_change_is_found_by_value_with_its_path(
    value: object, mutate: Any, path: str, before: str, after: str
) -> None:
    assert _change_after(value, mutate) == Change("fixture 'v'", path, before, after, run=1)


def test_a_cycle_is_walked_once_and_a_restored_value_is_no_change() -> None:
    value: dict[str, Any] = {"x": 0}
    value["me"] = value

    def mutate_and_restore(d: dict[str, Any]) -> None:
        d["x"] = 10**30  # a new int object, equal to none before
        d["x"] = 0

    assert _change_after(value, mutate_and_restore) is None


def _write(buffer: io.StringIO) -> None:
    buffer.write("yy")


def _set_value(c: ctypes.c_int) -> None:
    c.value = 9


@pytest.mark.parametrize(
    ("value", "mutate", "path"),
    [
        (array.array("i", [1]), lambda a: a.__setitem__(0, 5), "v"),
        ({"a": array.array("i", [1])}, lambda d: d["a"].append(2), "v['a']"),
        (ctypes.c_int(3), _set_value, "v.<state>"),
        (io.StringIO("x"), _write, "v.<state>"),
        (itertools.count(2), next, "v"),
    ],
    ids=["array", "array-in-dict", "ctypes", "stringio", "count"],
)
def test_a_c_object_that_pickles_is_compared_by_its_state(
    value: object, mutate: Any, path: str
) -> None:
    # verify20 v2: their state is in no attribute, and by identity a correct test that
    # changed one across schedules got a false failure
    change = _change_after(value, mutate)
    assert change is not None
    assert change.path == path
    assert change.before != change.after


def test_what_the_walk_cannot_read_is_compared_by_identity() -> None:
    digest = hashlib.sha256()
    holder = {"lines": digest, "path": Path("/tmp/x")}

    def use(d: dict[str, Any]) -> None:
        str(d["path"])  # fills pathlib's lazy caches: a value, not a change
        d["lines"].update(b"x")  # state of a standard library C object that does not pickle

    assert _change_after(holder, use) is None
    holder_2 = {"lines": digest}
    change = _change_after(holder_2, lambda d: d.update(lines=hashlib.sha256()))
    assert change is not None
    assert change.path == "v['lines']"


def test_a_lock_is_compared_by_whether_it_is_held() -> None:
    # s19: a lock one run leaves held is state the next run starts from
    change = _change_after({"lock": threading.Lock()}, lambda d: d["lock"].acquire())
    assert change is not None
    assert (change.path, change.before, change.after) == (
        "v['lock']",
        "'<unlocked _thread.lock object>'",
        "'<locked _thread.lock object>'",
    )


def test_what_cannot_be_compared_makes_the_second_run_suspect() -> None:
    # s19 (trial 21a f3c): nested past MAX_DEPTH, a value cannot be compared; a root
    # holding one is not taken as unchanged: the second run starts from state unseen
    chain: list[Any] = []
    for _ in range(MAX_DEPTH + 5):
        chain = [chain]
    watch = _watch(chain)
    watch.run_starts()
    assert watch.change is None  # one run shares nothing
    watch.run_starts()
    change = watch.change
    assert change is not None
    assert change.why is not None
    assert f"nested deeper than {MAX_DEPTH}" in change.describe()
    assert "could not be compared between the test's runs" in change.describe()


def test_pytest_objects_are_not_walked(request: pytest.FixtureRequest) -> None:
    assert _change_after(request, lambda r: r.node.stash) is None


def test_outside_names_are_the_globals_and_cells_the_code_names() -> None:
    counter = [0]

    async def body() -> None:
        counter.append(len(_STATE))
        await _helper()

    names = outside_names(body)
    assert set(names) == {
        "module global '_STATE'",
        "module global '_helper'",  # a function: what its code reaches is watched too
        "closure variable 'counter'",
    }
    watch = ArgumentWatch.take(names)
    watch.run_starts()
    _STATE["x"] = 1
    try:
        watch.run_starts()
    finally:
        del _STATE["x"]
    assert watch.change == Change("module global '_STATE'", "_STATE['x']", "absent", "1", run=1)


_STATE: dict[str, int] = {}


async def _helper() -> None:
    return None


def test_a_helper_function_is_watched_through_the_globals_it_names() -> None:
    # s19 (trial 21a f3): the helper's own global, its attribute, its default
    async def body() -> None:
        await _helper_with_state()

    watch = ArgumentWatch.take(outside_names(body))
    watch.run_starts()
    _HELPER_STATE.append(1)
    try:
        watch.run_starts()
    finally:
        _HELPER_STATE.clear()
    assert watch.change is not None
    assert watch.change.path == "_helper_with_state.<global _HELPER_STATE>"


_HELPER_STATE: list[int] = []


async def _helper_with_state() -> None:
    _HELPER_STATE.append(0)


# --- s19 (trial 21a f3): what a run reaches past the arguments' own values -------------


class _Meta(type):
    registry: dict[str, int] = {"n": 0}  # noqa: RUF012


class _WithMeta(metaclass=_Meta):
    pass


class _Counted:
    total = 0


def _with_default(box: list[int] = [0]) -> list[int]:  # noqa: B006
    return box


def _gen() -> Any:
    n = 0
    while True:
        n += yield n


_CV: Any = __import__("contextvars").ContextVar("cv", default={"n": 0})


def _generator() -> Any:
    g = _gen()
    next(g)
    return g


class _Obj:
    def method(self) -> None:
        pass


@pytest.mark.parametrize(
    ("make", "mutate", "path"),
    [
        (lambda: (lambda box: lambda: box)([0]), lambda f: f().append(1), "v.<closure box>"),
        (lambda: functools.partial(len, [0]), lambda p: p.args[0].append(1), "v.args[0]"),
        (lambda: _Counted(), lambda o: setattr(_Counted, "total", 1), "v.<class _Counted>.total"),
        (lambda: _WithMeta, lambda c: c.registry.update(n=1), "v.<metaclass _Meta>.registry['n']"),
        (lambda: _with_default, lambda f: f().append(1), "v.<defaults>[0]"),
        (_generator, lambda g: g.send(1), "v.<locals>['n']"),
        (lambda: {"cv": _CV}, lambda d: d["cv"].get().update(n=1), "v['cv'].<value>['n']"),
        (lambda: _Obj().method, lambda m: setattr(m.__self__, "x", 1), "v.__self__.x"),
    ],
    ids=[
        "closure",
        "partial",
        "class",
        "metaclass",
        "default",
        "generator",
        "contextvar",
        "method",
    ],
)
def test_what_a_run_reaches_is_compared(make: Any, mutate: Any, path: str) -> None:
    value = make()
    try:
        change = _change_after(value, mutate)
    finally:
        _Counted.total = 0
        _Meta.registry["n"] = 0
        _with_default.__defaults__ = ([0],)
        _CV.get().update(n=0)
    assert change is not None
    assert change.path == path


def test_a_cache_filled_and_a_flag_combined_are_told_apart() -> None:
    import enum

    class Perm(enum.Flag):
        R = 1
        W = 2

    @functools.cache
    def cached(n: int) -> list[int]:
        return [n]

    assert _change_after(Perm, lambda p: p.R | p.W) is None  # a cache of enum's own
    # a memo cache that only gains entries is no change (a pure function's results)
    assert _change_after(cached, lambda c: c(1)) is None
    cached(1).append(2)  # a cached result mutated: read through the cache
    change = _change_after(cached, lambda c: c(1).append(3))
    assert change is not None


def test_a_module_imported_in_the_test_body_is_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    module = types.ModuleType("s19_user_mod")
    module.STATE = {"n": 0}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "s19_user_mod", module)
    space: dict[str, Any] = {"__name__": "s19_user_test", "__package__": None}
    exec("def body():\n    import s19_user_mod\n    return s19_user_mod.STATE\n", space)
    watch = ArgumentWatch.take(outside_names(space["body"]), code_names(space["body"]))
    watch.run_starts()
    module.STATE["n"] = 1  # type: ignore[attr-defined]
    watch.run_starts()
    assert watch.change is not None
    assert watch.change.label == "module 's19_user_mod' (imported in the test)"
    assert watch.change.path == "s19_user_mod.STATE['n']"


def test_a_memo_cache_entry_whose_result_changed_is_a_change() -> None:
    @functools.cache
    def box(n: int) -> dict[str, int]:
        return {"n": n}

    box(1)
    assert _change_after(box, lambda b: (b(2), b(3))) is None  # only gains entries
    change = _change_after(box, lambda b: b(1).update(n=5))
    assert change is not None
    assert change.path.startswith("v.<cache>")


# -- an IntervalTree: compared by its intervals, not its iterators' bookkeeping ----------


def _grow_and_empty(tree: IntervalTree[str]) -> None:
    """Inserts and removes, then clears: the tree is as it was, its counters are not."""
    handles = [tree.insert(i, i + 3, f"v{i}") for i in range(20)]
    for h in handles[::2]:
        tree.remove(h)
    tree.clear()


def test_an_interval_tree_emptied_again_is_no_change() -> None:
    for restore in (_grow_and_empty, lambda t: t.remove(t.insert(0, 1, "x"))):
        tree: IntervalTree[str] = IntervalTree(node_capacity=4)
        assert _change_after(tree, restore) is None
    kept: IntervalTree[str] = IntervalTree()
    kept.insert(5, 9, "kept")
    assert _change_after(kept, _grow_and_empty) is not None  # cleared: a change


@pytest.mark.parametrize(
    ("mutate", "before", "after"),
    [
        (lambda t: t.insert(3, 4, "left"), "a list of 1 items", "a list of 2 items"),
        (lambda t: t.remove(next(iter(t))), "a list of 1 items", "a list of 0 items"),
        (lambda t: t.clear(), "a list of 1 items", "a list of 0 items"),
    ],
)
def test_an_interval_tree_left_changed_is_a_change(mutate: Any, before: str, after: str) -> None:
    tree: IntervalTree[str] = IntervalTree()
    tree.insert(0, 9, "first")
    change = _change_after(tree, mutate)
    assert change is not None
    assert (change.path, change.before, change.after) == ("v.<intervals>", before, after)


def test_an_interval_tree_is_compared_by_its_intervals_and_values() -> None:
    def moved(t: IntervalTree[list[int]]) -> None:
        h = next(iter(t))
        t.remove(h)
        t.insert(h.start, h.last + 1, h.value)

    for mutate, path in [
        (lambda t: next(iter(t)).value.append(1), "v.<intervals>[0][2]"),  # its value
        (moved, "v.<intervals>[0][1]"),  # its last
    ]:
        tree: IntervalTree[list[int]] = IntervalTree()
        tree.insert(0, 9, [])
        change = _change_after(tree, mutate)
        assert change is not None
        assert change.path == path


def test_a_kept_iterator_of_an_interval_tree_is_a_change_once_invalid() -> None:
    tree: IntervalTree[str] = IntervalTree()
    tree.insert(0, 9, "x")
    for make in (lambda: tree.overlapping(0, 3), lambda: iter(tree)):
        kept = make()  # not started
        assert _change_after(kept, lambda _: list(tree.overlapping(0, 1))) is None
        change = _change_after(kept, lambda _: tree.remove(tree.insert(1, 2, "y")))
        assert change is not None
        assert change.path == "v.<state>['valid']"
        assert (change.before, change.after) == ("True", "False")
    started = tree.overlapping(0, 3)
    assert next(started).value == "x"
    change = _change_after(started, lambda _: tree.clear())
    assert change is not None


class _UserTree(IntervalTree[str]):
    """A user's subclass: its own attributes are state, as any object's."""

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0


class _OwnHook:
    """A user class with a method of the hook's name: it does not hide its state."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def _carried_state(self) -> dict[str, object]:
        return {}


def test_a_user_subclass_or_hook_hides_no_attribute() -> None:
    change = _change_after(_UserTree(), lambda t: setattr(t, "hits", 1))
    assert change is not None
    assert change.path == "v.hits"
    change = _change_after(_OwnHook(), lambda o: setattr(o, "n", 1))
    assert change is not None
    assert change.path == "v.n"
