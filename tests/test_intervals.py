"""Tests for odp_async.intervals: a state machine against a brute-force model, plus units."""

from __future__ import annotations

import copy
import enum
import itertools
import pickle
import random
from typing import Any, assert_type

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from odp_async.intervals import (
    DEFAULT_NODE_CAPACITY,
    HandleNotInTreeError,
    IntervalHandle,
    IntervalTree,
)

ULONG_MAX = 2**64 - 1  # the kernel's largest `last`


def order_key(h: IntervalHandle[Any], seq: dict[int, int]) -> tuple[int, int, int]:
    """The documented iteration order: (start, last, insertion)."""
    return (h.start, h.last, seq[id(h)])


# -- state machine ---------------------------------------------------------------------

starts = st.one_of(
    st.integers(-20, 120),
    st.sampled_from([0, 1, ULONG_MAX - 1, ULONG_MAX]),
)
lengths = st.one_of(st.sampled_from([0, 0, 1, 2, 7, 40]), st.integers(0, 150))


def closed(start: int, length: int) -> tuple[int, int]:
    """``[start, start + length]``, clipped at ULONG_MAX like a kernel address range."""
    last = start + length
    if start >= 0:
        last = min(last, ULONG_MAX)
    return start, last


class IntervalTreeMachine(RuleBasedStateMachine):
    """Drives an `IntervalTree` and a plain list side by side; they must always agree.

    Small nodes (capacity 4 or 5) make a few dozen entries already a 3-4 level tree, so
    splits, merges and redistributions all happen within a short run.
    """

    capacity = 4

    def __init__(self) -> None:
        super().__init__()
        self.tree: IntervalTree[str] = IntervalTree(node_capacity=self.capacity)
        self.live: list[IntervalHandle[str]] = []  # in insertion order
        self.dead: list[IntervalHandle[str]] = []
        self.seq: dict[int, int] = {}
        self.count = 0
        # trees forked off by `copy`, each with the entries it held then
        self.left_behind: list[tuple[IntervalTree[str], list[IntervalHandle[str]]]] = []

    def _insert(self, start: int, last: int, value: str) -> IntervalHandle[str]:
        h = self.tree.insert(start, last, value)
        assert (h.start, h.last, h.value) == (start, last, value)
        self.seq[id(h)] = self.count
        self.count += 1
        self.live.append(h)
        return h

    def _expected(self, start: int, last: int) -> list[IntervalHandle[str]]:
        hits = [h for h in self.live if h.start <= last and start <= h.last]
        return sorted(hits, key=lambda h: order_key(h, self.seq))

    @rule(start=starts, length=lengths, value=st.sampled_from(["a", "b"]))
    def insert(self, start: int, length: int, value: str) -> None:
        self._insert(*closed(start, length), value)

    @rule(point=starts)
    def insert_point(self, point: int) -> None:
        self._insert(point, point, "point")

    @rule()
    def insert_spanning(self) -> None:
        self._insert(0, ULONG_MAX, "everything")

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def insert_duplicate(self, data: st.DataObject) -> None:
        h = data.draw(st.sampled_from(self.live))
        twin = self._insert(h.start, h.last, h.value)
        assert twin is not h

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        h = data.draw(st.sampled_from(self.live))
        self.tree.remove(h)
        self.live = [x for x in self.live if x is not h]
        self.dead.append(h)
        assert h not in self.tree

    @precondition(lambda self: self.dead)
    @rule(data=st.data())
    def remove_again_fails(self, data: st.DataObject) -> None:
        h = data.draw(st.sampled_from(self.dead))
        with pytest.raises(HandleNotInTreeError, match="is not in this tree") as info:
            self.tree.remove(h)
        assert f"[{h.start}, {h.last}]" in str(info.value)
        assert info.value.handle is h

    @precondition(lambda self: len(self.live) > 15)
    @rule()
    def clear(self) -> None:
        self.tree.clear()
        self.dead += self.live
        self.live = []

    @rule(go_on_with_the_copy=st.booleans())
    def copy(self, go_on_with_the_copy: bool) -> None:
        """Fork the tree (``copy.copy``): the machine goes on with one, the other must
        stay as it was while the first changes (shared handles, found by key)."""
        twin = copy.copy(self.tree)
        if go_on_with_the_copy:
            self.tree, twin = twin, self.tree
        self.left_behind.append((twin, list(twin)))

    @rule(start=starts, length=lengths)
    def overlapping(self, start: int, length: int) -> None:
        start, last = closed(start, length)
        expected = self._expected(start, last)
        got = list(self.tree.overlapping(start, last))
        # Same handles (identity), same multiplicity, same order.
        assert [id(h) for h in got] == [id(h) for h in expected]
        first = self.tree.first_overlap(start, last)
        assert first is (expected[0] if expected else None)

    @rule(point=starts)
    def stab(self, point: int) -> None:
        expected = self._expected(point, point)
        assert [id(h) for h in self.tree.overlapping(point, point)] == [id(h) for h in expected]
        assert self.tree.first_overlap(point, point) is (expected[0] if expected else None)

    @rule()
    def query_everything(self) -> None:
        expected = self._expected(-(2**70), 2**70)
        assert [id(h) for h in self.tree.overlapping(-(2**70), 2**70)] == [id(h) for h in expected]

    @invariant()
    def agrees_with_model(self) -> None:
        self.tree._check_invariants()
        assert len(self.tree) == len(self.live)
        assert bool(self.tree) == bool(self.live)
        in_order = sorted(self.live, key=lambda h: order_key(h, self.seq))
        assert [id(h) for h in self.tree] == [id(h) for h in in_order]
        assert all(h in self.tree for h in self.live)
        assert not any(h in self.tree for h in self.dead)
        span = self.tree.span()
        if self.live:
            assert span == (min(h.start for h in self.live), max(h.last for h in self.live))
        else:
            assert span is None
        for tree, held in self.left_behind[-3:]:
            tree._check_invariants()
            assert [id(h) for h in tree] == [id(h) for h in held]
            assert all(h in tree for h in held)


