"""Tracked classes and containers: shared state whose every read and write the explorer
sees, unwritten.

Contract
    ``@tracked`` on a class (an attrs class or a plain one, slotted or not) makes its
    instances *trackable*: in a run whose chooser keeps footprints (DPOR, dfs with
    reduction), every read of an instance attribute adds a read of
    ``FieldOf(obj, name)`` to the running step's footprint and every write adds a write
    (`odp_async._runtime.footprint`), with no ``note`` written by the author.  A store
    that leaves a data field as it was (the same object, or an equal int, str, bytes,
    bool or None; in a class that stores with ``object.__setattr__``) is a read: it
    commutes with other reads and such stores, and is still ordered against every store
    that changes the field.

    **No cost when nobody tracks.**  A tracked class is exactly as its author wrote it
    except while a run that keeps footprints is in progress: such a run installs a
    noting ``__getattribute__``, ``__setattr__`` and ``__delattr__`` on every tracked
    class (undecorated subclasses inherit them; a subclass defining one of its own gets
    its own hook), each calling the one it stands in for (the class's own, if it defines
    one), and removes them when the run ends, however it ends (an exception, a
    cancellation).  No object ever changes class, and no field ever changes value:
    ``type(obj)``, ``obj.__class__``, ``isinstance``, ``repr``, `attrs.fields`, pickling
    and copying see the program's own class and the program's own objects in its
    fields, inside runs and out.  Every instance is noted in a tracking run, wherever it
    was built (at import, in a test's setup, in an earlier run) and however it is
    reached (a module global, a closure, a default argument).  Runs that keep no
    footprints (random, pct, replay, the live runtimes) see no hook: attribute access is
    the plain slot or dict access, and ``__init__`` adds one list-item test.

    An object's accesses to its own fields while its ``__init__`` builds it fresh are
    not noted (nobody else can hold it before its constructor returns; what the
    constructor publishes is a noted write of that state); a second ``__init__`` on a
    live object is noted like any access.

    **Containers.**  A plain dict, list or set in a tracked field stays exactly the
    object the program put there (``type(x) is dict`` holds in every run), and reading
    it from a tracked field makes the step's footprint *unknown*: it conflicts with
    every step, so a change made to it by any means (its methods, ``heapq``, a base-class
    method, C code) is ordered against every other step (sound, no reduction there).
    For reduction, the author builds a tracked container on purpose: `TrackedDict`
    (noted per key: a lookup reads the key; an insert or delete writes the key and the
    key set; ``len`` reads the key set, iterating reads it and each key it yields),
    `TrackedList` and `TrackedSet` (noted as a whole: a read for queries and iteration,
    a write for any change), and `TrackedRanges` (a multiset of items with byte ranges,
    noted per page: an add or a remove writes the item's pages, `TrackedRanges.overlaps`
    reads the pages asked about; looking at every item makes the step unknown), and
    `TrackedBag` (a multiset whose adds and removes are commutative updates of its size:
    two tasks adding or removing their own elements commute; ``len`` and `snapshot`
    read the size; iteration makes the step unknown).
    Iterators and views are live, as the built-in ones are: each use (a ``next``,
    ``len(d.keys())``, ``x in d.values()``) reads the container in the step that makes
    it, so one kept across a checkpoint is ordered against the writes in between.  The
    first three are `collections.abc.MutableMapping`, `MutableSequence` and `MutableSet`
    wrappers around a private plain container, *not* subclasses of dict, list or set, so
    nothing can change one past its noting methods: ``heapq.heappush(t, x)``,
    ``list.append(t, x)``, ``dict.update(t, ...)``, ``set.add(t, x)`` and C code
    expecting the built-in type raise `TypeError`, in every run and under every chooser
    (random, pct, dpor, the live runtimes) alike; ``dict(t)``, ``list(t)`` and
    ``set(t)`` give plain copies (a read), and so do `copy.deepcopy`, pickling,
    ``__reduce_ex__`` and ``__getstate__`` (a copy of the private container, never the
    container itself, in a tracking run).  They cannot be subclassed (`TypeError` at
    class creation: a subclass's own fields would be unnoted); keep one in a field of a
    ``@tracked`` class instead.  Put ``@tracked`` on top of ``@attrs.define``: the other
    order raises `InvalidArgument` at the first construction (attrs kept ``tracked``'s
    ``__init__`` and made none of its own).

    ``@tracked(exempt={"name": "why"})`` leaves fields out (each with its one-line
    reason: set once in ``__init__`` and never written again, a primitive that notes
    itself...); ``@tracked(whole=True)`` makes the whole object one resource (for a
    structure whose methods change internal nodes, like `odp_async.intervals.IntervalTree`).

    **Soundness.**  Reduction over these footprints is sound when every piece of state
    two tasks share is reached through tracked objects, tracked containers, values
    or the primitives of `odp_async.sync` (which note themselves).  Two fall-backs keep
    a forgotten piece from producing a wrong verdict: a tracked field or tracked
    container read that yields anything not on an allow-list makes the step's footprint
    *unknown* (`_is_opaque`; allowed: None, bools, numbers, strs, bytes, ranges, a bare
    ``object()``, tracked objects and containers, the primitives, classes (their data
    attributes watched: `odp_async._tracked_code.watch_class`), and tuples, frozensets,
    frozen attrs or dataclass records, functions without a closure and bound methods
    whose items, fields, defaults or ``__self__`` are allowed, with enum members, and
    functions and tuple subclasses' instances only while their own ``__dict__`` holds
    nothing past Python's, enum's and functools' entries (its names watched from then
    on: `_carries_state`); so a module, a plain container, an object of an untracked
    class, a closure, a bound method of a plain object, a generator,
    ``itertools.count()`` or ``io.StringIO`` makes the step unknown), and `track`
    reports every such object a walk reaches that nobody notes (`TrackReport.untracked`):
    a model scenario only runs with ``noted_only`` (steps are exactly their noted
    accesses) when that list is empty (`odp_async.world.run_world`).  Pickling or
    copying a tracked object whose class has a ``__dict__`` and no ``__getstate__`` of
    its own makes the step unknown (the default reads the ``__dict__`` in C; a tracking
    run installs a ``__getstate__`` hook with the others); copying or pickling a tracked
    container is a noted read of all of it.  State a task keeps in local variables is its
    own; a container or an untracked object held in a local across a checkpoint and
    changed by another task is not seen.  `track` reads the code as well
    (`odp_async._tracked_code`): a function reached that rebinds a module global or
    writes an attribute of a class, module, function or enum member it names, or keeps
    attributes of its own, and a module global, closure variable or class attribute
    reached that holds state nobody notes, are reported; class attributes and globals so
    reached are watched during tracking sessions (a change stops a search that took the
    promise).  State reached by a name computed at run time (``getattr(mod, name)``,
    ``exec``) is not seen.  A subclass of a tracked class created during a tracking
    run that defines its own ``__getattribute__`` or ``__setattr__`` gets its hook from
    the next run on.

Concurrency
    As the sim: one step at a time.  Notes go to the step of the runtime in effect
    (`odp_async._runtime.RUNTIME_VAR`); outside a tracking run they are skipped.  The
    hooks stay on while any tracking run is in progress (runs nest, and runs in several
    threads share them: installing and removing them holds a lock).

See also
    `odp_async.shared.SharedCell` (one tracked value), `odp_async.explore.dpor`,
    `tests/model/test_tracked_coverage.py` (every model class is tracked or exempt).
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import enum
import functools
import inspect
import threading
import types
import typing
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

import attrs

from ._runtime._base import RUNTIME_VAR
from ._runtime.footprint import (
    HIDDEN_WRITE_HOOKS,
    NOTED_RUN_HOOKS,
    TRACKING_RUN_HOOKS,
    FieldOf,
    ReadOf,
    UpdateOf,
)

__all__ = [
    "TrackReport",
    "TrackedBag",
    "TrackedDict",
    "TrackedList",
    "TrackedRanges",
    "TrackedSet",
    "is_tracked_class",
    "track",
    "track_subclass",
    "tracked",
    "tracking",
]

C = TypeVar("C", bound=type)

_WHOLE = "*"
_KEYS = ("<keys>",)


def _step_fp(rt: Any) -> set[object] | None:
    # The running step's footprint set, or None when this run keeps no footprints.
    return getattr(rt, "_fp", None) if rt is not None else None


def tracking() -> bool:
    """True inside a step of a run that keeps footprints.  Sync, cheap."""
    return _step_fp(RUNTIME_VAR.get(None)) is not None


def _unknown() -> None:
    # The step touched state nobody tracks: its footprint becomes unknown (conflicts
    # with every step), which is always sound.
    rt = RUNTIME_VAR.get(None)
    if _step_fp(rt) is not None:
        rt._fp_unknown = True  # type: ignore[union-attr]


def _handed(value: Any) -> Any:
    # A value a tracked container hands out: state nobody tracks makes the step unknown.
    if _step_fp(RUNTIME_VAR.get(None)) is None:
        return value  # not a tracking run: nothing to note
    kind = type(value)
    opaque = _OPAQUE.get(id(kind))
    if opaque is None:
        opaque = _remember_opaque(kind, value)
    if opaque and (opaque is not _DEPENDS or _depends_opaque(value)):
        _unknown()
    return value


def _write(owner: object, part: Hashable) -> None:
    fp = _step_fp(RUNTIME_VAR.get(None))
    if fp is not None:
        fp.add(FieldOf(owner, part))


#: Immutable types whose equal values are interchangeable (not float: ``nan``, ``-0.0``).
_SAME_BY_VALUE = frozenset((int, str, bytes, bool, type(None)))
_MISSING = object()


def _unchanged(old: object, new: object) -> bool:
    """True when storing `new` over `old` leaves the state as it was: the same object,
    or equal values of one immutable type (`_SAME_BY_VALUE`).  A store that changes
    nothing is noted as a read (two such stores commute, and each is still ordered
    against every real write and read-then-write of the place)."""
    return old is new or (type(old) is type(new) and type(new) in _SAME_BY_VALUE and old == new)


def _handed_all(values: Iterable[object]) -> None:
    # Values a tracked container hands out in bulk (iteration, a view, an operator's
    # result): any state nobody tracks among them makes the step unknown.  Called in
    # tracking runs only.
    if _opaque_items(values):
        _unknown()


# --- tracked containers ---------------------------------------------------------------
#
# Built on purpose by the program (nothing is ever converted): each keeps a plain
# container in a private slot and is *not* a dict, list or set, so code that would
# change it past its own methods (``heapq.heappush(t, x)``, ``list.append(t, x)``,
# ``dict.update(t, ...)``, C code expecting the built-in type) raises `TypeError` in
# every run, tracking or not, instead of changing it unnoted.  Outside a tracking run
# (no run anywhere keeps footprints: `_DEPTH` is 0) a method costs one call and one
# list-item test over the plain container's own.

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


def _fp_now() -> set[object] | None:
    # The running step's footprint, or None; callers test `_DEPTH` first (no tracking
    # run anywhere: nothing to look up).
    return _step_fp(RUNTIME_VAR.get(None))


def _plain_of(other: object) -> Any:
    # The plain container behind a tracked one (read as a whole), else `other` itself.
    if isinstance(other, (TrackedDict, TrackedList, TrackedSet)):
        return other._plain()
    return other


def _noting_iter(items: Iterator[T], whole: object) -> Iterator[T]:
    # An iterator over a tracked list or set made in a tracking run: each ``next`` (and
    # the one that ends it) reads the container as a whole in the step that calls it,
    # so an iterator kept across a checkpoint is ordered against the writes in between.
    while True:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(ReadOf(whole))
        try:
            item = next(items)
        except StopIteration:
            return
        yield _handed(item) if fp is not None else item


def _no_subclass(cls: type) -> typing.NoReturn:
    # A subclass's own fields (and overrides) would be plain, unnoted state.
    base = next(b for b in cls.__mro__[1:] if b in _CONTAINERS)
    raise TypeError(
        f"{cls.__qualname__}: {base.__name__} cannot be subclassed (the subclass's own "
        f"fields would not be tracked); keep the {base.__name__} in a field of a "
        "@tracked class instead"
    )


def _state_of(obj: Any, name: str, plain: object, note: Callable[[], None]) -> Any:
    # ``__getstate__`` of a tracked container: in a tracking run a read of everything and
    # a copy of the private container (never the container itself); else the default.
    if _DEPTH[0]:
        note()
        return (None, {name: copy.copy(plain)})
    return object.__getstate__(obj)


def _deepcopied(obj: Any, memo: dict[int, Any], name: str, plain: object) -> Any:
    # ``copy.deepcopy`` of a tracked container (its read already noted by the caller).
    new = object.__new__(type(obj))
    memo[id(obj)] = new
    object.__setattr__(new, name, copy.deepcopy(plain, memo))
    return new


@typing.final
class TrackedDict(collections.abc.MutableMapping[K, V]):
    """A mapping shared between tasks whose accesses are noted per key.

    ``d[k]``, ``get``, ``in`` read ``(d, k)``; a store, a delete, ``pop`` or
    ``setdefault`` write ``(d, k)`` (and the key set when it changes), except when they
    change nothing (a store of the value there already, ``setdefault`` of a present
    key, ``pop`` of an absent one: a read of ``(d, k)``); ``len`` reads the
    key set; each ``next`` of an iterator (of the dict or of a view: live views, each
    use noted in the step that makes it) reads the key set and the key it yields;
    ``copy``, ``==`` and ``|`` read the key set and every key;
    ``popitem`` and ``clear`` write them all.  Built like a dict (``TrackedDict()``,
    ``TrackedDict({...})``, ``TrackedDict(k=v)``); not a `dict` subclass: code that needs
    a real dict gets one from ``dict(d)`` (a read of every key), and a built-in dict
    method applied to it (``dict.update(d, ...)``) raises `TypeError`.  ``copy()`` and
    `copy.copy` give a new `TrackedDict`; ``d | other`` a plain dict.  Unhashable, like a
    dict.  Outside a tracking run it notes nothing."""

    __slots__ = ("_d",)

    def __init_subclass__(cls, /, **kwargs: Any) -> None:
        _no_subclass(cls)

    # Pickling and copying read everything (noted in a tracking run, as ``copy``): the
    # default ones would read the private container in C, past the notes.
    def __getstate__(self) -> Any:
        return _state_of(self, "_d", self._d, self._read_all)

    def __reduce_ex__(self, protocol: typing.SupportsIndex) -> Any:
        if _DEPTH[0]:
            self._read_all()
        return object.__reduce_ex__(self, protocol)

    def __deepcopy__(self, memo: dict[int, Any]) -> TrackedDict[K, V]:
        if _DEPTH[0]:
            self._read_all()
        return _deepcopied(self, memo, "_d", self._d)  # type: ignore[no-any-return]

    def __init__(self, items: Any = (), /, **kwargs: V) -> None:
        self._d: dict[K, V] = dict(items, **kwargs)

    def _read_all(self) -> None:
        self._all(write=False)

    def _plain(self) -> dict[K, V]:
        if _DEPTH[0]:
            self._all(write=False)
        return self._d

    def __getitem__(self, key: K) -> V:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is None:
            return self._d[key]
        fp.add(ReadOf(FieldOf(self, key)))
        return _handed(self._d[key])  # type: ignore[no-any-return]

    @overload
    def get(self, key: K, /) -> V | None: ...

    @overload
    def get(self, key: K, default: V | T, /) -> V | T: ...

    def get(self, key: K, default: Any = None, /) -> Any:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is None:
            return self._d.get(key, default)
        fp.add(ReadOf(FieldOf(self, key)))
        return _handed(self._d.get(key, default))

    def __contains__(self, key: object) -> bool:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(ReadOf(FieldOf(self, key)))
        return key in self._d

    def __setitem__(self, key: K, value: V) -> None:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            old = self._d.get(key, _MISSING)
            if old is _MISSING:
                fp.add(FieldOf(self, _KEYS))
            elif _unchanged(old, value):
                fp.add(ReadOf(FieldOf(self, key)))  # stores what is there: a read
                self._d[key] = value
                return
            fp.add(FieldOf(self, key))
        self._d[key] = value

    def __delitem__(self, key: K) -> None:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(FieldOf(self, _KEYS))
            fp.add(FieldOf(self, key))
        del self._d[key]

    @overload
    def pop(self, key: K, /) -> V: ...

    @overload
    def pop(self, key: K, default: V | T, /) -> V | T: ...

    def pop(self, key: K, *default: Any) -> Any:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            if key not in self._d:
                # Nothing to remove: the default or a KeyError, a read of the key.
                fp.add(ReadOf(FieldOf(self, key)))
                return self._d.pop(key, *default)
            fp.add(FieldOf(self, _KEYS))
            fp.add(FieldOf(self, key))
            return _handed(self._d.pop(key, *default))
        return self._d.pop(key, *default)

    def setdefault(self, key: K, default: V, /) -> V:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            if key in self._d:
                fp.add(ReadOf(FieldOf(self, key)))  # there already: a lookup
                return _handed(self._d[key])  # type: ignore[no-any-return]
            fp.add(FieldOf(self, _KEYS))
            fp.add(FieldOf(self, key))
            return _handed(self._d.setdefault(key, default))  # type: ignore[no-any-return]
        return self._d.setdefault(key, default)

    def popitem(self) -> tuple[K, V]:
        if _DEPTH[0]:
            self._all(write=True)
            return _handed(self._d.popitem())  # type: ignore[no-any-return]
        return self._d.popitem()

    def clear(self) -> None:
        if _DEPTH[0]:
            self._all(write=True)
        self._d.clear()

    def update(self, *args: Any, **kwargs: V) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def _all(self, *, write: bool) -> None:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is None:
            return
        if write:
            fp.add(FieldOf(self, _KEYS))
            fp.update(FieldOf(self, key) for key in self._d)
        else:
            fp.add(ReadOf(FieldOf(self, _KEYS)))
            fp.update(ReadOf(FieldOf(self, key)) for key in self._d)
            _handed_all(self._d)
            _handed_all(self._d.values())

    def __iter__(self) -> Iterator[K]:
        if _DEPTH[0]:
            return self._noting_iter(iter(self._d), _KEY)
        return iter(self._d)

    def _noting_iter(self, keys: Iterator[K], pick: int) -> Iterator[Any]:
        # Each ``next`` (and the one that ends it) reads the key set and the key it
        # yields in the step that calls it: an iterator or a view kept across a
        # checkpoint is ordered against the writes in between.  `pick`: `_KEY`,
        # `_VALUE` or `_ITEM`.
        d = self._d
        while True:
            fp = _fp_now() if _DEPTH[0] else None
            if fp is not None:
                fp.add(ReadOf(FieldOf(self, _KEYS)))
            try:
                key = next(keys)
            except StopIteration:
                return
            if fp is None:
                out: Any = key if pick == _KEY else d[key] if pick == _VALUE else (key, d[key])
                yield out
                continue
            fp.add(ReadOf(FieldOf(self, key)))
            _handed(key)
            if pick == _KEY:
                yield key
            elif pick == _VALUE:
                yield _handed(d[key])
            else:
                yield key, _handed(d[key])

    def __len__(self) -> int:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(ReadOf(FieldOf(self, _KEYS)))
        return len(self._d)

    def keys(self) -> collections.abc.KeysView[K]:
        return _KeysView(self)

    def values(self) -> collections.abc.ValuesView[V]:
        return _ValuesView(self)

    def items(self) -> collections.abc.ItemsView[K, V]:
        return _ItemsView(self)

    def copy(self) -> TrackedDict[K, V]:
        if _DEPTH[0]:
            self._all(write=False)
        return TrackedDict(self._d)

    __copy__ = copy

    def __reversed__(self) -> Iterator[K]:
        if _DEPTH[0]:
            return self._noting_iter(reversed(self._d), _KEY)
        return reversed(self._d)

    def __eq__(self, other: object) -> bool:
        if _DEPTH[0]:
            self._all(write=False)
        return self._d == _plain_of(other)  # type: ignore[no-any-return]

    def __or__(self, other: Any) -> dict[K, V]:
        if _DEPTH[0]:
            self._all(write=False)
        return self._d | _plain_of(other)  # type: ignore[no-any-return]

    def __ror__(self, other: Any) -> dict[K, V]:
        if _DEPTH[0]:
            self._all(write=False)
        return _plain_of(other) | self._d  # type: ignore[no-any-return]

    def __ior__(self, other: Any) -> TrackedDict[K, V]:
        self.update(other)
        return self

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if _DEPTH[0]:
            self._all(write=False)
        return f"TrackedDict({self._d!r})"


_KEY, _VALUE, _ITEM = 0, 1, 2


class _KeysView(collections.abc.KeysView[K]):
    # A live view of a `TrackedDict`: every use goes through the dict's noting methods
    # in the step that makes it (`len`, ``in``, iteration), as a dict's own view reads
    # the dict when used, not when made.
    __slots__ = ()
    _mapping: TrackedDict[K, Any]

    def __iter__(self) -> Iterator[K]:
        return iter(self._mapping)

    def __reversed__(self) -> Iterator[K]:
        return reversed(self._mapping)


class _ValuesView(collections.abc.ValuesView[V]):
    __slots__ = ()
    _mapping: TrackedDict[Any, V]

    def __iter__(self) -> Iterator[V]:
        d = self._mapping
        if _DEPTH[0]:
            return d._noting_iter(iter(d._d), _VALUE)
        return iter(d._d.values())

    def __reversed__(self) -> Iterator[V]:
        d = self._mapping
        if _DEPTH[0]:
            return d._noting_iter(reversed(d._d), _VALUE)
        return reversed(d._d.values())


class _ItemsView(collections.abc.ItemsView[K, V]):
    __slots__ = ()
    _mapping: TrackedDict[K, V]

    def __iter__(self) -> Iterator[tuple[K, V]]:
        d = self._mapping
        if _DEPTH[0]:
            return d._noting_iter(iter(d._d), _ITEM)
        return iter(d._d.items())

    def __reversed__(self) -> Iterator[tuple[K, V]]:
        d = self._mapping
        if _DEPTH[0]:
            return d._noting_iter(reversed(d._d), _ITEM)
        return reversed(d._d.items())


class _NotedAsAWhole:
    # What `TrackedList` and `TrackedSet` share: the container is one resource
    # (``FieldOf(self, "*")``), read by a query, written by any change; `_c` is the
    # private plain list or set.
    __slots__ = ()
    _c: Any

    def _read_out(self) -> None:
        # A read that hands out the items (iteration, an operator's new container).
        fp = _fp_now()
        if fp is not None:
            fp.add(ReadOf(FieldOf(self, _WHOLE)))
            _handed_all(self._c)

    def _read(self) -> None:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(ReadOf(FieldOf(self, _WHOLE)))

    def _write(self) -> None:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(FieldOf(self, _WHOLE))

    # Pickling and copying read everything (noted in a tracking run, as ``copy``): the
    # default ones would read the private container in C, past the notes.
    def __getstate__(self) -> Any:
        return _state_of(self, "_c", self._c, self._read_out)

    def __reduce_ex__(self, protocol: typing.SupportsIndex) -> Any:
        if _DEPTH[0]:
            self._read_out()
        return object.__reduce_ex__(self, protocol)


@typing.final
class TrackedList(_NotedAsAWhole, collections.abc.MutableSequence[T]):
    """A sequence shared between tasks whose accesses are noted as a whole: indexing,
    iteration, ``len``, ``in``, ``index``, ``count``, ``copy``, ``==``, ``+`` and ``*``
    read it; every change writes it.  Built like a list (``TrackedList()``,
    ``TrackedList(iterable)``); not a `list` subclass: ``list(t)`` is a plain copy (a
    read), and a built-in list method or C code that changes a list in place
    (``list.append(t, x)``, ``heapq.heappush(t, x)``, ``bisect.insort(t, x)``) raises
    `TypeError`.  A slice, ``t + other`` and ``t * n`` are plain lists; ``copy()`` and
    `copy.copy` a new `TrackedList`.  Unhashable.  Outside a tracking run it notes
    nothing."""

    __slots__ = ("_c",)
    _c: list[T]

    def __init_subclass__(cls, /, **kwargs: Any) -> None:
        _no_subclass(cls)

    def __deepcopy__(self, memo: dict[int, Any]) -> TrackedList[T]:
        if _DEPTH[0]:
            self._read_out()
        return _deepcopied(self, memo, "_c", self._c)  # type: ignore[no-any-return]

    def __init__(self, items: Iterable[T] = (), /) -> None:
        self._c = list(items)

    def _plain(self) -> list[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: Any) -> Any:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is None:
            return self._c[index]
        fp.add(ReadOf(FieldOf(self, _WHOLE)))
        return _handed(self._c[index])

    def __setitem__(self, index: Any, value: Any) -> None:
        if _DEPTH[0]:
            self._write()
        self._c[index] = value

    def __delitem__(self, index: Any) -> None:
        if _DEPTH[0]:
            self._write()
        del self._c[index]

    def __len__(self) -> int:
        if _DEPTH[0]:
            self._read()
        return len(self._c)

    def __iter__(self) -> Iterator[T]:
        if _DEPTH[0]:
            return _noting_iter(iter(self._c), FieldOf(self, _WHOLE))
        return iter(self._c)

    def __reversed__(self) -> Iterator[T]:
        if _DEPTH[0]:
            return _noting_iter(reversed(self._c), FieldOf(self, _WHOLE))
        return reversed(self._c)

    def __contains__(self, value: object) -> bool:
        if _DEPTH[0]:
            self._read()
        return value in self._c

    def index(self, value: Any, *args: Any) -> int:
        if _DEPTH[0]:
            self._read()
        return self._c.index(value, *args)

    def count(self, value: Any) -> int:
        if _DEPTH[0]:
            self._read()
        return self._c.count(value)

    def copy(self) -> TrackedList[T]:
        if _DEPTH[0]:
            self._read()
        return TrackedList(self._c)

    __copy__ = copy

    def __eq__(self, other: object) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c == _plain_of(other)  # type: ignore[no-any-return]

    def __add__(self, other: Iterable[T]) -> list[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c + list(other)

    def __radd__(self, other: Iterable[T]) -> list[T]:
        if _DEPTH[0]:
            self._read_out()
        return list(other) + self._c

    def __mul__(self, n: int) -> list[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c * n

    __rmul__ = __mul__

    def insert(self, index: int, value: T) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.insert(index, value)

    def append(self, value: T) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.append(value)

    def extend(self, values: Iterable[T]) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.extend(values)

    def pop(self, index: int = -1) -> T:
        if _DEPTH[0]:
            self._write()
            return _handed(self._c.pop(index))  # type: ignore[no-any-return]
        return self._c.pop(index)

    def remove(self, value: T) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.remove(value)

    def clear(self) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.clear()

    def sort(self, *, key: Callable[[T], Any] | None = None, reverse: bool = False) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.sort(key=key, reverse=reverse)

    def reverse(self) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.reverse()

    def __iadd__(self, values: Iterable[T]) -> TrackedList[T]:
        if _DEPTH[0]:
            self._write()
        self._c += values
        return self

    def __imul__(self, n: int) -> TrackedList[T]:
        if _DEPTH[0]:
            self._write()
        self._c *= n
        return self

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if _DEPTH[0]:
            self._read()
        return f"TrackedList({self._c!r})"


@typing.final
class TrackedSet(_NotedAsAWhole, collections.abc.MutableSet[T]):
    """A set shared between tasks whose accesses are noted as a whole: ``in``,
    iteration, ``len``, comparisons and the operators that make a new set read it;
    every change writes it.  Built like a set (``TrackedSet()``,
    ``TrackedSet(iterable)``); not a `set` subclass: ``set(t)`` is a plain copy (a read),
    a built-in set method applied to it (``set.add(t, x)``) raises `TypeError`.  The
    operators (``t | s``, ``t & s``, ``t - s``, ``t ^ s``, ``union`` ...) give plain
    sets; ``copy()`` and `copy.copy` a new `TrackedSet`.  Unhashable.  Outside a
    tracking run it notes nothing."""

    __slots__ = ("_c",)
    _c: set[T]

    def __init_subclass__(cls, /, **kwargs: Any) -> None:
        _no_subclass(cls)

    def __deepcopy__(self, memo: dict[int, Any]) -> TrackedSet[T]:
        if _DEPTH[0]:
            self._read_out()
        return _deepcopied(self, memo, "_c", self._c)  # type: ignore[no-any-return]

    def __init__(self, items: Iterable[T] = (), /) -> None:
        self._c = set(items)

    def _plain(self) -> set[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c

    def __contains__(self, value: object) -> bool:
        if _DEPTH[0]:
            self._read()
        return value in self._c

    def __iter__(self) -> Iterator[T]:
        if _DEPTH[0]:
            return _noting_iter(iter(self._c), FieldOf(self, _WHOLE))
        return iter(self._c)

    def __len__(self) -> int:
        if _DEPTH[0]:
            self._read()
        return len(self._c)

    def add(self, value: T) -> None:
        if _DEPTH[0]:
            # A member already: nothing changes, a read (as ``in``).
            self._read() if value in self._c else self._write()
        self._c.add(value)

    def discard(self, value: T) -> None:
        if _DEPTH[0]:
            # Not a member: nothing changes, a read (as ``in``).
            self._write() if value in self._c else self._read()
        self._c.discard(value)

    def remove(self, value: T) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.remove(value)

    def pop(self) -> T:
        if _DEPTH[0]:
            self._write()
            return _handed(self._c.pop())  # type: ignore[no-any-return]
        return self._c.pop()

    def clear(self) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.clear()

    def update(self, *others: Iterable[T]) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.update(*(_plain_of(o) for o in others))

    def difference_update(self, *others: Iterable[Any]) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.difference_update(*(_plain_of(o) for o in others))

    def intersection_update(self, *others: Iterable[Any]) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.intersection_update(*(_plain_of(o) for o in others))

    def symmetric_difference_update(self, other: Iterable[T]) -> None:
        if _DEPTH[0]:
            self._write()
        self._c.symmetric_difference_update(_plain_of(other))

    def copy(self) -> TrackedSet[T]:
        if _DEPTH[0]:
            self._read()
        return TrackedSet(self._c)

    __copy__ = copy

    def union(self, *others: Iterable[T]) -> set[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c.union(*(_plain_of(o) for o in others))

    def intersection(self, *others: Iterable[Any]) -> set[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c.intersection(*(_plain_of(o) for o in others))

    def difference(self, *others: Iterable[Any]) -> set[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c.difference(*(_plain_of(o) for o in others))

    def symmetric_difference(self, other: Iterable[T]) -> set[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c.symmetric_difference(_plain_of(other))

    def isdisjoint(self, other: Iterable[Any]) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c.isdisjoint(_plain_of(other))

    def issubset(self, other: Iterable[Any]) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c.issubset(_plain_of(other))

    def issuperset(self, other: Iterable[Any]) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c.issuperset(_plain_of(other))

    def __eq__(self, other: object) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c == _plain_of(other)  # type: ignore[no-any-return]

    def __le__(self, other: Any) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c <= _plain_of(other)  # type: ignore[no-any-return]

    def __lt__(self, other: Any) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c < _plain_of(other)  # type: ignore[no-any-return]

    def __ge__(self, other: Any) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c >= _plain_of(other)  # type: ignore[no-any-return]

    def __gt__(self, other: Any) -> bool:
        if _DEPTH[0]:
            self._read()
        return self._c > _plain_of(other)  # type: ignore[no-any-return]

    def __or__(self, other: Any) -> set[Any]:
        if _DEPTH[0]:
            self._read_out()
        return self._c | _plain_of(other)  # type: ignore[no-any-return]

    def __and__(self, other: Any) -> set[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c & _plain_of(other)  # type: ignore[no-any-return]

    def __sub__(self, other: Any) -> set[T]:
        if _DEPTH[0]:
            self._read_out()
        return self._c - _plain_of(other)  # type: ignore[no-any-return]

    def __xor__(self, other: Any) -> set[Any]:
        if _DEPTH[0]:
            self._read_out()
        return self._c ^ _plain_of(other)  # type: ignore[no-any-return]

    def __ror__(self, other: Any) -> set[Any]:
        if _DEPTH[0]:
            self._read_out()
        return _plain_of(other) | self._c  # type: ignore[no-any-return]

    def __rand__(self, other: Any) -> set[Any]:
        if _DEPTH[0]:
            self._read_out()
        return _plain_of(other) & self._c  # type: ignore[no-any-return]

    def __rsub__(self, other: Any) -> set[Any]:
        if _DEPTH[0]:
            self._read_out()
        return _plain_of(other) - self._c  # type: ignore[no-any-return]

    def __rxor__(self, other: Any) -> set[Any]:
        if _DEPTH[0]:
            self._read_out()
        return _plain_of(other) ^ self._c  # type: ignore[no-any-return]

    def __ior__(self, other: Any) -> TrackedSet[T]:
        self.update(other)
        return self

    def __iand__(self, other: Any) -> TrackedSet[T]:
        self.intersection_update(other)
        return self

    def __isub__(self, other: Any) -> TrackedSet[T]:
        self.difference_update(other)
        return self

    def __ixor__(self, other: Any) -> TrackedSet[T]:
        self.symmetric_difference_update(other)
        return self

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if _DEPTH[0]:
            self._read()
        return f"TrackedSet({self._c!r})"


#: Page size of `TrackedRanges`'s keys (`odp_async.addr.PAGE_SHIFT`; not imported: the
#: model imports this module).
_RANGE_PAGE_SHIFT = 12
#: A `TrackedRanges` operation on more pages than this notes one key for all of them.
_RANGE_WIDE_PAGES = 512
_RANGE_WIDE = ("<wide>",)


@typing.final
class TrackedRanges(collections.abc.Collection[T]):
    """A multiset of items, each with a byte range, shared between tasks and noted per
    page: `add` and `remove` write the pages of the item's range, `overlaps` reads the
    pages of the range it asks about, and `listed` the pages of its item's range, so two
    operations on disjoint pages commute; `snapshot` lists them all and is ordered
    against every other operation on the set.

    An item's range is its ``range`` attribute (anything with int ``start`` and ``end``,
    half-open, as `odp_async.addr.AddrRange`), read once, when the item is added: the
    item is listed with that range until it is removed.  The order of the items is not
    observable through the noted operations (`overlaps` asks only whether one
    overlaps), which is what lets adds on disjoint pages commute.  An operation on more
    than 512 pages notes one key, ``<wide>``, written, instead of its pages; every other
    operation reads that key, so a wide one is ordered against all the others.

    Iteration, ``len``, ``in``, ``==``, ``repr``, copying and pickling look at every
    item in its listed order: in a tracking run they make the step's footprint unknown
    (it conflicts with every step; always sound).  Not a subclass of a built-in
    container; cannot be subclassed.  Raises `ValueError` from `remove` for an item not
    listed (compared by ``==``), `TypeError` from `add` or `overlaps` for a range
    without int bounds.  Outside a tracking run it notes nothing."""

    __slots__ = ("_c",)
    _c: list[tuple[T, int, int]]

    def __init_subclass__(cls, /, **kwargs: Any) -> None:
        _no_subclass(cls)

    def __init__(self, items: Iterable[T] = (), /) -> None:
        self._c = [(item, *_bounds(item.range)) for item in items]  # type: ignore[attr-defined]

    def _note(self, start: int, end: int, write: bool) -> None:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is None:
            return
        first = start >> _RANGE_PAGE_SHIFT
        last = (end - 1) >> _RANGE_PAGE_SHIFT
        if last - first + 1 > _RANGE_WIDE_PAGES:
            fp.add(FieldOf(self, _RANGE_WIDE))
            return
        fp.add(ReadOf(FieldOf(self, _RANGE_WIDE)))
        for page in range(first, last + 1):
            key = FieldOf(self, ("page", page))
            fp.add(key if write else ReadOf(key))

    def add(self, item: T) -> None:
        """List `item` with its range now.  Writes the range's pages."""
        start, end = _bounds(item.range)  # type: ignore[attr-defined]
        self._note(start, end, True)
        self._c.append((item, start, end))

    append = add

    def remove(self, item: T) -> None:
        """Unlist one listed item equal to `item`.  Writes the pages of the range it was
        listed with (an absent item: the pages of `item`'s range)."""
        for k, (listed, start, end) in enumerate(self._c):
            if listed == item:
                self._note(start, end, True)
                del self._c[k]
                return
        start, end = _bounds(item.range)  # type: ignore[attr-defined]
        self._note(start, end, True)
        raise ValueError(f"TrackedRanges.remove(x): x not listed: {item!r}")

    def overlaps(self, rng: Any) -> bool:
        """Whether a listed item's range overlaps `rng` (int ``start`` and ``end``,
        half-open).  Reads `rng`'s pages."""
        start, end = _bounds(rng)
        self._note(start, end, False)
        return any(s < end and start < e for _, s, e in self._c)

    def listed(self, item: Any) -> bool:
        """Whether an item equal to `item` is listed.  Reads the pages of `item`'s range
        (the pages its own add and remove write).  Raises `TypeError` for a range
        without int bounds."""
        start, end = _bounds(item.range)
        self._note(start, end, False)
        return any(listed == item for listed, _, _ in self._c)

    def snapshot(self) -> tuple[T, ...]:
        """The listed items, in listed order.  Notes ``<wide>`` written, so the step is
        ordered against every other operation on the set (and nothing else), where
        iterating it would conflict with every step."""
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(FieldOf(self, _RANGE_WIDE))
        return tuple(item for item, _, _ in self._c)

    def _unknown_if_tracking(self) -> None:
        if _DEPTH[0]:
            _unknown()

    def __iter__(self) -> Iterator[T]:
        self._unknown_if_tracking()
        return iter([item for item, _, _ in self._c])

    def __len__(self) -> int:
        self._unknown_if_tracking()
        return len(self._c)

    def __contains__(self, item: object) -> bool:
        self._unknown_if_tracking()
        return any(listed == item for listed, _, _ in self._c)

    def __eq__(self, other: object) -> bool:
        self._unknown_if_tracking()
        items = [item for item, _, _ in self._c]
        if isinstance(other, TrackedRanges):
            return items == [item for item, _, _ in other._c]
        if isinstance(other, (list, tuple)):
            return items == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._unknown_if_tracking()
        return f"TrackedRanges({[item for item, _, _ in self._c]!r})"

    def __getstate__(self) -> Any:
        self._unknown_if_tracking()
        return (None, {"_c": list(self._c)})

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_c", list(state[1]["_c"]))

    def __deepcopy__(self, memo: dict[int, Any]) -> TrackedRanges[T]:
        self._unknown_if_tracking()
        return _deepcopied(self, memo, "_c", self._c)  # type: ignore[no-any-return]

    def __copy__(self) -> TrackedRanges[T]:
        self._unknown_if_tracking()
        new: TrackedRanges[T] = object.__new__(TrackedRanges)
        new._c = list(self._c)
        return new


