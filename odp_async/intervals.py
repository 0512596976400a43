"""A dynamic interval tree of closed integer intervals, augmented for fast overlap queries.

Contract
    `IntervalTree` stores closed intervals ``[start, last]`` over ints (``start <= last``;
    ``start == last`` is a one-point interval), each with a value, exactly like the
    kernel's ``include/linux/interval_tree_generic.h`` speaks ``[start, last]``.  The
    same interval may be stored many times, with the same value or not.
    `IntervalTree.insert` returns an `IntervalHandle`, the only way to name that one
    entry later: `IntervalTree.remove` takes it back out, and nothing else.

    Entries are kept in the order (start, last, insertion); every iterator yields in that
    order.  Worst-case costs, for n entries and k results: insert and remove O(log n),
    `IntervalTree.first_overlap` O(log n), ``len``/``in``/`IntervalTree.span` O(1) (``in``
    O(log n) for a handle a copied tree did not insert), and
    `IntervalTree.overlapping` O(log n + k) when the results are one run in that order
    (e.g. all start inside the query), O((1 + r) log n + k) when they form r runs, so
    O(k log n) at worst, as for the kernel's ``interval_tree_iter_next``.

    Structure: a B+-tree.  Leaves hold the entries sorted by key ``(start, last, seq)``;
    every node keeps, per slot, the subtree's first key, first start, largest ``last``
    and the running (prefix) maximum of those largest lasts.  A query bisects the
    starts for its upper end and the prefix maxima for its lower end, so runs of
    subtrees that end too early are skipped in C, not visited.  A lazily built suffix
    maximum also bounds the scan from the right, which keeps one long interval (an
    implicit ODP registration covering everything) from making every query scan its
    node.  Node fill is kept between ``node_capacity // 2`` and ``node_capacity`` (the
    root may hold less), so the height is at most ``1 + log(n) / log(node_capacity // 2)``
    and each node visit costs O(node_capacity), a constant.

    Misuse raises: `TypeError` for non-int bounds, `ValueError` for ``start > last``,
    `HandleNotInTreeError` (a `ValueError`) for removing a handle this tree does not
    hold, `RuntimeError` for advancing an iterator after the tree changed.

Concurrency
    None.  An `IntervalTree` is neither thread- nor task-safe and never yields to an
    event loop; the caller serialises every call.  In the ODP model the registry tree is
    guarded by ``umem_rwsem``: lookups hold it for read, insert/remove hold it for write.
    Iterators are invalidated by any change (see `IntervalTree`), so a reader must not
    drop the lock between two ``next()`` calls if writers may run.

See also
    ``include/linux/interval_tree_generic.h`` and ``mm/interval_tree.c`` (the kernel's
    augmented red-black tree and its ``interval_tree_iter_first``/``_next``);
    ``benchmarks/bench_intervals.py`` (measurements against the ``intervaltree`` package);
    ``tests/test_intervals.py`` (a state-machine test against a brute-force model).
"""

from __future__ import annotations

import reprlib
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any, Final, Generic, NoReturn, TypeVar

__all__ = ["HandleNotInTreeError", "IntervalHandle", "IntervalTree"]

V = TypeVar("V")

DEFAULT_NODE_CAPACITY: Final = 64
"""Default largest number of slots per node; measured fastest in benchmarks/."""

_MIN_NODE_CAPACITY: Final = 4

_Key = tuple[int, int, int]
"""``(start, last, seq)``: unique per entry, since ``seq`` is the tree's insertion count."""


class HandleNotInTreeError(ValueError):
    """`IntervalTree.remove` was given a handle that this tree does not hold.

    The handle was already removed, was inserted into another tree (and not copied with
    it), or was inserted into this one before `IntervalTree.clear`.  The handle is kept
    in ``handle``.
    """

    def __init__(self, message: str, handle: IntervalHandle[Any]) -> None:
        super().__init__(message)
        self.handle = handle