class IntervalTreeMachineOddCapacity(IntervalTreeMachine):
    capacity = 5


# Small and fast; the derandomized profile in conftest.py makes the runs deterministic.
TestIntervalTreeMachine = IntervalTreeMachine.TestCase
TestIntervalTreeMachine.settings = settings(max_examples=100, stateful_step_count=80)
TestIntervalTreeMachineOddCapacity = IntervalTreeMachineOddCapacity.TestCase
TestIntervalTreeMachineOddCapacity.settings = settings(max_examples=40, stateful_step_count=80)


# -- larger seeded runs, at every fill level ---------------------------------------------


@pytest.mark.parametrize("capacity", [4, 9, DEFAULT_NODE_CAPACITY])
def test_random_workload_matches_brute_force(capacity: int) -> None:
    rng = random.Random(capacity)
    tree: IntervalTree[int] = IntervalTree(node_capacity=capacity)
    live: list[IntervalHandle[int]] = []
    seq: dict[int, int] = {}
    # Grow past three levels even at the default capacity, then shrink to empty.
    plan = [True] * 3000 + [rng.random() < 0.4 for _ in range(3000)] + [False] * 3000
    for step, grow in enumerate(plan):
        if grow or not live:
            start = rng.randrange(10_000)
            h = tree.insert(start, start + rng.choice([0, 1, 5, 50, 500]), step)
            seq[id(h)] = step
            live.append(h)
        else:
            h = live.pop(rng.randrange(len(live)))
            tree.remove(h)
        if step % 150 == 0:
            tree._check_invariants()
            for _ in range(5):
                a = rng.randrange(-10, 10_010)
                b = a + rng.choice([0, 3, 100])
                hits = sorted(
                    (h for h in live if h.start <= b and a <= h.last),
                    key=lambda h: order_key(h, seq),
                )
                assert [id(h) for h in tree.overlapping(a, b)] == [id(h) for h in hits]
    tree._check_invariants()
    assert not tree
    assert list(tree) == []