_BAG_SIZE = ("<size>",)


@typing.final
class TrackedBag(collections.abc.Sized, typing.Generic[T]):
    """A multiset shared between tasks whose adds and removes commute.

    `add` and a `remove` that finds its element are *commutative updates* of the bag's
    size (`odp_async._runtime.footprint.UpdateOf`): two of them, of different elements,
    are independent for DPOR, so tasks that each add themselves and later remove
    themselves are never ordered for the bag's sake.  `add` updates its element's count;
    `remove` writes it (it reads whether the element is there), and an absent element
    reads it (`ValueError`).  ``x in bag`` and `count` read the element's count; ``len``,
    truth and `snapshot` read the size, so they are ordered against every add and
    remove.  Nothing observes the order of the adds: `snapshot` gives a `frozenset`,
    and iteration, ``==``, ``repr``, copying and pickling (which would show an order)
    make the step's footprint unknown in a tracking run (it conflicts with every step;
    always sound).  Elements are compared by ``==`` and must be hashable.  Cannot be
    subclassed.  Outside a tracking run it notes nothing."""

    __slots__ = ("_n",)
    _n: dict[T, int]

    def __init_subclass__(cls, /, **kwargs: Any) -> None:
        _no_subclass(cls)

    def __init__(self, items: Iterable[T] = (), /) -> None:
        self._n = {}
        for item in items:
            self._n[item] = self._n.get(item, 0) + 1

    def add(self, item: T) -> None:
        """Add one `item`.  An update of the size and of `item`'s count."""
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(UpdateOf(FieldOf(self, _BAG_SIZE)))
            fp.add(UpdateOf(FieldOf(self, ("item", item))))
        self._n[item] = self._n.get(item, 0) + 1

    def remove(self, item: T) -> None:
        """Take out one `item`: an update of the size and a write of `item`'s count.
        Raises `ValueError` when none is there (a read of its count)."""
        fp = _fp_now() if _DEPTH[0] else None
        n = self._n.get(item, 0)
        if n == 0:
            if fp is not None:
                fp.add(ReadOf(FieldOf(self, ("item", item))))
            raise ValueError(f"TrackedBag.remove(x): x not in the bag: {item!r}")
        if fp is not None:
            fp.add(UpdateOf(FieldOf(self, _BAG_SIZE)))
            fp.add(FieldOf(self, ("item", item)))
        if n == 1:
            del self._n[item]
        else:
            self._n[item] = n - 1

    def count(self, item: object) -> int:
        """How many `item` the bag holds.  Reads `item`'s count."""
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(ReadOf(FieldOf(self, ("item", item))))
        return self._n.get(item, 0)  # type: ignore[arg-type]

    def __contains__(self, item: object) -> bool:
        return self.count(item) > 0

    def __len__(self) -> int:
        fp = _fp_now() if _DEPTH[0] else None
        if fp is not None:
            fp.add(ReadOf(FieldOf(self, _BAG_SIZE)))
        return sum(self._n.values())

    def snapshot(self) -> frozenset[T]:
        """The distinct elements (no order).  Reads the size."""
        fp = _fp_now() if _DEPTH[0] else None
        if fp is None:
            return frozenset(self._n)
        fp.add(ReadOf(FieldOf(self, _BAG_SIZE)))
        for item in self._n:
            _handed(item)
        return frozenset(self._n)

    def _unknown_if_tracking(self) -> None:
        if _DEPTH[0]:
            _unknown()

    def __iter__(self) -> Iterator[T]:
        self._unknown_if_tracking()
        return iter([item for item, n in self._n.items() for _ in range(n)])

    def __eq__(self, other: object) -> bool:
        self._unknown_if_tracking()
        if isinstance(other, TrackedBag):
            return self._n == other._n
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._unknown_if_tracking()
        return f"TrackedBag({list(self._n.items())!r})"

    def __getstate__(self) -> Any:
        self._unknown_if_tracking()
        return (None, {"_n": dict(self._n)})

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_n", dict(state[1]["_n"]))

    def __deepcopy__(self, memo: dict[int, Any]) -> TrackedBag[T]:
        self._unknown_if_tracking()
        return _deepcopied(self, memo, "_n", self._n)  # type: ignore[no-any-return]

    def __copy__(self) -> TrackedBag[T]:
        self._unknown_if_tracking()
        new: TrackedBag[T] = object.__new__(TrackedBag)
        new._n = dict(self._n)
        return new


