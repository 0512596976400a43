"""`Snapshot.restore` puts every reachable object back, by identity, whatever changed."""

from __future__ import annotations

import enum
import gc
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from odp_async import snapshot as snapshot_mod
from odp_async.errors import InvalidArgument
from odp_async.snapshot import Snapshot


@pytest.fixture(params=["pointers", "elementwise"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both ways of comparing (raw pointers on CPython, ``is not`` elsewhere)."""
    if request.param == "elementwise":
        monkeypatch.setattr(snapshot_mod, "_POINTERS", False)
    else:
        assert snapshot_mod._use_pointers()  # CPython: the fast path is on
    return request.param


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@attrs.define(eq=False)
class Node:
    value: int
    children: list[Node] = attrs.field(factory=list)
    tags: dict[str, int] = attrs.field(factory=dict)
    color: Color = Color.RED
    peer: Node | None = None


@attrs.define
class Record:
    """Compares by value (attrs' default): an equal new one must still be put back."""

    a: int
    b: list[int] = attrs.field(factory=list)


class Tracked:
    """A field as a data descriptor over a renamed slot (how tracked fields may look):
    the snapshot must go through the slot, never the descriptor."""

    __slots__ = ("_x_slot",)
    reads = 0

    @property
    def x(self) -> int:
        type(self).reads += 1
        return int(self._x_slot)

    @x.setter
    def x(self, value: int) -> None:
        self._x_slot = value


class Sub(Tracked):
    __slots__ = ("y",)


class SameLayout(Sub):
    __slots__ = ()


class Plain:
    def __init__(self) -> None:
        self.items: list[int] = [1, 2]
        self.name = "p"


def test_slots_containers_and_identity_are_put_back(mode: str) -> None:
    leaf = Node(2)
    root = Node(1, [leaf], {"a": 1}, peer=leaf)
    snap = Snapshot.take(root)
    leaf_children = leaf.children
    root.value = 10
    root.children.append(Node(3))
    root.tags["b"] = 2
    root.color = Color.BLUE
    root.peer = Node(2)  # equal-looking, not the same object
    leaf.children = [root]
    assert snap.restore() == 4  # root, root.children, root.tags, leaf
    assert (root.value, root.color, root.peer) == (1, Color.RED, leaf)
    assert root.children == [leaf]
    assert root.tags == {"a": 1}
    assert leaf.children is leaf_children
    assert leaf.children == []
    assert snap.restore() == 0


def test_equal_but_distinct_values_are_put_back(mode: str) -> None:
    record = Record(1, [5])
    holder = Node(0, tags={"n": 1})
    box: list[Any] = [record, True, holder]
    snap = Snapshot.take(box)
    box[0] = Record(1, [5])  # == record, but another object
    box[1] = 1  # == True
    holder.tags["n"] = True
    assert snap.restore() == 2
    assert box[0] is record
    assert box[1] is True
    assert holder.tags["n"] == 1
    assert type(holder.tags["n"]) is int


def test_a_str_keyed_dict_with_a_key_swapped_is_put_back(mode: str) -> None:
    value = object()
    d = {"old": value}
    snap = Snapshot.take([d])
    del d["old"]
    d["new"] = value  # same values, same order: only the key changed
    assert snap.restore() == 1
    assert list(d) == ["old"]


def test_dict_order_sets_cells_unset_slots_and_class_are_put_back(mode: str) -> None:
    d = {1: "a", 2: "b"}
    s = {1, 2, 3}

    def make() -> Any:
        count = [0]

        def bump() -> int:
            count[0] += 1
            return count[0]

        return bump

    bump = make()
    tracked = Sub()
    tracked.x = 7  # y left unset
    plain = Plain()
    snap = Snapshot.take([d, s, bump, tracked, plain])
    Tracked.reads = 0
    del d[1]
    d[1] = "a"  # same items, another order
    s.discard(2)
    s.add(99)
    bump()
    bump()
    tracked.x = 8
    tracked.y = "set"
    plain.items.append(3)
    plain.name = "q"
    plain.extra = 1  # type: ignore[attr-defined]
    tracked.__class__ = SameLayout
    snap.restore()
    assert list(d) == [1, 2]
    assert list(s) == [1, 2, 3]
    assert bump() == 1
    assert type(tracked) is Sub
    assert tracked._x_slot == 7
    assert not hasattr(tracked, "y")
    assert vars(plain) == {"items": [1, 2], "name": "p"}
    assert Tracked.reads == 0  # through the slots, not the field's descriptor


def test_objects_made_after_the_snapshot_are_dropped(mode: str) -> None:
    root = Node(1)
    snap = Snapshot.take(root)
    for i in range(1000):
        root.children.append(Node(i))
    snap.restore()
    assert root.children == []
    gc.collect()
    assert not any(isinstance(o, Node) and o.value == 999 for o in gc.get_objects())


def test_many_objects_only_the_changed_blocks_are_written(mode: str) -> None:
    nodes = [Node(i) for i in range(1000)]
    snap = Snapshot.take(nodes)
    assert len(snap) == 1 + 1000 * 3  # the list, and each node with its list and dict
    nodes[500].value = -1
    nodes[999].tags["k"] = 1
    assert snap.restore() == 2
    assert nodes[500].value == 500
    assert nodes[999].tags == {}


def test_what_cannot_be_copied_is_refused_with_its_path() -> None:
    import collections

    with pytest.raises(InvalidArgument, match=r"root\[0\]\.tags\['q'\]: .*collections\.deque"):
        Snapshot.take([Node(1, tags={"q": collections.deque()})])  # type: ignore[dict-item]

    class MyDict(dict[str, int]):
        pass

    with pytest.raises(InvalidArgument, match=r"root\.peer: .*MyDict"):
        Snapshot.take(Node(1, peer=MyDict()))  # type: ignore[arg-type]

    async def coro() -> None:
        pass

    c = coro()
    try:
        with pytest.raises(InvalidArgument, match="coroutine"):
            Snapshot.take([c])
    finally:
        c.close()


def test_shared_things_are_not_copied(mode: str) -> None:
    token = object()
    frozen = frozenset({1})
    root = [token, frozen, Color.RED, Node, len]
    snap = Snapshot.take(root)
    assert len(snap) == 1  # only the list itself
    root.clear()
    snap.restore()
    assert root == [token, frozen, Color.RED, Node, len]
    assert root[0] is token


def test_a_big_container_is_checked_alone_and_put_back(mode: str) -> None:
    before = Node(-1)
    big = {i: Node(i) for i in range(3000)}  # more references than one block holds
    after = Node(-2)
    root = [before, big, after]
    snap = Snapshot.take(root)
    original = dict(big)
    big[5] = Node(5)
    del big[7]
    big[7] = original[7]  # same items, the order changed
    after.value = 0
    assert snap.restore() == 2
    assert list(big.items()) == list(original.items())
    assert after.value == -2
    assert snap.restore() == 0