# -- semantics ---------------------------------------------------------------------------


def test_closed_intervals_overlap_at_shared_endpoints() -> None:
    tree: IntervalTree[str] = IntervalTree()
    h = tree.insert(10, 20, "x")
    for a, b in [(0, 10), (20, 30), (10, 10), (20, 20), (15, 15), (0, 100)]:
        assert list(tree.overlapping(a, b)) == [h], (a, b)
        assert tree.first_overlap(a, b) is h
    for a, b in [(0, 9), (21, 30), (9, 9), (21, 21)]:
        assert list(tree.overlapping(a, b)) == [], (a, b)
        assert tree.first_overlap(a, b) is None


def test_duplicates_are_distinct_entries_in_insertion_order() -> None:
    tree: IntervalTree[str] = IntervalTree()
    first = tree.insert(1, 5, "same")
    second = tree.insert(1, 5, "same")
    shorter = tree.insert(1, 4, "same")
    assert first is not second
    assert first != second
    assert len({first, second, shorter}) == 3
    assert list(tree) == [shorter, first, second]
    tree.remove(second)
    assert list(tree) == [shorter, first]
    assert second not in tree
    assert first in tree


def test_empty_tree() -> None:
    tree: IntervalTree[object] = IntervalTree()
    assert len(tree) == 0
    assert not tree
    assert list(tree) == []
    assert list(tree.overlapping(0, ULONG_MAX)) == []
    assert tree.first_overlap(0, ULONG_MAX) is None
    assert tree.span() is None
    tree._check_invariants()


def test_clear_invalidates_old_handles() -> None:
    tree: IntervalTree[int] = IntervalTree(node_capacity=4)
    handles = [tree.insert(i, i + 3, i) for i in range(50)]
    tree.clear()
    tree._check_invariants()
    assert len(tree) == 0
    assert not any(h in tree for h in handles)
    with pytest.raises(HandleNotInTreeError, match=r"before clear\(\)"):
        tree.remove(handles[7])
    again = tree.insert(7, 10, 7)
    assert list(tree.overlapping(8, 8)) == [again]


def test_int_subclasses_are_accepted_as_plain_ints() -> None:
    class Page(enum.IntEnum):
        FIRST = 4096

    tree: IntervalTree[None] = IntervalTree()
    h = tree.insert(Page.FIRST, 8191, None)
    assert type(h.start) is int
    assert h.start == 4096
    assert tree.first_overlap(Page.FIRST, Page.FIRST) is h


def test_handle_is_read_only_and_readable() -> None:
    tree: IntervalTree[list[int]] = IntervalTree()
    h = tree.insert(3, 9, [1, 2])
    with pytest.raises(AttributeError):
        h.start = 4  # type: ignore[misc]
    with pytest.raises(AttributeError):
        h.value = [3]  # type: ignore[misc]
    assert "[3, 9]" in repr(h)
    assert "[1, 2]" in repr(h)
    # Unhashable values do not make the handle unhashable.
    assert {h: 1}[h] == 1


def test_typing_sanity() -> None:
    tree: IntervalTree[str] = IntervalTree()
    h = tree.insert(1, 2, "v")
    assert_type(h, IntervalHandle[str])
    assert_type(h.value, str)
    assert_type(h.start, int)
    assert_type(tree.first_overlap(1, 1), IntervalHandle[str] | None)
    assert_type(tree.span(), tuple[int, int] | None)
    assert [x.value for x in tree.overlapping(0, 5)] == ["v"]
    # Subscripting the generic classes works at runtime too.
    assert isinstance(IntervalTree[int](), IntervalTree)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["insert", "overlapping", "first_overlap"])