def _bounds(rng: Any) -> tuple[int, int]:
    start, end = rng.start, rng.end
    if type(start) is not int or type(end) is not int:
        raise TypeError(f"a range needs int start and end, got {rng!r}")
    return start, end


#: The tracked containers (`_is_opaque`: they note their own accesses).
_CONTAINERS = (TrackedDict, TrackedList, TrackedSet, TrackedRanges, TrackedBag)


# --- tracked classes ------------------------------------------------------------------


def _data_names(cls: type) -> frozenset[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    if attrs.has(cls):
        names.update(a.name for a in attrs.fields(cls))
    names.discard("__weakref__")
    names.discard("__dict__")
    return frozenset(names)


def _has_dict(cls: type) -> bool:
    # Instances have a __dict__ when a class of the MRO (object aside) has no __slots__.
    return any(
        "__slots__" not in k.__dict__ or "__dict__" in k.__dict__["__slots__"]
        for k in cls.__mro__[:-1]
    )


# --- the noting hooks ------------------------------------------------------------------
#
# A tracked class is exactly as its author wrote it except during a tracking run: the
# run installs a noting ``__getattribute__``, ``__setattr__`` and ``__delattr__`` on it
# (and on every subclass that defines one of its own), each calling the one it stands in
# for, and removes them when the run ends, however it ends (`_hooks_on`, `_hooks_off`,
# called by the sim through `odp_async._runtime.footprint.TRACKING_RUN_HOOKS`).
# ``type(obj)``, ``obj.__class__``, ``isinstance`` and ``repr`` see the class itself.

_HOOK_NAMES = ("__getattribute__", "__setattr__", "__delattr__")


#: The ids of the hooks `_make_hooks` made that are still alive (a table: `_original` asks
#: it for every class at every tracking run's start, and ``getattr`` of a missing
#: attribute would cost an exception).  By id, each with a weakref that removes it when
#: its hook dies (before the id can be reused): a hook closes over its class, and a set
#: of the hooks themselves would keep every tracked class ever made (a user module's,
#: gone from ``sys.modules``) alive and hooked at every later run, each run's start and
#: end costing more with every such class.  (A `weakref.WeakSet` costs a weakref per
#: question: 40 % more per schedule of a tracked search.)
_HOOKS: dict[int, bool] = {}


#: One weak reference per object whose id keys `_HOOKS` or `_OPAQUE`: its callback
#: drops the id from those tables when the object dies, before the id can be reused.
_ID_REFS: dict[int, weakref.ref[Any]] = {}


def _keyed_while_alive(obj: object) -> int:
    """``id(obj)``, dropped from `_HOOKS` and `_OPAQUE` when `obj` dies."""
    key = id(obj)
    if key not in _ID_REFS:
        _ID_REFS[key] = weakref.ref(obj, functools.partial(_forget_id, key))
    return key


def _forget_id(key: int, _gone: object) -> None:
    _HOOKS.pop(key, None)
    _OPAQUE.pop(key, None)
    _ID_REFS.pop(key, None)


def _remember_hooks(hooks: tuple[Any, ...]) -> None:
    for hook in hooks:
        _HOOKS[_keyed_while_alive(hook)] = True


def _is_hook(value: object) -> bool:
    return id(value) in _HOOKS


def _make_hooks(klass: type, originals: tuple[Any, ...], info: _Tracking) -> tuple[Any, ...]:
    # The hooks put on `klass` (which its undecorated subclasses inherit).
    get, set_, del_ = originals
    exempt = frozenset(info.exempt)
    whole = info.whole
    # Per concrete type: the noted data names and whether instances have a __dict__ (an
    # undecorated subclass may add fields; it inherits the hooks of its tracked base).
    layouts: dict[type, tuple[frozenset[str], bool]] = {}
    current = RUNTIME_VAR.get
    plain_get = object.__getattribute__
    plain_set = set_ is object.__setattr__
    building = _BUILDING

    def layout(kind: type) -> tuple[frozenset[str], bool]:
        found = layouts[kind] = (_data_names(kind) - exempt, _has_dict(kind))
        return found

    own = layout(klass)

    def __getattribute__(self: Any, name: str) -> Any:
        value = get(self, name)
        kind = type(self)
        names, has_dict = own if kind is klass else layouts.get(kind) or layout(kind)
        if name in names or (
            has_dict and name not in exempt and name in plain_get(self, "__dict__")
        ):
            fp = getattr(current(None), "_fp", None)  # None: no runtime, or not tracking
            if fp is None or (building and id(self) in building):
                return value
            fp.add(ReadOf(FieldOf(self, _WHOLE if whole else name)))
            kind = type(value)
            opaque = _OPAQUE.get(id(kind))
            if opaque is None:
                opaque = _remember_opaque(kind, value)
            if opaque and (opaque is not _DEPENDS or _depends_opaque(value)):
                _unknown()  # state nobody tracks (a plain container or object)
        elif (
            name == "__dict__"
            and getattr(current(None), "_fp", None) is not None
            and not (building and id(self) in building)
        ):
            _unknown()  # the fields themselves, read and written past the notes
        return value

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name in exempt or (building and id(self) in building):
            set_(self, name, value)
            return
        fp = getattr(current(None), "_fp", None)
        kind = type(self)
        names, has_dict = own if kind is klass else layouts.get(kind) or layout(kind)
        if (
            fp is None
            or whole
            or not plain_set
            or (name not in names and not (has_dict and name in plain_get(self, "__dict__")))
        ):
            _write(self, _WHOLE if whole else name)
            set_(self, name, value)
            return
        # A data field stored by object.__setattr__ (a custom one may change more than
        # the field): a store that leaves its value as it was is a read (`_unchanged`).
        try:
            old = plain_get(self, name)
        except AttributeError:
            old = _MISSING
        try:
            set_(self, name, value)
        finally:
            try:
                new = plain_get(self, name)
            except AttributeError:
                new = _MISSING
            same = old is not _MISSING and new is not _MISSING and _unchanged(old, new)
            fp.add(ReadOf(FieldOf(self, name)) if same else FieldOf(self, name))

    def __delattr__(self: Any, name: str) -> None:
        if not (building and id(self) in building):
            _write(self, _WHOLE if whole else name)
        del_(self, name)

    hooks: tuple[Any, ...] = (__getattribute__, __setattr__, __delattr__)
    _remember_hooks(hooks)
    return hooks


#: The ids of the objects whose ``__init__`` is running in a tracking run, built fresh
#: (`_claim`): their accesses to their own fields are not noted.  Nobody else can hold
#: such an object before its constructor returns, except through what the constructor
#: itself publishes (noted, as a write of that state).
_BUILDING: set[int] = set()


def _claim(obj: object) -> bool:
    """Whether `obj`'s ``__init__`` builds it fresh (no field set yet: not a second call
    of ``__init__`` on a live object, whose writes must be noted) and no outer
    ``__init__`` of its (a subclass's) already claimed it; then it is claimed."""
    key = id(obj)
    if key in _BUILDING:
        return False
    try:
        fresh = object.__getstate__(obj) is None
    except Exception:  # an unusual layout: note everything
        fresh = False
    if fresh:
        _BUILDING.add(key)
    return fresh


#: While a tracking run is in progress: every hook installed, as (class, name, what the
#: class had of its own under that name before, or None), in installation order.
_INSTALLED: list[tuple[type, str, object]] = []
#: How many tracking runs are in progress (a run inside a run's task nests).
_DEPTH = [0]


def _hooked_classes() -> list[tuple[type, _Tracking]]:
    # Every tracked class, and every subclass that defines one of the three of its own
    # (an inherited hook would not run past it), with the tracking that applies to it.
    found: list[tuple[type, _Tracking]] = []
    seen: set[type] = set()
    stack = list(_TRACKED_CLASSES)
    get, set_, del_ = _HOOK_NAMES
    while stack:
        klass = stack.pop()
        if klass in seen:
            continue
        seen.add(klass)
        own = klass.__dict__
        info = own.get("__tracked__")
        if isinstance(info, _Tracking) and info.cls is klass:
            found.append((klass, info))
        elif get in own or set_ in own or del_ in own:
            info = _class_attr(klass, "__tracked__")
            if isinstance(info, _Tracking):
                found.append((klass, info))
        stack.extend(type.__subclasses__(klass))
    return found


def _install(klass: type, info: _Tracking) -> None:
    get = set_ = del_ = None  # the originals: the first of each in the MRO, no hook
    for base in klass.__mro__:
        own = base.__dict__
        if get is None:
            get = own.get("__getattribute__")
            get = None if id(get) in _HOOKS else get
        if set_ is None:
            set_ = own.get("__setattr__")
            set_ = None if id(set_) in _HOOKS else set_
        if del_ is None:
            del_ = own.get("__delattr__")
            del_ = None if id(del_) in _HOOKS else del_
    made = info.hooks.get(klass)
    if made is None or made[0][0] is not get or made[0][1] is not set_ or made[0][2] is not del_:
        originals = (get, set_, del_)
        made = info.hooks[klass] = (originals, _make_hooks(klass, originals, info))
    own = klass.__dict__
    hooks = made[1]
    setattr_ = type.__setattr__
    _INSTALLED.append((klass, "__getattribute__", own.get("__getattribute__")))
    setattr_(klass, "__getattribute__", hooks[0])
    _INSTALLED.append((klass, "__setattr__", own.get("__setattr__")))
    setattr_(klass, "__setattr__", hooks[1])
    _INSTALLED.append((klass, "__delattr__", own.get("__delattr__")))
    setattr_(klass, "__delattr__", hooks[2])
    if (
        "__getstate__" not in own
        and _class_attr(klass, "__getstate__") in _DEFAULT_GETSTATE
        and _has_dict(klass)
    ):
        _INSTALLED.append((klass, "__getstate__", None))
        setattr_(klass, "__getstate__", _getstate_hook)


#: ``object.__getstate__`` and the hook standing in for it.
_DEFAULT_GETSTATE: tuple[object, ...]


def _getstate_hook(self: Any) -> object:
    """``__getstate__`` of a tracked class with a ``__dict__`` that has none of its own,
    during a tracking run: the default reads the ``__dict__`` in C, past the hooks (for
    pickling, `copy.copy`, `copy.deepcopy`, ``__reduce_ex__``), so the step's footprint
    becomes unknown, as for ``vars(obj)``."""
    if not (_BUILDING and id(self) in _BUILDING):
        _unknown()
    return object.__getstate__(self)


_DEFAULT_GETSTATE = (object.__dict__["__getstate__"], _getstate_hook)


#: Held while hooks go on or come off: a run starting in another thread waits until
#: every class has its hooks.
_HOOKS_LOCK = threading.Lock()


def _hooks_on() -> None:
    """A tracking run starts: put the noting hooks on every tracked class (outermost)."""
    with _HOOKS_LOCK:
        _DEPTH[0] += 1
        if _DEPTH[0] == 1:
            hooked = _hooked_classes()
            for klass, info in hooked:
                _install(klass, info)
            _tracked_code.session_starts([klass for klass, _ in hooked])


def _hooks_off() -> None:
    """A tracking run ended (however): every class back as its author wrote it."""
    with _HOOKS_LOCK:
        _tracked_code.run_ends()
        _DEPTH[0] -= 1
        if _DEPTH[0] > 0:
            return
        _DEPTH[0] = 0
        _tracked_code.session_ends()
        while _INSTALLED:
            klass, name, own = _INSTALLED.pop()
            if own is None:
                type.__delattr__(klass, name)
            else:
                type.__setattr__(klass, name, own)


TRACKING_RUN_HOOKS.append((_hooks_on, _hooks_off))


@attrs.frozen
class _Tracking:
    """How a tracked class is tracked (``cls.__tracked__``)."""

    cls: type
    exempt: Mapping[str, str]
    whole: bool
    #: Classes of the objects inside it that its own resource covers (a tree's nodes).
    internal: tuple[type, ...]
    #: The hooks made for it and its subclasses (`_install`): class -> (the originals
    #: they call, the hooks).  A memo: built again when an original changes.
    hooks: dict[type, tuple[tuple[Any, ...], tuple[Any, ...]]] = attrs.field(
        factory=dict, eq=False, repr=False
    )


@overload
def tracked(cls: C, /) -> C: ...


@overload
def tracked(
    *,
    exempt: Mapping[str, str] | None = None,
    whole: bool = False,
    internal: tuple[type, ...] = (),
) -> Callable[[C], C]: ...


def tracked(
    cls: type | None = None,
    /,
    *,
    exempt: Mapping[str, str] | None = None,
    whole: bool = False,
    internal: tuple[type, ...] = (),
) -> Any:
    """Make `cls`'s instances note every field read and write in tracking runs.

    Use as ``@tracked`` or ``@tracked(exempt={"field": "reason"}, whole=False)``, on top
    of ``@attrs.define`` when both are used (below it, the first construction raises
    `InvalidArgument`).  `exempt` fields are never noted (each with
    its reason, shown by the coverage test); `whole` notes every field as the one
    resource ``FieldOf(obj, "*")``; `internal` lists classes of objects owned by the
    instance and covered by its notes (a tree's nodes), which `track` then does not
    report as untracked.  Returns the class itself, with ``__tracked__`` set and its
    ``__init__`` wrapped (in a tracking run, what it does to the fresh instance it
    builds is not noted).
    Raises `InvalidArgument` for an exempt name that is not a string with a reason.
    """
    from .errors import InvalidArgument

    exempt = dict(exempt or {})
    for key, why in exempt.items():
        if not isinstance(key, str) or not isinstance(why, str) or not why.strip():
            raise InvalidArgument(
                f"tracked(exempt=...) needs field name -> one-line reason, got {key!r}: {why!r}"
            )

    def apply(klass: type) -> type:
        if not isinstance(klass, type):
            raise InvalidArgument(f"@tracked applies to a class, got {klass!r}")
        info = _Tracking(klass, exempt, whole, tuple(internal))
        type.__setattr__(klass, "__tracked__", info)
        _TRACKED_CLASSES.add(klass)
        type.__setattr__(klass, "__init__", _building_init(klass))
        for part in info.internal:
            # Wherever the walk meets one (a handle a region keeps), its changes are made
            # by the owner's methods and noted there.
            type.__setattr__(part, "__tracked_internal_of__", klass)
        if _DEPTH[0]:  # decorated during a tracking run: noted from now on
            _install(klass, info)
        return klass

    return apply if cls is None else apply(cls)


_INIT = """
def __init__({params}):
    if not _depth[0] or _getattr(_current(None), "_fp", None) is None or not _claim({me}):
        return _init({call})
    try:
        _init({call})
    finally:
        _building.discard(_id({me}))
"""


def _wrong_order(klass: type) -> None:
    from .errors import InvalidArgument

    raise InvalidArgument(
        f"@tracked is below @attrs.define (or another class decorator) on "
        f"{klass.__qualname__}: put @tracked on top, above @attrs.define"
    )


def _check_not_attrs(obj: object) -> None:
    # `tracked` wrapped ``object.__init__`` (the class had no __init__ of its own) and an
    # attrs decorator applied after it kept that wrapper instead of making its own
    # (``@attrs.define`` over ``@tracked``): the object would be built without its fields.
    if attrs.has(type(obj)):
        _wrong_order(type(obj))


def _building_init(klass: type) -> Callable[..., None]:
    """`klass`'s ``__init__``; inside a tracking run, with the fresh instance claimed
    (`_claim`) while it runs: its accesses to its own fields are not noted.

    Generated with the original's own parameters (as attrs builds its ``__init__``):
    forwarding ``*args, **kwargs`` would cost more than the whole original on the hot path
    of every run that tracks nothing, where the added work is one context-variable read.
    """
    init = klass.__init__  # type: ignore[misc]
    # A subclass's wrapper calls the original, not its base's wrapper (one check).  Only
    # our own wrapper is unwrapped: another decorator's (``functools.wraps`` sets
    # ``__wrapped__`` too: a user's, mutmut's trampoline) is the ``__init__`` to call.
    if getattr(init, "__tracked_init__", False):
        init = init.__wrapped__
    ns: dict[str, Any] = {
        "_init": init,
        "_current": RUNTIME_VAR.get,
        "_getattr": getattr,
        "_depth": _DEPTH,
        "_claim": _claim,
        "_building": _BUILDING,
        "_id": id,
    }
    try:
        # The signature of what is called, not of what a decorator wraps: copying the
        # wrapped function's defaults would pass them to the decorator as if given.
        params = list(inspect.signature(init, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        params = []
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        params = list(inspect.signature(lambda self, *args, **kwargs: None).parameters.values())
    defs: list[str] = []
    call: list[str] = []
    seen_kw_only = False
    for i, param in enumerate(params):
        name = param.name
        default = ""
        if param.default is not param.empty:
            ns[f"_d{i}"] = param.default
            default = f"=_d{i}"
        if param.kind is param.VAR_POSITIONAL:
            defs.append(f"*{name}")
            call.append(f"*{name}")
            seen_kw_only = True
        elif param.kind is param.KEYWORD_ONLY:
            if not seen_kw_only:
                defs.append("*")
                seen_kw_only = True
            defs.append(f"{name}{default}")
            call.append(f"{name}={name}")
        elif param.kind is param.VAR_KEYWORD:
            defs.append(f"**{name}")
            call.append(f"**{name}")
        else:
            defs.append(f"{name}{default}")
            call.append(name)
        if param.kind is param.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not param.POSITIONAL_ONLY
        ):
            defs.append("/")
    source = _INIT.format(params=", ".join(defs), call=", ".join(call), me=params[0].name)
    if init is object.__init__:  # nothing of its own: attrs may still change it in place
        ns["_check_not_attrs"] = _check_not_attrs
        check = f"    _check_not_attrs({params[0].name})\n"
        first = "    if not _depth[0]"
        source = source.replace(first, check + first, 1)
    exec(compile(source, f"<tracked {klass.__qualname__}.__init__>", "exec"), ns)
    wrapper: Callable[..., None] = ns["__init__"]
    wrapper.__wrapped__ = init  # type: ignore[attr-defined]
    wrapper.__tracked_init__ = True  # type: ignore[attr-defined]
    wrapper.__doc__ = init.__doc__
    wrapper.__qualname__ = f"{klass.__qualname__}.__init__"
    return wrapper


def track_subclass(cls: type) -> bool:
    """Track `cls`, a subclass of a tracked class that nobody decorated, as its nearest
    tracked base is (the same exempt fields, ``whole`` and ``internal``), from when it is
    made: for a base whose subclasses are written by users (a protocol's metaclass calls
    it), so a subclass's instances, its own fields included, are noted like the base's
    and `track` does not report them.  An ``__init__`` the class defines itself is wrapped
    as `tracked` wraps it; an inherited one is left inherited (a class decorator applied
    after this one, such as attrs', still sees no ``__init__`` of the class's own).
    Returns False, changing nothing, when `cls` has no tracked base or was decorated
    itself.  Sync."""
    if is_tracked_class(cls):
        return False
    base = _class_attr(cls, "__tracked__")
    if not isinstance(base, _Tracking):
        return False
    info = _Tracking(cls, base.exempt, base.whole, base.internal)
    type.__setattr__(cls, "__tracked__", info)
    _TRACKED_CLASSES.add(cls)
    if "__init__" in cls.__dict__:
        type.__setattr__(cls, "__init__", _building_init(cls))
    if _DEPTH[0]:  # made during a tracking run: noted from now on
        _install(cls, info)
    return True


def is_tracked_class(cls: type) -> bool:
    """True when `cls` itself (not only a base) was decorated with `tracked`."""
    info = cls.__dict__.get("__tracked__")
    return info is not None and info.cls is cls


#: Every class `tracked` decorated (their subclasses are found when needed).
_TRACKED_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()


def _class_attr(kind: type, name: str) -> object:
    # `name` from the MRO's own dicts (no metaclass __getattr__ runs).
    for klass in kind.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


@attrs.frozen
class TrackReport:
    """What `track` found: how many instances of tracked classes it reached, and the
    classes of the stateful objects it reached that nobody tracks (sorted names; empty:
    everything is seen; a plain dict, list or set outside a tracked container is
    reported as ``builtins.dict`` and so on; an instance of an undecorated subclass of a
    tracked class is reported, as the class nobody decorated, unless its base tracks its
    subclasses when they are made: `track_subclass`, as every protocol class is)."""

    reached: int
    untracked: tuple[str, ...]


_VALUE_TYPES: tuple[type, ...] = (
    int,
    float,
    complex,
    str,
    bytes,
    bool,
    type(None),
    range,
    enum.Enum,
    types.ModuleType,
    type,
)

#: Callables: as opaque as what they hold (`_depends_opaque`): a bound method its
#: ``__self__`` and function, a function its closure and defaults.
_CALLABLES: tuple[type, ...] = (
    types.MethodType,
    types.BuiltinFunctionType,
    types.FunctionType,
)


# Memo of `_is_opaque` by type (a function of the class alone; `_DEPENDS` for the
# immutable containers, whose answer is their items'), keyed by the type's id so that it
# holds no class alive: an entry goes when its class dies (`_keyed_while_alive`).
_OPAQUE: dict[int, bool] = {}


def _remember_opaque(kind: type, value: object) -> bool:
    opaque = _OPAQUE[_keyed_while_alive(kind)] = _is_opaque(kind, value)
    return opaque


class _Depends(int):
    """True-ish: "opaque if one of its items is" (`_opaque_items` decides)."""


_DEPENDS: bool = _Depends(1)  # type: ignore[assignment]


def _opaque_items(value: Iterable[object]) -> bool:
    # Whether any of these values (a tuple's items, a record's fields) hands out state
    # nobody notes.
    for item in value:
        kind = type(item)
        opaque = _OPAQUE.get(id(kind))
        if opaque is None:
            opaque = _remember_opaque(kind, item)
        if opaque and (opaque is not _DEPENDS or _depends_opaque(item)):
            return True
    return False


def _depends_opaque(value: Any) -> bool:
    """For a value `_is_opaque` answered `_DEPENDS` for: whether what it holds hands out
    state nobody notes (a tuple's or frozenset's items, a frozen record's fields, a bound
    method's ``__self__`` and function; a function with a closure always does: its cells
    can be rebound, and hold what they hold; an enum member, a function or a tuple
    subclass's instance with attributes of its own does: `_carries_state`).  A class is
    not (its class attributes are watched for the session:
    `odp_async._tracked_code.watch_class`)."""
    if isinstance(value, enum.Enum):
        return _carries_state(value)
    if isinstance(value, type):
        _tracked_code.watch_class(value)  # its class attributes: watched, as the walk's
        return False
    if isinstance(value, (tuple, frozenset)):
        if type(value) not in (tuple, frozenset) and _carries_state(value):
            return True  # a subclass's instance with attributes of its own
        return _opaque_items(value)
    if isinstance(value, types.FunctionType):
        if value.__closure__ is not None or _carries_state(value):
            return True
        return _opaque_items(value.__defaults__ or ()) or _opaque_items(
            (value.__kwdefaults__ or {}).values()
        )
    if isinstance(value, types.MethodType):
        return _opaque_items((value.__self__, value.__func__))
    if isinstance(value, types.BuiltinFunctionType):
        owner = value.__self__  # None or a module for a plain function (``len``)
        return not isinstance(owner, types.ModuleType) and _opaque_items((owner,))
    return _opaque_items(object.__getattribute__(value, name) for name in _fields_of(value))


def _carries_state(value: object) -> bool:
    """Whether a function object, an enum member or a tuple subclass's instance handed
    out keeps attributes of its own (``func.count``, ``Mode.A.count``: state nobody
    notes); its attribute names are watched from now on in the session
    (`odp_async._tracked_code.watch_attrs`), so one added during a run (where there was
    none when it was handed out) stops the search."""
    _tracked_code.watch_attrs(value)
    return _tracked_code.has_own_state(value)


def _is_opaque(kind: type, value: object) -> bool:
    """Whether a value of this type, read out of a tracked field or handed out by a
    tracked container, may hand the step state whose accesses nobody notes.  An
    allow-list: values (None, bools, numbers, strs, bytes, ranges, a bare ``object()``),
    instances of tracked classes (their hooks note them), tracked containers, the
    primitives of `odp_async.sync` (they note themselves; not a subclass's instance with
    fields of its own: `primitive_with_state`), internal objects of a tracked
    class and the runtime's own objects are not; enum members, classes, tuples,
    frozensets, frozen attrs and dataclass records, functions and bound methods are
    `_DEPENDS` (`_depends_opaque` looks at what they hold, and at the attribute dict an
    enum member, a function or a tuple subclass's instance carries: `_carries_state`; a
    class's attributes are watched); modules and anything else are (a plain container,
    an object of an untracked class, a generator, an iterator, a file-like object, ...).
    Reading one makes the step unknown (sound)."""
    if kind is dict or kind is list or kind is set:
        return True
    if issubclass(kind, types.ModuleType):
        return True  # its globals: state nobody notes, read and written past the hooks
    if issubclass(kind, enum.Enum):
        return _DEPENDS  # a member's own attributes (`_carries_state`)
    if isinstance(getattr(kind, "__tracked__", None), _Tracking):
        return False  # noted by its class's hooks
    if issubclass(kind, type):
        return _DEPENDS  # a class: its class attributes are watched (`_depends_opaque`)
    if kind in _CONTAINERS or kind is object or kind in _VALUE_TYPES:
        return False
    if issubclass(kind, _VALUE_TYPES) and not _has_dict(kind):
        return False  # a subclass of int, str... that adds no fields
    if issubclass(kind, (tuple, frozenset)) or kind in _CALLABLES:
        return _DEPENDS  # a record of values or of handles: as opaque as what it holds
    if "__tracked_internal_of__" in kind.__dict__:
        return False
    if _self_noting(value) or kind.__module__.startswith("odp_async._runtime"):
        return False
    if (attrs.has(kind) and _is_frozen(kind)) or _is_frozen_dataclass(kind):
        return _DEPENDS
    return True


def _is_frozen_dataclass(kind: type) -> bool:
    params = getattr(kind, "__dataclass_params__", None)
    return bool(getattr(params, "frozen", False))


def _self_noting(obj: object) -> bool:
    # Primitives note their own state changes (`odp_async.sync`); an instance of a
    # subclass that keeps fields of its own is not one (`primitive_with_state`).
    kind: type = type(obj)
    return issubclass(kind, _sync_primitives()) and primitive_with_state(kind) is None


def _sync_primitives() -> tuple[type, ...]:
    from . import sync

    return (
        sync.WaitQueue,
        sync.Mutex,
        sync.RWLock,
        sync.Completion,
        sync.SlotPool,
        sync.Condition,
    )


def _primitives() -> tuple[type, ...]:
    from .shared import SharedCell

    return (*_sync_primitives(), SharedCell)


#: Memo of `primitive_with_state` by class (a function of the class alone, as `_OPAQUE`).
_PRIMITIVE_STATE: weakref.WeakKeyDictionary[type, type | None] = weakref.WeakKeyDictionary()


def primitive_with_state(cls: type) -> type | None:
    """The primitive (`odp_async.sync`'s, or `odp_async.shared.SharedCell`) that `cls`
    subclasses when `cls` adds fields of its own (a class between them without
    ``__slots__``, so its instances have a ``__dict__``, or with slots of its own), else
    None.  A primitive notes its own state, never a subclass's fields
    (``class CountingLock(Mutex)`` with ``self.uses``): an instance of such a subclass is
    state nobody notes.  A subclass for a name (``__slots__ = ()``) is a primitive."""
    try:
        return _PRIMITIVE_STATE[cls]
    except KeyError:
        found = _PRIMITIVE_STATE[cls] = _primitive_with_state(cls)
        return found


def _primitive_with_state(cls: type) -> type | None:
    base = next((b for b in _primitives() if issubclass(cls, b)), None)
    if base is None or cls is base:
        return None
    for klass in cls.__mro__:
        if klass is base:
            break
        if klass.__module__.startswith("odp_async."):
            continue  # odp_async's own layers (reviewed)
        slots = klass.__dict__.get("__slots__")
        if slots is None:
            return base  # instances of `klass` have a __dict__
        names = (slots,) if isinstance(slots, str) else tuple(slots)
        if any(name != "__weakref__" for name in names):
            return base
    return None


def _fields_of(obj: object) -> Iterable[str]:
    cls = type(obj)
    seen: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        seen.extend((slots,) if isinstance(slots, str) else slots)
    d = None
    if "__dict__" not in seen:
        try:  # past the hooks: reading it here is bookkeeping, not the program's
            d = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            pass
    names = [n for n in seen if n not in ("__weakref__", "__dict__")]
    if isinstance(d, dict):
        names.extend(d)
    return names


def track(root: object, *, deep: bool = True, code: Iterable[object] = ()) -> TrackReport:
    """Walk `root` (and, when `deep`, every object reachable from it, and the code it
    reaches) and report what a tracking run would not see.  `code`: functions walked as
    code only (a run's main function: its closure's variables are judged as values, not
    the closure itself).

    Instances of `tracked` classes are noted in tracking runs anyway (their class's
    hooks), and tracked containers note themselves; this counts the former and reports
    the stateful objects nobody notes: objects of untracked classes with fields, plain
    dicts, lists and sets (and other mutable containers of the standard library) that
    are not inside a whole-tracked object or a primitive (`TrackReport.untracked`).
    `odp_async.world.run_world` takes a world's ``noted_only`` promise only when that
    list is empty.

    When `deep`, the code is judged too (`odp_async._tracked_code.CodeWalk`): the
    methods of every class reached (inherited ones, properties, static and class
    methods) and every function reached, with what they reach through their module
    globals, their closures and static attribute chains (``mymod.state``), and every
    data attribute of those classes.  A function that rebinds a module global or a
    closure variable, or writes an attribute of a class or module it names
    (``Counter.total += 1``), and a global or class attribute holding state nobody notes
    (a plain dict, an untracked object) are reported, named.  Class attributes and
    globals so reached are watched for changes during tracking runs.  Changes nothing.
    Sync; never checkpoints.
    """

    visited: set[int] = set()
    untracked: set[str] = set()
    internal: set[type] = set()
    keep: list[object] = []  # keeps walked objects alive, so their ids stay unique
    # (object, covered): covered objects sit inside a whole-tracked object or a
    # primitive, whose own notes cover them; they are walked (for what they hold), not
    # judged.
    stack: list[tuple[object, bool]] = [(root, False)]
    reached = 0

    def judge(value: object, label: str) -> None:
        # A global, a closure variable or a class attribute the code reaches: judged as
        # a tracked field's value is, and walked for what it holds.
        if isinstance(value, (types.FunctionType, types.MethodType, type, types.ModuleType)):
            return  # code: `walk` reads it; a module: only static chains into it
        kind = type(value)
        opaque = _is_opaque(kind, value)
        if opaque is True or (opaque and _depends_opaque(value)):
            walk.reasons.add(f"{label} ({kind.__module__}.{kind.__qualname__})")  # type: ignore[union-attr]
        stack.append((value, False))

    walk = _tracked_code.session_walk() if deep else None
    if walk is not None:
        walk.bind(judge)
        for item in code:
            walk.code(item)

    while stack:
        obj: Any
        obj, covered = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        keep.append(obj)
        cls = type(obj)
        if walk is not None:
            if cls is types.FunctionType:
                walk.function(obj)
            elif isinstance(obj, type):
                walk.klass(obj)
            elif cls not in _VALUE_TYPES and cls is not object:
                walk.klass(cls)
        if cls is TrackedDict:
            stack.extend((part, covered) for item in obj._d.items() for part in item)
            continue
        if cls is TrackedList or cls is TrackedSet:
            stack.extend((item, covered) for item in obj._c)
            continue
        if cls is TrackedRanges:
            stack.extend((item, covered) for item, _, _ in obj._c)
            continue
        if cls is TrackedBag:
            stack.extend((item, covered) for item in obj._n)
            continue
        if isinstance(obj, _VALUE_TYPES) or cls is object:
            continue
        if isinstance(obj, types.MethodType):
            stack.append((obj.__self__, covered))
            stack.append((obj.__func__, covered))
            continue
        if isinstance(obj, types.BuiltinFunctionType):
            stack.append((obj.__self__, covered))
            continue
        if isinstance(obj, types.FunctionType):
            if (
                obj.__closure__ is not None
                and not covered
                and not _tracked_code.library_wrapper(obj)
            ):  # cells nobody notes
                untracked.add(f"{obj.__module__}.{obj.__qualname__} (a closure)")
            stack.extend((item, covered) for item in obj.__defaults__ or ())
            stack.extend((item, covered) for item in (obj.__kwdefaults__ or {}).values())
            continue
        if cls in (tuple, frozenset):
            stack.extend((item, covered) for item in obj)
            continue
        if cls in (dict, list, set):
            if not covered:  # a plain container no tracked object covers: nobody sees it
                untracked.add(f"builtins.{cls.__name__}")
            items = list(obj.items()) if cls is dict else list(obj)
            stack.extend((item, covered) for item in items)
            continue
        info = _class_attr(cls, "__tracked__")
        inside = covered
        if isinstance(info, _Tracking) and info.cls is cls:
            reached += 1
            internal.update(info.internal)
            inside = info.whole
        elif cls in internal or "__tracked_internal_of__" in cls.__dict__ or _self_noting(obj):
            inside = True
        elif not covered and (
            isinstance(info, _Tracking)  # an undecorated subclass: nobody decorated it
            or _is_opaque(cls, obj) is True  # the rule a tracked read applies
        ):
            untracked.add(f"{cls.__module__}.{cls.__qualname__}")
        if not deep and obj is not root:
            continue
        for name in _fields_of(obj):
            try:
                field = object.__getattribute__(obj, name)
            except AttributeError:
                continue
            if deep:
                stack.append((field, inside))
        field = None
    keep.clear()
    if walk is not None:
        walk.bind(_tracked_code.ignore)
        untracked.update(walk.reasons)
    return TrackReport(reached, tuple(sorted(untracked)))


def _is_frozen(cls: type) -> bool:
    from attr import _make

    return getattr(cls, "__setattr__", None) is getattr(_make, "_frozen_setattrs", 0)


def _track_lower_layers() -> None:
    # `check` and `intervals` depend on nothing but attrs (DESIGN section 3): their
    # shared classes are made trackable here, from above.
    from .check import Checker
    from .intervals import IntervalHandle, IntervalTree, _Node

    tracked(Checker)
    tracked(whole=True, internal=(IntervalHandle, _Node))(IntervalTree)


_track_lower_layers()

from . import _tracked_code  # noqa: E402  (it reads this module's allow-list)

HIDDEN_WRITE_HOOKS.append(_tracked_code.changed)


def _noted_call(main: object, args: Sequence[object]) -> bool:
    # A run under the noted-only promise starts (`noted_run_starts`): the promise stands
    # only if the main function's code and its arguments reach nothing nobody notes.
    if isinstance(main, (types.FunctionType, types.MethodType)):
        report = track(tuple(args), code=(main,))
    else:
        report = track((main, *args))  # a partial, a callable object: its fields
    if report.untracked:
        return False
    _tracked_code.promise_taken()
    return True


NOTED_RUN_HOOKS.append(_noted_call)