class IntervalHandle(Generic[V]):
    """One entry of an `IntervalTree`: the closed interval ``[start, last]`` and its value.

    Returned by `IntervalTree.insert`; pass it to `IntervalTree.remove` to take exactly
    this entry out.  Its fields are read-only.  Handles compare and hash by identity, so
    two inserts of the same interval and value give two distinct handles.
    """

    __slots__ = ("_key", "_owner", "_value")

    def __init__(self, key: _Key, value: V, owner: object) -> None:
        self._key: Final = key
        self._value: Final = value
        # invariant: `_owner` is the `_token` of the tree that inserted this entry while
        # it holds it, else None (removed) or a dead token (inserted before that tree's
        # clear()).  A copy (`IntervalTree.__copy__`) holds the same handles, under its
        # own token: it finds them by key.
        self._owner: object = owner

    @property
    def start(self) -> int:
        """First point of the interval (inclusive)."""
        return self._key[0]

    @property
    def last(self) -> int:
        """Last point of the interval (inclusive)."""
        return self._key[1]

    @property
    def value(self) -> V:
        """The value given to `IntervalTree.insert`."""
        return self._value

    def __repr__(self) -> str:
        start, last, _ = self._key
        return f"IntervalHandle([{start}, {last}], value={reprlib.repr(self._value)})"


class _Node:
    """A B+-tree node: five parallel lists with one slot per child (or per entry)."""

    __slots__ = ("is_leaf", "keys", "kids", "lasts", "pm", "sm", "starts")

    def __init__(self, is_leaf: bool) -> None:
        self.is_leaf = is_leaf
        # invariant: strictly increasing.  Leaf: keys[j] is kids[j]._key.
        # Branch: keys[j] is kids[j].keys[0] (the same tuple object).
        self.keys: list[_Key] = []
        # invariant: starts[j] == keys[j][0]; a plain int list so bisect compares ints.
        self.starts: list[int] = []
        # Leaf: IntervalHandle entries.  Branch: child _Nodes, all at the same depth.
        self.kids: list[Any] = []
        # invariant: leaf: lasts[j] == keys[j][1]; branch: lasts[j] == kids[j].pm[-1],
        # the largest `last` in that subtree.
        self.lasts: list[int] = []
        # invariant: pm[j] == max(lasts[: j + 1]), so pm is sorted and pm[-1] is the
        # node's largest `last`.  bisect_left(pm, a) is the first slot reaching a.
        self.pm: list[int] = []
        # Cache, filled by long query scans: None, or sm[j] == max(lasts[j:]).  Every
        # write to `lasts` must reset it to None.
        self.sm: list[int] | None = None


def _suffix_max(lasts: list[int]) -> list[int]:
    sm = lasts[:]
    cur = sm[-1]
    for k in range(len(sm) - 2, -1, -1):
        v = sm[k]
        if v < cur:
            sm[k] = cur
        else:
            cur = v
    return sm


def _rebuild_pm(node: _Node, lo: int) -> None:
    """Recompute ``node.pm[lo:]`` from ``node.lasts`` (pm[:lo] must be right); O(fill)."""
    node.sm = None
    lasts = node.lasts
    pm = node.pm
    del pm[lo:]
    if lo >= len(lasts):
        return
    cur = pm[lo - 1] if lo else lasts[lo]
    append = pm.append
    for v in lasts[lo:] if lo else lasts:
        if v > cur:
            cur = v
        append(cur)


def _repair_pm(node: _Node, p: int) -> None:
    """Fix ``node.pm`` after ``node.lasts[p]`` changed or slot p was deleted.

    Needs pm[:p] right and pm[p:] obeying pm[q] == max(pm[q-1], lasts[q]) for q > p;
    stops at the first slot whose prefix maximum is unchanged, since the rest follows.
    """
    node.sm = None
    lasts = node.lasts
    pm = node.pm
    n = len(lasts)
    if p >= n:
        return
    cur = pm[p - 1] if p else lasts[p]
    while p < n:
        v = lasts[p]
        if v > cur:
            cur = v
        if pm[p] == cur:
            return
        pm[p] = cur
        p += 1