def test_reversed_interval_names_both_bounds(op: str) -> None:
    tree: IntervalTree[None] = IntervalTree()
    args: tuple[Any, ...] = (5, 3, None) if op == "insert" else (5, 3)
    with pytest.raises(ValueError, match=r"reversed interval \[5, 3\]") as info:
        getattr(tree, op)(*args)
    assert "start=5 > last=3" in str(info.value)
    assert f"{op}()" in str(info.value)
    assert len(tree) == 0


@pytest.mark.parametrize(
    ("start", "last", "expected"),
    [
        ("1", 2, "start must be an int, got str '1'"),
        (1, 2.5, "last must be an int, got float 2.5"),
        (True, 2, "start must be an int, got bool True"),
        (0, None, "last must be an int, got NoneType None"),
    ],
)
@pytest.mark.parametrize("op", ["insert", "overlapping", "first_overlap"])
def test_non_int_bounds_name_the_type(op: str, start: object, last: object, expected: str) -> None:
    tree: IntervalTree[None] = IntervalTree()
    args: tuple[Any, ...] = (start, last, None) if op == "insert" else (start, last)
    with pytest.raises(TypeError) as info:
        getattr(tree, op)(*args)
    assert str(info.value) == f"{op}(): {expected}"
    assert len(tree) == 0


def test_remove_twice_names_the_interval() -> None:
    tree: IntervalTree[str] = IntervalTree()
    h = tree.insert(0x1000, 0x1FFF, "mr")
    tree.remove(h)
    with pytest.raises(HandleNotInTreeError) as info:
        tree.remove(h)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == (
        "remove(): interval [4096, 8191] (value='mr') is not in this tree: it was already removed"
    )
    assert info.value.handle is h
    assert len(tree) == 0


def test_remove_foreign_handle_names_the_interval() -> None:
    ours: IntervalTree[str] = IntervalTree()
    theirs: IntervalTree[str] = IntervalTree()
    kept = ours.insert(1, 2, "ours")
    foreign = theirs.insert(1, 2, "theirs")  # same key (start, last, seq) as `kept`
    with pytest.raises(HandleNotInTreeError, match=r"\[1, 2\].*another IntervalTree"):
        ours.remove(foreign)
    assert list(ours) == [kept]
    assert list(theirs) == [foreign]


def _entries(tree: IntervalTree[Any]) -> list[tuple[int, int, Any]]:
    return [(h.start, h.last, h.value) for h in tree]


@pytest.mark.parametrize("capacity", [4, DEFAULT_NODE_CAPACITY])
def test_a_copy_is_an_independent_tree(capacity: int) -> None:
    """trial_d f3: ``copy.copy`` shared the original's nodes, so a remove from the copy
    left the original saying len 10, iterating 9 and missing overlaps."""
    tree: IntervalTree[list[int]] = IntervalTree(node_capacity=capacity)
    handles = [tree.insert(i, i + 5, [i]) for i in range(200)]
    for h in handles[::3]:
        tree.remove(h)
    before = _entries(tree)
    twin = copy.copy(tree)
    twin._check_invariants()
    assert type(twin) is IntervalTree
    assert _entries(twin) == before
    assert all(a.value is b.value for a, b in zip(tree, twin, strict=True))  # shallow
    for h in list(twin)[::2]:
        twin.remove(h)
    twin.insert(1000, 1000, [-1])
    twin.clear()
    twin.insert(7, 7, [7])
    assert _entries(tree) == before
    assert len(tree) == len(before)
    assert [h.value for h in tree.overlapping(100, 100)] == [[95], [97], [98], [100]]
    assert tree.span() == (1, 204)
    tree._check_invariants()
    twin._check_invariants()
    for h in handles[1::3][:20]:  # the original's handles still work in it
        tree.remove(h)
    assert _entries(twin) == [(7, 7, [7])]
    tree._check_invariants()


