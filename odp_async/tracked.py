"""Tracked classes: shared state whose every read and write the explorer sees, unwritten.

Contract
    ``@tracked`` on a class (an attrs class or a plain one, slotted or not) makes its
    instances *trackable*: in a run whose chooser keeps footprints (DPOR, dfs with
    reduction), every read of an instance attribute adds a read of
    ``FieldOf(obj, name)`` to the running step's footprint and every write adds a write
    (`odp_async._runtime.footprint`), with no ``note`` written by the author.  A field
    holding a container nobody else holds is reached through a tracked copy of it
    (**Containers** below): a dict notes per key
    (a lookup reads the key; an insert or delete writes the key and the key set;
    iterating, ``len`` and the views read the key set and every key), a list or set as a
    whole (a read for queries and iteration, a write for any change).

    **No cost when nobody tracks.**  A tracked class is exactly as its author wrote it
    except while a run that keeps footprints is in progress: such a run installs a
    noting ``__getattribute__``, ``__setattr__`` and ``__delattr__`` on every tracked
    class (undecorated subclasses inherit them; a subclass defining one of its own gets
    its own hook), each calling the one it stands in for (the class's own, if it defines
    one), and removes them when the run ends, however it ends (an exception, a
    cancellation).  No object ever changes class: ``type(obj)``, ``obj.__class__``,
    ``isinstance``, ``repr``, `attrs.fields`, pickling and copying see the program's own
    class, inside runs and out.  Every instance is noted in a tracking run, wherever it
    was built (at import, in a test's setup, in an earlier run) and however it is
    reached (a module global, a closure, a default argument).  Runs that keep no
    footprints (random, pct, replay, the live runtimes) see no hook: attribute access is
    the plain slot or dict access, and ``__init__`` adds one context-variable read.

    An object's accesses to its own fields while its ``__init__`` builds it fresh are
    not noted (nobody else can hold it before its constructor returns; what the
    constructor publishes is a noted write of that state); a second ``__init__`` on a
    live object is noted like any access.

    **Containers.**  An instance built in a tracking run (or under `adopting_births`)
    is *adopted* by its ``__init__``: each plain dict, list or set in its fields that
    nobody else references is replaced by a tracked one; `track` does the same for
    objects built before the run.  "Nobody else" is CPython's reference count
    (`sys.getrefcount`: the field's own reference and the reader's): a container the
    caller passed in and keeps (``def __init__(self, items): self.items = items``),
    one two objects share, or one kept in a global stays the plain one, so the
    program's aliasing never changes; reading it from a tracked field makes the step
    unknown (sound, less reduction).  Put ``@tracked`` on top of ``@attrs.define``: the
    other order raises `InvalidArgument` at the first construction (attrs kept
    ``tracked``'s ``__init__`` and made none of its own).

    ``@tracked(exempt={"name": "why"})`` leaves fields out (each with its one-line
    reason: set once in ``__init__`` and never written again, a primitive that notes
    itself...); ``@tracked(whole=True)`` makes the whole object one resource (for a
    structure whose methods change internal nodes, like `odp_async.intervals.IntervalTree`).

    **Soundness.**  Reduction over these footprints is sound when every piece of state
    two tasks share is reached through tracked objects, tracked containers, values
    (ints, strs, tuples, frozen attrs records, enums) or the primitives of
    `odp_async.sync` (which note themselves).  Two fall-backs keep a forgotten piece
    from producing a wrong verdict: a tracked field read that yields a plain (untracked)
    dict, list or set makes the step's footprint *unknown* (it conflicts with every
    step), and `track` reports every stateful object of an untracked class it reaches
    (`TrackReport.untracked`): a model scenario only runs with ``noted_only`` (steps
    are exactly their noted accesses) when that list is empty (`odp_async.world.run_world`).
    State a task keeps in local variables is its own; a container or an untracked object
    held in a local across a checkpoint and changed by another task is not seen.  A
    subclass of a tracked class created during a tracking run that defines its own
    ``__getattribute__`` or ``__setattr__`` gets its hook from the next run on.

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

import array
import collections
import collections.abc
import contextlib
import enum
import inspect
import sys
import threading
import types
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

import attrs

from ._runtime._base import RUNTIME_VAR
from ._runtime.footprint import TRACKING_RUN_HOOKS, FieldOf, ReadOf

__all__ = [
    "TrackReport",
    "TrackedDict",
    "TrackedList",
    "TrackedSet",
    "adopting_births",
    "is_tracked_class",
    "track",
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


def _read(owner: object, part: Hashable) -> None:
    fp = _step_fp(RUNTIME_VAR.get(None))
    if fp is not None:
        fp.add(ReadOf(FieldOf(owner, part)))


def _handed(value: Any) -> Any:
    # A value a tracked container hands out: state nobody tracks makes the step unknown.
    if _step_fp(RUNTIME_VAR.get(None)) is None:
        return value  # not a tracking run: nothing to note
    kind = type(value)
    opaque = _OPAQUE.get(kind)
    if opaque is None:
        opaque = _OPAQUE[kind] = _is_opaque(kind, value)
    if opaque and (opaque is not _DEPENDS or _opaque_items(value)):
        _unknown()
    return value


def _write(owner: object, part: Hashable) -> None:
    fp = _step_fp(RUNTIME_VAR.get(None))
    if fp is not None:
        fp.add(FieldOf(owner, part))


# --- tracked containers ---------------------------------------------------------------


class TrackedDict(dict):  # type: ignore[type-arg]
    """A dict that notes per key: ``d[k]``/``get``/``in`` read ``(d, k)``; a store, a
    delete or a ``pop`` write ``(d, k)`` (and the key set when it changes); iteration,
    ``len`` and the views read the key set and every key.  Outside a tracking run it
    notes nothing (it is then only built by `track`, which runs inside one)."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        _read(self, key)
        return _handed(dict.__getitem__(self, key))

    def get(self, key: Any, default: Any = None) -> Any:
        _read(self, key)
        return _handed(dict.get(self, key, default))

    def __contains__(self, key: object) -> bool:
        _read(self, key)
        return dict.__contains__(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        if not dict.__contains__(self, key):
            _write(self, _KEYS)
        _write(self, key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        _write(self, _KEYS)
        _write(self, key)
        dict.__delitem__(self, key)

    def pop(self, key: Any, *default: Any) -> Any:
        _write(self, _KEYS)
        _write(self, key)
        return dict.pop(self, key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if not dict.__contains__(self, key):
            _write(self, _KEYS)
        _write(self, key)
        return dict.setdefault(self, key, default)

    def popitem(self) -> tuple[Any, Any]:
        self._all(write=True)
        return dict.popitem(self)

    def clear(self) -> None:
        self._all(write=True)
        dict.clear(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def _all(self, *, write: bool) -> None:
        note = _write if write else _read
        note(self, _KEYS)
        for key in dict.keys(self):
            note(self, key)

    def __iter__(self) -> Iterator[Any]:
        self._all(write=False)
        return dict.__iter__(self)

    def __len__(self) -> int:
        _read(self, _KEYS)
        return dict.__len__(self)

    def keys(self) -> Any:
        self._all(write=False)
        return dict.keys(self)

    def values(self) -> Any:
        self._all(write=False)
        return dict.values(self)

    def items(self) -> Any:
        self._all(write=False)
        return dict.items(self)

    def copy(self) -> dict[Any, Any]:
        self._all(write=False)
        return dict(dict.items(self))

    def __reversed__(self) -> Iterator[Any]:
        self._all(write=False)
        return dict.__reversed__(self)

    def __eq__(self, other: object) -> bool:
        self._all(write=False)
        return dict.__eq__(self, other)

    def __or__(self, other: Any) -> dict[Any, Any]:
        self._all(write=False)
        return dict(dict.items(self)) | other  # type: ignore[no-any-return]

    def __ior__(self, other: Any) -> TrackedDict:
        self.update(other)
        return self

    __hash__ = None

    def __reduce__(self) -> Any:
        return (dict, (dict(dict.items(self)),))


class TrackedList(list):  # type: ignore[type-arg]
    """A list that notes as a whole: queries and iteration read it, changes write it."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        return (list, (list(list.__iter__(self)),))


class TrackedSet(set):  # type: ignore[type-arg]
    """A set that notes as a whole: queries and iteration read it, changes write it."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        return (set, (set(set.__iter__(self)),))


def _noting(base: type, name: str, record: Callable[[Any, str], None]) -> Callable[..., Any]:
    method = getattr(base, name)

    def noted(self: Any, *args: Any, **kwargs: Any) -> Any:
        record(self, _WHOLE)
        return method(self, *args, **kwargs)

    noted.__name__ = name
    return noted


def _reader(base: type, name: str) -> Callable[..., Any]:
    if name == "__getitem__":
        method = getattr(base, name)

        def item(self: Any, *args: Any) -> Any:
            _read(self, _WHOLE)
            return _handed(method(self, *args))

        item.__name__ = name
        return item
    return _noting(base, name, _read)


def _writer(base: type, name: str) -> Callable[..., Any]:
    return _noting(base, name, _write)


for _name in ("__getitem__", "__iter__", "__len__", "__contains__", "__reversed__"):
    setattr(TrackedList, _name, _reader(list, _name))
for _name in ("index", "count", "copy", "__eq__", "__add__", "__mul__"):
    setattr(TrackedList, _name, _reader(list, _name))
for _name in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(TrackedList, _name, _writer(list, _name))
for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__"):
    setattr(TrackedList, _name, _writer(list, _name))
for _name in ("__iter__", "__len__", "__contains__", "copy", "__eq__", "issubset"):
    setattr(TrackedSet, _name, _reader(set, _name))
for _name in (
    "union",
    "intersection",
    "difference",
    "isdisjoint",
    "issuperset",
    "symmetric_difference",
):
    setattr(TrackedSet, _name, _reader(set, _name))
for _name in ("__or__", "__and__", "__sub__", "__xor__", "__le__", "__ge__", "__lt__", "__gt__"):
    setattr(TrackedSet, _name, _reader(set, _name))
for _name in ("add", "discard", "remove", "pop", "clear", "update", "difference_update"):
    setattr(TrackedSet, _name, _writer(set, _name))
for _name in ("intersection_update", "symmetric_difference_update", "__ior__", "__iand__"):
    setattr(TrackedSet, _name, _writer(set, _name))
for _name in ("__isub__", "__ixor__"):
    setattr(TrackedSet, _name, _writer(set, _name))
TrackedList.__hash__ = None
TrackedSet.__hash__ = None

_PLAIN: dict[type, type] = {dict: TrackedDict, list: TrackedList, set: TrackedSet}


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


#: Every hook `_make_hooks` made (a set: `_original` asks it for every class at every
#: tracking run's start, and ``getattr`` of a missing attribute would cost an exception).
_HOOKS: set[object] = set()


def _is_hook(value: object) -> bool:
    try:
        return value in _HOOKS
    except TypeError:  # unhashable: no hook of ours
        return False


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
            opaque = _OPAQUE.get(kind)
            if opaque is None:
                opaque = _OPAQUE[kind] = _is_opaque(kind, value)
            if opaque and (opaque is not _DEPENDS or _opaque_items(value)):
                _unknown()  # state nobody tracks (a plain container or object)
        elif (
            name == "__dict__"
            and getattr(current(None), "_fp", None) is not None
            and not (building and id(self) in building)
        ):
            _unknown()  # the fields themselves, read and written past the notes
        return value

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name not in exempt and not (building and id(self) in building):
            _write(self, _WHOLE if whole else name)
        set_(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        if not (building and id(self) in building):
            _write(self, _WHOLE if whole else name)
        del_(self, name)

    hooks: tuple[Any, ...] = (__getattribute__, __setattr__, __delattr__)
    _HOOKS.update(hooks)
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
            get = None if get in _HOOKS else get
        if set_ is None:
            set_ = own.get("__setattr__")
            set_ = None if set_ in _HOOKS else set_
        if del_ is None:
            del_ = own.get("__delattr__")
            del_ = None if del_ in _HOOKS else del_
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


#: Held while hooks go on or come off: a run starting in another thread waits until
#: every class has its hooks.
_HOOKS_LOCK = threading.Lock()


def _hooks_on() -> None:
    """A tracking run starts: put the noting hooks on every tracked class (outermost)."""
    with _HOOKS_LOCK:
        _DEPTH[0] += 1
        if _DEPTH[0] == 1:
            for klass, info in _hooked_classes():
                _install(klass, info)


def _hooks_off() -> None:
    """A tracking run ended (however): every class back as its author wrote it."""
    with _HOOKS_LOCK:
        _DEPTH[0] -= 1
        if _DEPTH[0] > 0:
            return
        _DEPTH[0] = 0
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
    ``__init__`` wrapped (an instance built in a tracking run is adopted at once).
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
        type.__setattr__(klass, "__init__", _adopting_init(klass))
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
    rt = _current(None)
    fp = None if rt is None else _getattr(rt, "_fp", None)
    mine = fp is not None and _claim({me})
    try:
        _init({call})
    finally:
        if mine:
            _building.discard(_id({me}))
    if fp is not None:
        _adopt_born({me}, _klass)
    elif rt is None and _at_birth[0]:
        _adopt_born({me}, _klass)
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


def _adopting_init(klass: type) -> Callable[..., None]:
    """`klass`'s ``__init__``, then: inside a tracking run, adopt the new instance.

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
        "_klass": klass,
        "_at_birth": _ADOPT_AT_BIRTH,
        "_adopt_born": _adopt_born,
        "_claim": _claim,
        "_building": _BUILDING,
        "_id": id,
    }
    try:
        params = list(inspect.signature(init).parameters.values())
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
        first = "    rt = _current(None)\n"
        source = source.replace(first, check + first, 1)
    exec(compile(source, f"<tracked {klass.__qualname__}.__init__>", "exec"), ns)
    wrapper: Callable[..., None] = ns["__init__"]
    wrapper.__wrapped__ = init  # type: ignore[attr-defined]
    wrapper.__tracked_init__ = True  # type: ignore[attr-defined]
    wrapper.__doc__ = init.__doc__
    wrapper.__qualname__ = f"{klass.__qualname__}.__init__"
    return wrapper


def is_tracked_class(cls: type) -> bool:
    """True when `cls` itself (not only a base) was decorated with `tracked`."""
    info = cls.__dict__.get("__tracked__")
    return info is not None and info.cls is cls


# --- adopting objects -----------------------------------------------------------------
#
# An instance of a tracked class is noted in every tracking run, wherever it was built
# and however it is reached (the hooks are on its class).  Adopting it only replaces the
# plain dicts, lists and sets in its fields by tracked ones, and only those nobody else
# holds: a container the caller passed in (``self.items = items``) or keeps elsewhere
# stays the plain one, so the program's aliasing never changes; reading it from a
# tracked field makes the step unknown (sound, less reduction).


def _sole_refs() -> int:
    # ``sys.getrefcount`` of a container held by one field only, read into a local as
    # `_convert_unshared` and `track` read it: the field's reference, the local's and
    # getrefcount's argument (CPython's reference count; measured, not assumed).
    class Probe:
        __slots__ = ("field",)

        def __init__(self) -> None:
            self.field: list[object] = []

    probe = Probe()
    value = object.__getattribute__(probe, "field")
    return sys.getrefcount(value)


#: `sys.getrefcount` of a container nobody but its one holder references (see above).
_SOLE = _sole_refs()


def _convert_unshared(obj: object, info: _Tracking) -> None:
    # Each noted field's plain container that nobody else references, swapped for a
    # tracked copy (no one can tell the copy from the original: nobody else has it).
    for name in _fields_of(obj):
        if name in info.exempt:
            continue
        try:
            value = object.__getattribute__(obj, name)
        except AttributeError:
            continue
        plain = _PLAIN.get(type(value))
        if plain is not None and sys.getrefcount(value) <= _SOLE:
            object.__setattr__(obj, name, plain(value))


def _convert_fields(obj: object, info: _Tracking, convert: Callable[[object], object]) -> None:
    # Each noted field's plain container swapped for what `convert` gives (`track`'s
    # `owned` walk).
    for name in _fields_of(obj):
        if name in info.exempt:
            continue
        try:
            value = object.__getattribute__(obj, name)
        except AttributeError:
            continue
        new = convert(value)
        if new is not value:
            object.__setattr__(obj, name, new)


def _adopt(obj: object, info: _Tracking) -> None:
    # One object built inside a tracking run (or under `adopting_births`).
    if not info.whole:
        _convert_unshared(obj, info)


def _adopt_subclass(obj: object, klass: type) -> None:
    # Built by `klass`'s __init__ as an instance of a subclass: adopted here when `klass`
    # is its nearest tracked class (a decorated subclass adopts its own).
    info = _class_attr(type(obj), "__tracked__")
    if isinstance(info, _Tracking) and info.cls is klass:
        _adopt(obj, info)


#: Every class `tracked` decorated (their subclasses are found when needed).
_TRACKED_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()
#: True while `adopting_births` holds: instances built outside any run are adopted by
#: their ``__init__``.
_ADOPT_AT_BIRTH = [False]


@contextlib.contextmanager
def adopting_births() -> Iterator[None]:
    """``with adopting_births(): ...``: every instance of a tracked class built inside,
    outside any run, is adopted at once, as in a tracking run (its unshared plain
    containers become tracked ones: for a root about to be tracked, such as
    `odp_async.world.run_world`'s world).  Sync; one thread at a time."""
    was = _ADOPT_AT_BIRTH[0]
    _ADOPT_AT_BIRTH[0] = True
    try:
        yield
    finally:
        _ADOPT_AT_BIRTH[0] = was


def _adopt_born(obj: object, klass: type) -> None:
    if type(obj) is klass:
        _adopt(obj, klass.__dict__["__tracked__"])
    else:
        _adopt_subclass(obj, klass)


def _class_attr(kind: type, name: str) -> object:
    # `name` from the MRO's own dicts (no metaclass __getattr__ runs).
    for klass in kind.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


@attrs.frozen
class TrackReport:
    """What `track` did: how many instances of tracked classes it reached (each adopted:
    its unshared plain containers made tracked ones), and the classes of the stateful
    objects it reached that nobody tracks (sorted names; empty: everything is seen; an
    instance of an undecorated subclass of a tracked class is reported, as the class
    nobody decorated)."""

    adopted: int
    untracked: tuple[str, ...]


_VALUE_TYPES: tuple[type, ...] = (
    int,
    float,
    str,
    bytes,
    bool,
    type(None),
    range,
    enum.Enum,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.ModuleType,
    type,
)


# Memo of `_is_opaque` by type (a function of the class alone; `_DEPENDS` for the
# immutable containers, whose answer is their items').
_OPAQUE: dict[type, bool] = {}


class _Depends(int):
    """True-ish: "opaque if one of its items is" (`_opaque_items` decides)."""


_DEPENDS: bool = _Depends(1)  # type: ignore[assignment]

#: Mutable containers of the standard library (and their subclasses): state whose
#: changes nobody notes.  `dict`, `list` and `set` themselves are in `_PLAIN`.
_MUTABLE_BUILTINS: tuple[type, ...] = (
    dict,
    list,
    set,
    bytearray,
    collections.deque,
    array.array,
    memoryview,
    collections.abc.MutableMapping,
    collections.abc.MutableSequence,
    collections.abc.MutableSet,
)


def _opaque_items(value: Iterable[object]) -> bool:
    # Whether a tuple or frozenset read out of tracked state holds opaque state.
    for item in value:
        kind = type(item)
        opaque = _OPAQUE.get(kind)
        if opaque is None:
            opaque = _OPAQUE[kind] = _is_opaque(kind, item)
        if opaque and (opaque is not _DEPENDS or _opaque_items(item)):  # type: ignore[arg-type]
            return True
    return False


def _is_opaque(kind: type, value: object) -> bool:
    """Whether a value of this type, read out of a tracked field, hands the step state
    whose accesses nobody notes: a plain container or any mutable container of the
    standard library (or a subclass of one), or a plain object with fields.  Reading one
    makes the step unknown (sound).  Values, instances of tracked classes (their hooks
    note them), internal objects, tracked containers, primitives,
    frozen attrs records and the runtime's own objects are not; for a tuple or frozenset
    the answer is `_DEPENDS` (as opaque as its items: `_opaque_items`)."""
    if kind in _PLAIN:
        return True
    if isinstance(getattr(kind, "__tracked__", None), _Tracking):
        return False  # noted by its class's hooks
    if kind in (TrackedDict, TrackedList, TrackedSet, types.MethodType):
        return False
    if issubclass(kind, (tuple, frozenset)):
        return _DEPENDS  # a record of values or of handles: as opaque as what it holds
    if issubclass(kind, _MUTABLE_BUILTINS):
        return True  # defaultdict, Counter, OrderedDict, deque, bytearray, array ...
    if issubclass(kind, _VALUE_TYPES) or "__tracked_internal_of__" in kind.__dict__:
        return False
    if _self_noting(value) or kind.__module__.startswith("odp_async._runtime"):
        return False
    if attrs.has(kind) and _is_frozen(kind):
        return False
    return bool(_fields_of(value))


def _self_noting(obj: object) -> bool:
    # Primitives note their own state changes (`odp_async.sync`).
    from . import sync

    return isinstance(
        obj,
        (sync.WaitQueue, sync.Mutex, sync.RWLock, sync.Completion, sync.SlotPool, sync.Condition),
    )


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


def track(root: object, *, deep: bool = True, owned: bool = False) -> TrackReport:
    """Adopt `root` (and, when `deep`, every object reachable from it) for tracking.

    Instances of `tracked` classes are noted in tracking runs anyway (their class's
    hooks); this replaces the plain dicts, lists and sets held in their fields (or
    inside such tracked containers) by tracked ones, where nobody else references the
    container (one held twice, or also by a caller, stays plain: reading it makes the
    step unknown), and reports the stateful objects of untracked classes it reaches.
    Call it for objects built before a tracking run (`run_world` does, for the world);
    calling it again changes nothing already changed.  `owned`: the caller vouches that
    nothing outside `root`'s graph uses its containers while the run goes (a world's
    snapshot holds them, to put them back between runs): every plain container met in a
    tracked field is converted then, whatever its reference count, one tracked copy per
    container (so sharing inside the graph is kept).  Sync; never checkpoints.
    """
    replaced: dict[int, object] = {}

    def convert(value: object) -> object:  # `owned`: the copy of a plain container
        plain = _PLAIN.get(type(value))
        if plain is None:
            return value
        new = replaced.get(id(value))
        if new is None:
            new = replaced[id(value)] = plain(value)
            keep.append(value)
        return new

    visited: set[int] = set()
    untracked: set[str] = set()
    internal: set[type] = set()
    keep: list[object] = []  # keeps walked objects alive, so their ids stay unique
    # (object, covered): covered objects sit inside a whole-tracked object or a
    # primitive, whose own notes cover them; they are walked (for what they hold), not
    # judged.
    stack: list[tuple[object, bool]] = [(root, False)]
    adopted = 0
    value: object = None

    while stack:
        obj: Any
        obj, covered = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        keep.append(obj)
        cls = type(obj)
        if cls is TrackedDict:
            for key in list(dict.keys(obj)):
                value = dict.__getitem__(obj, key)
                plain = _PLAIN.get(type(value))
                if owned and plain is not None:
                    value = convert(value)
                    dict.__setitem__(obj, key, value)
                elif plain is not None and sys.getrefcount(value) <= _SOLE:
                    value = plain(value)
                    dict.__setitem__(obj, key, value)
                stack += ((key, covered), (value, covered))
            value = None
            continue
        if cls is TrackedList:
            for i in range(list.__len__(obj)):
                value = list.__getitem__(obj, i)
                plain = _PLAIN.get(type(value))
                if owned and plain is not None:
                    value = convert(value)
                    list.__setitem__(obj, i, value)
                elif plain is not None and sys.getrefcount(value) <= _SOLE:
                    value = plain(value)
                    list.__setitem__(obj, i, value)
                stack.append((value, covered))
            value = None
            continue
        if cls is TrackedSet:
            stack.extend((item, covered) for item in set.__iter__(obj))
            continue
        if isinstance(obj, _VALUE_TYPES):
            continue
        if isinstance(obj, types.MethodType):
            stack.append((obj.__self__, covered))
            continue
        if cls in (tuple, frozenset):
            stack.extend((item, covered) for item in obj)
            continue
        if cls in _PLAIN:
            if not covered:  # a plain container no tracked field holds: nobody sees it
                untracked.add(f"builtins.{cls.__name__}")
            items = list(obj.items()) if cls is dict else list(obj)
            stack.extend((item, covered) for item in items)
            continue
        info = _class_attr(cls, "__tracked__")
        inside = covered
        if isinstance(info, _Tracking) and info.cls is cls:
            adopted += 1
            # (Also an object adopted earlier: it may hold new plain containers.)
            if owned and not info.whole:
                _convert_fields(obj, info, convert)
            else:
                _adopt(obj, info)
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
    return TrackReport(adopted, tuple(sorted(untracked)))


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