def _split(node: _Node) -> _Node:
    """Move the upper half of ``node`` into a new right sibling and return it."""
    half = len(node.kids) // 2
    sib = _Node(node.is_leaf)
    sib.keys = node.keys[half:]
    sib.starts = node.starts[half:]
    sib.kids = node.kids[half:]
    sib.lasts = node.lasts[half:]
    del node.keys[half:], node.starts[half:], node.kids[half:], node.lasts[half:]
    del node.pm[half:]  # a prefix of prefix maxima stays right
    node.sm = None
    _rebuild_pm(sib, 0)
    return sib


def _copy_node(node: _Node) -> _Node:
    """A copy of the subtree under `node`, holding the same handles (and key tuples)."""
    twin = _Node(node.is_leaf)
    twin.keys = node.keys[:]
    twin.starts = node.starts[:]
    twin.lasts = node.lasts[:]
    twin.pm = node.pm[:]
    twin.sm = None if node.sm is None else node.sm[:]
    twin.kids = node.kids[:] if node.is_leaf else [_copy_node(kid) for kid in node.kids]
    return twin


def _as_bound(op: str, name: str, bound: object) -> int:
    if isinstance(bound, int) and not isinstance(bound, bool):
        return int(bound)
    raise TypeError(f"{op}: {name} must be an int, got {type(bound).__name__} {bound!r}")


def _check_bounds(op: str, start: object, last: object) -> tuple[int, int]:
    """Validate bounds that are not both exact ints (slow path); int subclasses become int."""
    return _as_bound(op, "start", start), _as_bound(op, "last", last)


def _reversed_interval(op: str, start: int, last: int) -> ValueError:
    return ValueError(
        f"{op}: reversed interval [{start}, {last}]: start={start} > last={last}"
        " (intervals are closed [start, last] with start <= last)"
    )