def test_a_copy_holds_the_same_handles_each_removed_from_one_tree() -> None:
    """The trial's script: a handle of the original names the same entry in the copy."""
    tree: IntervalTree[int] = IntervalTree()
    handles = [tree.insert(i, i + 5, i) for i in range(10)]
    twin = copy.copy(tree)
    assert list(twin) == handles
    twin.remove(handles[3])  # from the copy only
    assert (len(tree), len(list(tree)), handles[3] in tree) == (10, 10, True)
    assert (len(twin), handles[3] in twin) == (9, False)
    assert [h.value for h in tree.overlapping(3, 3)] == [0, 1, 2, 3]
    assert [h.value for h in twin.overlapping(3, 3)] == [0, 1, 2]
    late = twin.insert(100, 100, 100)
    assert list(tree.overlapping(100, 100)) == []
    assert tree.span() == (0, 14)
    assert late not in tree
    with pytest.raises(HandleNotInTreeError, match="another IntervalTree"):
        tree.remove(late)
    tree.remove(handles[3])  # still in the original, though the copy removed it
    tree.remove(handles[4])
    assert handles[4] in twin
    with pytest.raises(HandleNotInTreeError, match="already removed"):
        tree.remove(handles[4])
    twin.remove(handles[4])
    assert [h.value for h in twin.overlapping(4, 4)] == [0, 1, 2]
    again = copy.copy(twin)  # a copy of a copy
    again.remove(handles[0])
    assert handles[0] in tree
    assert handles[0] in twin
    assert handles[0] not in again
    twin.clear()
    assert handles[1] not in twin
    assert handles[1] in tree
    assert handles[1] in again
    for t in (tree, twin, again):
        t._check_invariants()


class _Tagged(IntervalTree[str]):
    def __init__(self, tag: list[str]) -> None:
        super().__init__(node_capacity=4)
        self.tag = tag


def test_a_copy_of_a_subclass_keeps_its_class_and_attributes() -> None:
    tree = _Tagged(["t"])
    for i in range(30):
        tree.insert(i, i, str(i))
    twin = copy.copy(tree)
    assert type(twin) is _Tagged
    assert twin.tag is tree.tag  # shallow, as copy.copy is
    assert twin._cap == 4
    twin._check_invariants()
    deep = copy.deepcopy(tree)
    assert deep.tag == tree.tag
    assert deep.tag is not tree.tag
    assert _entries(deep) == _entries(tree) == _entries(pickle.loads(pickle.dumps(tree)))


def test_remove_non_handle_is_a_type_error() -> None:
    tree: IntervalTree[str] = IntervalTree()
    tree.insert(1, 2, "x")
    with pytest.raises(TypeError, match=r"expected an IntervalHandle.*got tuple \(1, 2\)"):
        tree.remove((1, 2))  # type: ignore[arg-type]
    assert len(tree) == 1


@pytest.mark.parametrize("capacity", [3, 0, -1])
def test_bad_node_capacity(capacity: int) -> None:
    with pytest.raises(ValueError, match=f"node_capacity must be an int >= 4, got int {capacity}"):
        IntervalTree(node_capacity=capacity)


# -- fail-fast iteration -----------------------------------------------------------------


def _filled() -> tuple[IntervalTree[int], list[IntervalHandle[int]]]:
    tree: IntervalTree[int] = IntervalTree(node_capacity=4)
    return tree, [tree.insert(i, i + 10, i) for i in range(40)]


@pytest.mark.parametrize("change", ["insert()", "remove()", "clear()"])
@pytest.mark.parametrize("kind", ["overlapping", "iter"])
def test_change_during_iteration_raises(kind: str, change: str) -> None:
    tree, handles = _filled()
    it = tree.overlapping(0, 100) if kind == "overlapping" else iter(tree)
    assert next(it) is handles[0]
    if change == "insert()":
        tree.insert(5, 6, -1)
    elif change == "remove()":
        tree.remove(handles[30])
    else:
        tree.clear()
    with pytest.raises(RuntimeError, match="changed during iteration") as info:
        next(it)
    assert change in str(info.value)


def test_change_before_first_next_raises() -> None:
    tree, handles = _filled()
    it = tree.overlapping(3, 4)
    tree.remove(handles[0])
    with pytest.raises(RuntimeError, match=r"remove\(\) was called"):
        next(it)


def test_change_after_last_item_raises_on_next_advance() -> None:
    tree, handles = _filled()
    it = tree.overlapping(0, 0)
    assert next(it) is handles[0]
    tree.insert(1000, 1001, 0)
    with pytest.raises(RuntimeError, match=r"insert\(\)"):
        next(it)


def test_collect_then_change_is_fine() -> None:
    tree, handles = _filled()
    for h in list(tree.overlapping(5, 15)):
        tree.remove(h)
    tree._check_invariants()
    assert tree.first_overlap(5, 15) is None
    assert len(tree) == len(handles) - 16
    # An unchanged tree can be iterated any number of times, interleaved.
    a, b = iter(tree), iter(tree)
    assert next(a) is next(b)


# -- the checker must be able to fail ----------------------------------------------------


def _deep_tree() -> IntervalTree[int]:
    tree: IntervalTree[int] = IntervalTree(node_capacity=4)
    for i in range(60):
        tree.insert(i * 3, i * 3 + (i % 7), i)
    tree._check_invariants()
    assert not tree._root.is_leaf
    return tree


def test_check_invariants_catches_a_wrong_subtree_max() -> None:
    tree = _deep_tree()
    root = tree._root
    root.lasts[0] += 1
    root.pm[:] = itertools.accumulate(root.lasts, max)  # keep the node itself consistent
    with pytest.raises(AssertionError, match=r"depth 1, slot 0: parent lasts .* != child max"):
        tree._check_invariants()


def test_check_invariants_catches_a_wrong_prefix_max() -> None:
    tree = _deep_tree()
    tree._root.pm[0] -= 1
    with pytest.raises(AssertionError, match="prefix max"):
        tree._check_invariants()


def test_check_invariants_catches_a_wrong_size() -> None:
    tree = _deep_tree()
    tree._len += 1
    with pytest.raises(AssertionError, match=r"len\(\) == 61"):
        tree._check_invariants()


def test_check_invariants_catches_keys_out_of_order() -> None:
    tree: IntervalTree[int] = IntervalTree(node_capacity=4)
    for i in range(40):
        tree.insert(i, 100, i)  # equal lasts: reordering a leaf keeps every maximum
    leaf = tree._root
    while not leaf.is_leaf:
        leaf = leaf.kids[-1]
    for lst in (leaf.keys, leaf.starts, leaf.kids):
        lst.reverse()
    with pytest.raises(AssertionError, match="keys out of order"):
        tree._check_invariants()


def test_check_invariants_catches_an_underfull_node() -> None:
    tree = _deep_tree()
    leaf = tree._root
    while not leaf.is_leaf:
        leaf = leaf.kids[-1]
    for lst in (leaf.keys, leaf.starts, leaf.kids, leaf.lasts, leaf.pm):
        del lst[1:]
    with pytest.raises(AssertionError, match="min fill"):
        tree._check_invariants()


def test_long_interval_cache_is_used_and_kept_fresh() -> None:
    tree: IntervalTree[int] = IntervalTree(node_capacity=16)
    everything = tree.insert(0, ULONG_MAX, -1)
    handles = [tree.insert(i * 10, i * 10 + 2, i) for i in range(500)]
    # Far right of the leftmost leaf: the scan there is long and consults the cache.
    assert list(tree.overlapping(4001, 4001)) == [everything, handles[400]]
    leftmost = tree._root
    while not leftmost.is_leaf:
        leftmost = leftmost.kids[0]
    assert leftmost.sm is not None
    tree._check_invariants()
    # Growing an interval in that leaf must show up, i.e. the cache was dropped.
    grown = tree.insert(5, 4001, 7)
    tree._check_invariants()
    assert list(tree.overlapping(4001, 4001)) == [everything, grown, handles[400]]
    tree.remove(grown)
    tree._check_invariants()
    assert list(tree.overlapping(4001, 4001)) == [everything, handles[400]]