class IntervalTree(Generic[V]):
    """A set of closed intervals ``[start, last]`` with values, queried by overlap.

    ``IntervalTree[V]()`` is empty; ``node_capacity`` (keyword-only, >= 4, default
    `DEFAULT_NODE_CAPACITY`) bounds slots per B+-tree node and only trades constant
    factors.

    Operations and worst-case costs (n entries, k results):

    - `insert` O(log n), `remove` O(log n);
    - `overlapping` O(log n + k) to exhaust in the usual case, O(k log n) at worst (see
      its docstring); `first_overlap` O(log n);
    - iteration O(n), ``len``, ``bool``, ``in`` and `span` O(1), `clear` O(1); after a
      copy, ``in`` and `remove` of a handle the tree did not insert O(log n) (below).

    Two intervals overlap when they share a point: ``[s1, l1]`` and ``[s2, l2]`` overlap
    iff ``s1 <= l2 and s2 <= l1``.

    Iterators (`overlapping`, ``iter(tree)``) are fail-fast: if the tree is changed by
    `insert`, `remove` or `clear` after the iterator was created, the next advance of
    that iterator raises `RuntimeError` naming the change, like a dict that "changed
    size during iteration".  Collect first (``list(tree.overlapping(...))``) to change
    the tree while walking the results.

    Copies are independent trees; changing one leaves the other as it was.
    ``copy.copy(tree)`` holds the same entries: the same handles, intervals and value
    objects (not copied), so a handle of the original names the same entry in the copy
    and `remove` takes it out of the one tree it is called on, like a key of a copied
    dict.  ``copy.deepcopy(tree)`` and a pickled tree copy the values and make new
    handles: the original's are not ``in`` them.  Copying costs O(n); after it, ``in``
    and `remove` of a handle a tree did not insert itself find it by key, O(log n).
    """

    __slots__ = (
        "_cap",
        "_len",
        "_long_scan",
        "_min_fill",
        "_mutation",
        "_root",
        "_seq",
        "_shares",
        "_token",
        "_version",
    )

    def __init__(self, *, node_capacity: int = DEFAULT_NODE_CAPACITY) -> None:
        if type(node_capacity) is not int or node_capacity < _MIN_NODE_CAPACITY:
            raise ValueError(
                f"IntervalTree: node_capacity must be an int >= {_MIN_NODE_CAPACITY},"
                f" got {type(node_capacity).__name__} {node_capacity!r}"
            )
        self._cap: Final = node_capacity
        # invariant: every node but the root holds between _min_fill and _cap slots; a
        # branch root holds >= 2.
        self._min_fill: Final = node_capacity // 2
        # Query scans longer than this consult the `sm` cache first.
        self._long_scan: Final = node_capacity // 8
        self._root = _Node(True)
        # invariant: _len is the number of entries in the leaves.
        self._len = 0
        # invariant: _seq exceeds the seq of every key ever issued by this tree.
        self._seq = 0
        # Bumped by every change; iterators compare it to detect a change.
        self._version = 0
        self._mutation = "nothing"
        # Identifies this tree's current contents to handles; replaced by clear().
        self._token: object = object()
        # Whether this tree was copied or is a copy (copy.copy): then it may hold
        # handles it does not own, and is asked for a handle by key (`_holds`).
        self._shares = False

    # -- queries ---------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of entries; O(1)."""
        return self._len

    def __bool__(self) -> bool:
        """Whether the tree holds any entry; O(1)."""
        return self._len > 0

    def __contains__(self, handle: object) -> bool:
        """Whether ``handle`` is an entry of this tree right now; O(1) (O(log n) for a
        handle the tree did not insert, once it was copied or is a copy)."""
        if not isinstance(handle, IntervalHandle):
            return False
        return handle._owner is self._token or (self._shares and self._holds(handle))

    def _holds(self, handle: IntervalHandle[Any]) -> bool:
        """Whether `handle` is an entry of this tree, found by its key; O(log n)."""
        key = handle._key
        start = key[0]
        node = self._root
        while True:
            starts = node.starts
            hi = bisect_right(starts, start)
            if not hi:
                return False
            if starts[hi - 1] == start:
                hi = bisect_right(node.keys, key, bisect_left(starts, start, 0, hi), hi)
            if node.is_leaf:
                return node.kids[hi - 1] is handle
            node = node.kids[hi - 1]

    def __repr__(self) -> str:
        return f"<IntervalTree: {self._len} intervals>"

    def span(self) -> tuple[int, int] | None:
        """``(smallest start, largest last)`` over all entries, or None if empty; O(1)."""
        root = self._root
        if not root.keys:
            return None
        return root.starts[0], root.pm[-1]

    def first_overlap(self, start: int, last: int) -> IntervalHandle[V] | None:
        """The first entry, in (start, last, insertion) order, overlapping ``[start, last]``.

        The kernel's ``interval_tree_iter_first``.  Returns None if nothing overlaps.
        Costs O(log n), all of it in bisects.
        """
        if type(start) is not int or type(last) is not int:
            start, last = _check_bounds("first_overlap()", start, last)
        if start > last:
            raise _reversed_interval("first_overlap()", start, last)
        node = self._root
        while True:
            # Slots [0, i) start at or before `last`; slot j is the first whose subtree
            # reaches `start`.  If j < i - 1 its maximum entry overlaps (it starts before
            # slot j+1, hence before `last`); if j == i - 1 and it has no overlap, no
            # later slot can have one.  So descending into j finds the first overlap.
            i = bisect_right(node.starts, last)
            if not i:
                return None
            j = bisect_left(node.pm, start, 0, i)
            if j >= i:
                return None
            if node.is_leaf:
                handle: IntervalHandle[V] = node.kids[j]
                return handle
            node = node.kids[j]

    def overlapping(self, start: int, last: int) -> Iterator[IntervalHandle[V]]:
        """Iterate over the entries overlapping ``[start, last]`` in (start, last, seq) order.

        The kernel's ``interval_tree_iter_first`` plus ``_next`` loop; lazy, one leaf at a
        time.  To exhaust it costs O((1 + r) log n + k) for k results forming r separate
        runs in key order: results that start inside ``[start, last]`` are one run, so
        r only counts earlier-starting long intervals separated by entries that end
        before ``start``.  Typically O(log n + k); O(k log n) at worst, like the kernel.
        Bad bounds raise here, not at the first ``next()``.  The iterator is fail-fast
        (see `IntervalTree`).
        """
        if type(start) is not int or type(last) is not int:
            start, last = _check_bounds("overlapping()", start, last)
        if start > last:
            raise _reversed_interval("overlapping()", start, last)
        return self._overlapping(start, last, self._version)

    def _overlapping(self, a: int, b: int, version: int) -> Iterator[IntervalHandle[V]]:
        if self._version != version:
            raise self._changed()
        long_scan = self._long_scan
        stack = [self._root]
        pop = stack.pop
        push = stack.append
        while stack:
            node = pop()
            starts = node.starts
            i = bisect_right(starts, b)
            if not i:
                continue
            j = bisect_left(node.pm, a, 0, i)
            if j >= i:
                continue
            # Slots [j, s0) start before `a` and overlap iff they reach it; slots
            # [s0, i) start inside [a, b] and all overlap.
            s0 = bisect_left(starts, a, j, i)
            lasts = node.lasts
            kids = node.kids
            end = s0
            if s0 - j > long_scan:
                # Skip the tail of slots that all end before `a` (a long interval early
                # in the node keeps pm high, so pm alone cannot bound this scan).
                sm = node.sm
                if sm is None:
                    sm = node.sm = _suffix_max(lasts)
                lo = j + 1
                while lo < end:
                    mid = (lo + end) >> 1
                    if sm[mid] < a:
                        end = mid
                    else:
                        lo = mid + 1
            if node.is_leaf:
                while j < end:
                    if lasts[j] >= a:
                        yield kids[j]
                        if self._version != version:
                            raise self._changed()
                    j += 1
                for handle in kids[s0:i]:
                    yield handle
                    if self._version != version:
                        raise self._changed()
            else:
                # Pushed right to left so that children pop in key order.
                k = i - 1
                while k >= s0:
                    push(kids[k])
                    k -= 1
                k = end - 1
                while k >= j:
                    if lasts[k] >= a:
                        push(kids[k])
                    k -= 1

    def __iter__(self) -> Iterator[IntervalHandle[V]]:
        """Iterate over all entries in (start, last, insertion) order; O(n), fail-fast."""
        return self._iter_all(self._version)

    def _iter_all(self, version: int) -> Iterator[IntervalHandle[V]]:
        if self._version != version:
            raise self._changed()
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.is_leaf:
                for handle in node.kids:
                    yield handle
                    if self._version != version:
                        raise self._changed()
            else:
                stack.extend(reversed(node.kids))

    def _changed(self) -> RuntimeError:
        return RuntimeError(
            f"IntervalTree changed during iteration: {self._mutation} was called after"
            " this iterator was created; the iterator is invalid"
        )

    # -- changes ---------------------------------------------------------------------

    def insert(self, start: int, last: int, value: V) -> IntervalHandle[V]:
        """Add the closed interval ``[start, last]`` with ``value``; return its handle.

        Duplicates are kept as separate entries, after existing equal intervals.
        Worst case O(log n).  Invalidates live iterators.
        """
        if type(start) is not int or type(last) is not int:
            start, last = _check_bounds("insert()", start, last)
        if start > last:
            raise _reversed_interval("insert()", start, last)
        seq = self._seq
        self._seq = seq + 1
        key = (start, last, seq)
        handle = IntervalHandle(key, value, self._token)
        self._version += 1
        self._mutation = "insert()"
        self._len += 1

        node = self._root
        path: list[_Node] = []
        slots: list[int] = []
        while True:
            # hi = bisect_right(node.keys, key), bisecting ints and comparing tuples only
            # among equal starts.
            starts = node.starts
            hi = bisect_right(starts, start)
            if hi and starts[hi - 1] == start:
                hi = bisect_right(node.keys, key, bisect_left(starts, start, 0, hi), hi)
            if node.is_leaf:
                break
            i = hi - 1 if hi else 0  # slot 0 also takes a new minimum
            path.append(node)
            slots.append(i)
            node = node.kids[i]

        p = hi
        node.keys.insert(p, key)
        node.starts.insert(p, start)
        node.kids.insert(p, handle)
        node.lasts.insert(p, last)
        node.sm = None
        pm = node.pm
        if p:
            pm.insert(p, pm[p - 1])
            if pm[p] < last:
                q = bisect_left(pm, last, p)
                pm[p:q] = [last] * (q - p)
        else:
            pm.insert(0, last)
            if len(pm) > 1 and pm[1] < last:
                q = bisect_left(pm, last, 1)
                pm[1:q] = [last] * (q - 1)

        cap = self._cap
        child = node
        level = len(path) - 1
        while level >= 0:
            parent = path[level]
            i = slots[level]
            changed = False
            if len(child.kids) > cap:
                sib = _split(child)
                parent.keys.insert(i + 1, sib.keys[0])
                parent.starts.insert(i + 1, sib.starts[0])
                parent.kids.insert(i + 1, sib)
                parent.lasts.insert(i + 1, sib.pm[-1])
                parent.lasts[i] = child.pm[-1]
                parent.keys[i] = child.keys[0]
                parent.starts[i] = child.starts[0]
                _rebuild_pm(parent, i)
                changed = True
            else:
                first = child.keys[0]
                if parent.keys[i] is not first:
                    parent.keys[i] = first
                    parent.starts[i] = first[0]
                    changed = True
                if parent.lasts[i] < last:
                    parent.lasts[i] = last
                    parent.sm = None
                    ppm = parent.pm
                    if ppm[i] < last:
                        q = bisect_left(ppm, last, i)
                        ppm[i:q] = [last] * (q - i)
                    changed = True
            if not changed:
                # Nothing above can change: no split to absorb, same first key, and the
                # ancestors' maxima already cover this subtree's.
                return handle
            child = parent
            level -= 1

        if len(child.kids) > cap:
            sib = _split(child)
            root = _Node(False)
            root.keys = [child.keys[0], sib.keys[0]]
            root.starts = [child.starts[0], sib.starts[0]]
            root.kids = [child, sib]
            root.lasts = [child.pm[-1], sib.pm[-1]]
            _rebuild_pm(root, 0)
            self._root = root
        return handle

    def remove(self, handle: IntervalHandle[V]) -> None:
        """Remove exactly the entry ``handle`` names; worst case O(log n).

        Raises `HandleNotInTreeError` (a `ValueError`) naming the interval if this tree
        does not hold ``handle``: it was removed already, belongs to another tree, or
        was inserted before `clear`.  Invalidates live iterators.
        """
        if not isinstance(handle, IntervalHandle):
            raise TypeError(
                f"remove(): expected an IntervalHandle returned by insert(),"
                f" got {type(handle).__name__} {reprlib.repr(handle)}"
            )
        if handle._owner is not self._token and not (self._shares and self._holds(handle)):
            raise self._not_in_tree(handle)
        key = handle._key
        node = self._root
        path: list[_Node] = []
        slots: list[int] = []
        start = key[0]
        while True:
            # The slot of the last key <= `key` (see insert), which holds `key`.
            starts = node.starts
            hi = bisect_right(starts, start)
            if starts[hi - 1] == start:
                hi = bisect_right(node.keys, key, bisect_left(starts, start, 0, hi), hi)
            if node.is_leaf:
                break
            path.append(node)
            slots.append(hi - 1)
            node = node.kids[hi - 1]
        p = hi - 1
        if node.kids[p] is not handle:
            raise AssertionError(f"IntervalTree corrupted: {handle!r} not at its key")
        self._version += 1
        self._mutation = "remove()"
        self._len -= 1
        handle._owner = None
        del node.keys[p], node.starts[p], node.kids[p], node.lasts[p], node.pm[p]
        _repair_pm(node, p)

        min_fill = self._min_fill
        child = node
        level = len(path) - 1
        while level >= 0:
            parent = path[level]
            i = slots[level]
            if len(child.kids) < min_fill:
                self._rebalance(parent, i)
            else:
                changed = False
                first = child.keys[0]
                if parent.keys[i] is not first:
                    parent.keys[i] = first
                    parent.starts[i] = first[0]
                    changed = True
                top = child.pm[-1]
                if parent.lasts[i] != top:
                    parent.lasts[i] = top
                    _repair_pm(parent, i)
                    changed = True
                if not changed:
                    # No underflow to absorb above, and nothing above saw a change.
                    return
            child = parent
            level -= 1

        root = self._root
        while not root.is_leaf and len(root.kids) == 1:
            root = root.kids[0]
        self._root = root

    def _rebalance(self, parent: _Node, i: int) -> None:
        """Refill ``parent.kids[i]`` (below min fill) from a sibling: merge or share."""
        li = i - 1 if i else 0
        left: _Node = parent.kids[li]
        right: _Node = parent.kids[li + 1]
        nleft = len(left.kids)
        total = nleft + len(right.kids)
        if total <= self._cap:
            left.keys += right.keys
            left.starts += right.starts
            left.kids += right.kids
            left.lasts += right.lasts
            _rebuild_pm(left, nleft)
            del parent.keys[li + 1], parent.starts[li + 1], parent.kids[li + 1]
            del parent.lasts[li + 1]
        else:
            half = total // 2
            if nleft > half:
                right.keys[:0] = left.keys[half:]
                right.starts[:0] = left.starts[half:]
                right.kids[:0] = left.kids[half:]
                right.lasts[:0] = left.lasts[half:]
                del left.keys[half:], left.starts[half:], left.kids[half:], left.lasts[half:]
                del left.pm[half:]
                left.sm = None
            else:
                take = half - nleft
                left.keys += right.keys[:take]
                left.starts += right.starts[:take]
                left.kids += right.kids[:take]
                left.lasts += right.lasts[:take]
                del right.keys[:take], right.starts[:take], right.kids[:take]
                del right.lasts[:take]
                _rebuild_pm(left, nleft)
            _rebuild_pm(right, 0)
            parent.keys[li + 1] = right.keys[0]
            parent.starts[li + 1] = right.starts[0]
            parent.lasts[li + 1] = right.pm[-1]
        parent.keys[li] = left.keys[0]
        parent.starts[li] = left.starts[0]
        parent.lasts[li] = left.pm[-1]
        _rebuild_pm(parent, li)

    def _not_in_tree(self, handle: IntervalHandle[V]) -> HandleNotInTreeError:
        if handle._owner is None:
            why = "it was already removed"
        else:
            why = "it was inserted into another IntervalTree, or into this one before clear()"
        return HandleNotInTreeError(
            f"remove(): interval [{handle.start}, {handle.last}]"
            f" (value={reprlib.repr(handle.value)}) is not in this tree: {why}",
            handle,
        )

    def clear(self) -> None:
        """Remove every entry; O(1).  Old handles stop being ``in`` the tree."""
        self._root = _Node(True)
        self._len = 0
        self._version += 1
        self._mutation = "clear()"
        self._token = object()

    # -- copying ---------------------------------------------------------------------

    def __copy__(self) -> IntervalTree[V]:
        """An independent tree holding the same entries: the same handles, intervals and
        value objects (see `IntervalTree`); O(n)."""
        cls = type(self)
        twin = cls.__new__(cls)
        IntervalTree.__init__(twin, node_capacity=self._cap)
        twin._root = _copy_node(self._root)
        twin._len = self._len
        twin._seq = self._seq
        twin._shares = self._shares = True
        own = getattr(self, "__dict__", None)
        if own:  # a subclass's attributes, shallowly, as `copy.copy` does
            twin.__dict__.update(own)
        return twin

    # -- the explorer's watch of state carried between runs -------------------------

    def _carried_state(self) -> dict[str, object]:
        # What a program can see of the tree, for the explorer's carried-state watch
        # (odp_async.explore.carried): its entries in order, not the change counter
        # and last change kept for fail-fast iterators, nor the insertion counter.
        return {
            "intervals": [(h._key[0], h._key[1], h._value) for h in self._iter_all(self._version)]
        }

    def _carried_frame_state(self, local: dict[str, object]) -> object:
        # An iterator of this tree kept across runs: whether it is still valid (a run
        # that changed the tree and changed it back leaves it invalid).
        version = local.get("version")
        return {"valid": version == self._version} if version is not None else None

    # -- checking --------------------------------------------------------------------

    def _check_invariants(self) -> None:
        """Check every structural invariant; raise `AssertionError` saying which broke.

        O(n).  Checks: uniform leaf depth and node fill (balance), strictly increasing
        keys within and across nodes (order), each slot's first key, first start,
        subtree maximum, prefix maximum and cached suffix maximum (augmentation), handle
        ownership, and size.  Each node is checked on its own before against its parent.
        """

        def fail(msg: str) -> NoReturn:
            raise AssertionError(f"IntervalTree invariant broken: {msg}")

        root = self._root
        leaf_depths: set[int] = set()
        count = 0
        prev_key: _Key | None = None
        # Depth-first in key order, so leaf keys must come out strictly increasing.
        stack: list[tuple[_Node, int, _Node | None, int]] = [(root, 0, None, 0)]
        while stack:
            node, depth, parent, slot = stack.pop()
            where = f"node at depth {depth}" + ("" if parent is None else f", slot {slot}")
            n = len(node.kids)
            if not (len(node.keys) == len(node.starts) == len(node.lasts) == len(node.pm) == n):
                fail(f"{where}: parallel lists of different lengths")
            if n > self._cap:
                fail(f"{where}: {n} slots > capacity {self._cap}")
            if parent is not None and n < self._min_fill:
                fail(f"{where}: {n} slots < min fill {self._min_fill}")
            if parent is None and not node.is_leaf and n < 2:
                fail(f"branch root has {n} children")
            cur: int | None = None
            for j in range(n):
                lj = node.lasts[j]
                cur = lj if cur is None or lj > cur else cur
                if node.pm[j] != cur:
                    fail(f"{where}: pm[{j}]={node.pm[j]} != prefix max {cur}")
                if node.starts[j] != node.keys[j][0]:
                    fail(f"{where}: starts[{j}]={node.starts[j]} != keys[{j}][0]")
                if j and not node.keys[j - 1] < node.keys[j]:
                    fail(f"{where}: keys out of order: {node.keys[j - 1 : j + 1]}")
            if node.sm is not None and node.sm != _suffix_max(node.lasts):
                fail(f"{where}: stale suffix-max cache {node.sm} for lasts {node.lasts}")
            if parent is not None:
                if parent.keys[slot] is not node.keys[0]:
                    fail(f"{where}: parent key {parent.keys[slot]} != first key {node.keys[0]}")
                if parent.lasts[slot] != node.pm[-1]:
                    fail(f"{where}: parent lasts {parent.lasts[slot]} != child max {node.pm[-1]}")
            if node.is_leaf:
                leaf_depths.add(depth)
                count += n
                for j, h in enumerate(node.kids):
                    k = node.keys[j]
                    if not isinstance(h, IntervalHandle) or h._key is not k:
                        fail(f"{where}: leaf slot {j} holds {h!r}, not the entry of key {k}")
                    if h._owner is not self._token and not self._shares:
                        fail(f"{where}: {h!r} is in the tree but not owned by it")
                    if k[0] > k[1]:
                        fail(f"{where}: reversed interval {k}")
                    if k[2] >= self._seq:
                        fail(f"{where}: seq {k[2]} not below the counter {self._seq}")
                    if node.lasts[j] != k[1]:
                        fail(f"{where}: leaf lasts[{j}]={node.lasts[j]} != last of {k}")
                    if prev_key is not None and not prev_key < k:
                        fail(f"keys out of order across leaves: {prev_key} then {k}")
                    prev_key = k
            else:
                for j in range(n - 1, -1, -1):
                    kid = node.kids[j]
                    if not isinstance(kid, _Node) or not kid.kids:
                        fail(f"{where}: slot {j} holds an empty or non-node {kid!r}")
                    stack.append((kid, depth + 1, node, j))
        if len(leaf_depths) > 1:
            fail(f"leaves at different depths {sorted(leaf_depths)}")
        if count != self._len:
            fail(f"{count} entries in leaves but len() == {self._len}")
