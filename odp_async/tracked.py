"""Tracked classes: shared state whose every read and write the explorer sees, unwritten.

Contract
    ``@tracked`` on a class (an attrs class or a plain one, slotted or not) makes its
    instances *trackable*: in a run whose chooser keeps footprints (DPOR, dfs with
    reduction), every read of an instance attribute adds a read of
    ``FieldOf(obj, name)`` to the running step's footprint and every write adds a write
    (`odp_async._runtime.footprint`), with no ``note`` written by the author.  A field
    holding a container is reached through a tracked copy of it: a dict notes per key
    (a lookup reads the key; an insert or delete writes the key and the key set;
    iterating, ``len`` and the views read the key set and every key), a list or set as a
    whole (a read for queries and iteration, a write for any change).

    **No cost when nobody tracks.**  An instance is an ordinary object of its class
    until a tracking run adopts it: `track` (for objects built before the run, e.g. a
    `World`) walks the object graph and switches every instance of a tracked class to
    the class's *tracking twin* (a subclass with the same layout whose
    ``__getattribute__``/``__setattr__`` note), and replaces plain dicts, lists and sets
    found in their fields by tracked ones; an instance created *during* a tracking run is
    adopted by its ``__init__`` (an instance of an undecorated subclass too, through a
    twin made for that subclass).  Runs that keep no footprints (random, pct, replay, the
    live runtimes) never see a twin of an object they built: attribute access is the
    plain slot or dict access, and ``__init__`` adds one context-variable read and one
    store.  `attrs.fields`, ``isinstance`` and ``repr`` see the class as before.

    **Objects built before the run, wherever they are held.**  An instance built
    outside a tracking run (at import, in a test's setup, in a random run) and reached
    other than through the tracked root (a module global, a closure, a default argument,
    a class attribute) is adopted too: its ``__init__`` marks that such an instance may
    exist, and the next run that keeps footprints under the noted-only promise starts by
    switching every live instance of a tracked class not yet adopted to its twin (a look
    at the objects the garbage collector tracks: its two young generations, or all
    three when an older one was collected since the last look; the plain
    containers in their fields are left as they are, so a read of one makes the step
    unknown).  An object once adopted stays adopted (outside tracking runs its accesses
    then cost one check each).  `odp_async.world.run_world` builds the world of a noted
    tracking run with `adopting_births`, so its runs need no such look.  Put ``@tracked``
    on top of ``@attrs.define``: the other order raises `InvalidArgument` at the first
    construction (attrs kept ``tracked``'s ``__init__`` and made none of its own).

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
    held in a local across a checkpoint and changed by another task is not seen, nor is
    an instance of a tracked class made without ``__init__`` (``object.__new__``, an
    unpickling of one never adopted) after the last birth that marked a look, nor one
    moved out of the collector's generations by ``gc.freeze()``.

Concurrency
    As the sim: one step at a time.  Notes go to the step of the runtime in effect
    (`odp_async._runtime.RUNTIME_VAR`); outside a tracking run they are skipped.

See also
    `odp_async.shared.SharedCell` (one tracked value), `odp_async.explore.dpor`,
    `tests/model/test_tracked_coverage.py` (every model class is tracked or exempt).
"""

from __future__ import annotations

import array
import collections
import collections.abc
import contextlib
import copyreg
import enum
import gc
import inspect
import itertools
import types
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

import attrs

from ._runtime._base import RUNTIME_VAR
from ._runtime.footprint import NOTED_RUN_HOOKS, FieldOf, ReadOf

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


def _make_twin(cls: type, exempt: frozenset[str], whole: bool) -> type:
    get = object.__getattribute__
    set_: Callable[[Any, str, Any], None] = getattr(cls, "__setattr__")  # noqa: B009
    del_: Callable[[Any, str], None] = getattr(cls, "__delattr__")  # noqa: B009
    names = _data_names(cls) - exempt
    has_dict = _has_dict(cls)

    current = RUNTIME_VAR.get

    def __getattribute__(self: Any, name: str) -> Any:
        value = get(self, name)
        if name in names or (has_dict and name not in exempt and name in get(self, "__dict__")):
            fp = getattr(current(None), "_fp", None)  # None: no runtime, or not tracking
            if fp is not None:
                fp.add(ReadOf(FieldOf(self, _WHOLE if whole else name)))
                kind = type(value)
                opaque = _OPAQUE.get(kind)
                if opaque is None:
                    opaque = _OPAQUE[kind] = _is_opaque(kind, value)
                if opaque and (opaque is not _DEPENDS or _opaque_items(value)):
                    _unknown()  # state nobody tracks (a plain container or object)
        elif name == "__dict__" and getattr(current(None), "_fp", None) is not None:
            _unknown()  # the fields themselves, read and written past the notes
        return value

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name not in exempt:
            _write(self, _WHOLE if whole else name)
        set_(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        _write(self, _WHOLE if whole else name)
        del_(self, name)

    ns: dict[str, Any] = {
        "__slots__": (),
        "__getattribute__": __getattribute__,
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__twin_of__": cls,
        "__reduce_ex__": _reduce_as(cls),
    }
    return type(cls.__name__, (cls,), ns)


def _reduce_as(cls: type) -> Callable[[Any, int], Any]:
    # A twin pickles and copies as its class (the twin is not importable by name): what
    # comes back is built by `_new_as`, adopted inside a tracking run (a copy or an
    # unpickled object made there is noted as the original is) and ordinary outside.
    def __reduce_ex__(self: Any, protocol: int) -> Any:
        made = super(type(self), self).__reduce_ex__(protocol)
        twin = type(self)
        if not isinstance(made, tuple) or len(made) < 2:
            return made
        args = made[1]
        if made[0] is _NEWOBJ and isinstance(args, tuple) and args[:1] == (twin,):
            made = (_new_as, (cls, *args[1:]), *made[2:])
        return made

    return __reduce_ex__


_NEWOBJ: Any = getattr(copyreg, "__newobj__")  # noqa: B009 (not in the stubs)


def _new_as(cls: type, *args: Any) -> Any:
    """``cls.__new__(cls, *args)``, switched to `cls`'s tracking twin inside a tracking
    run: how a pickled or copied twin comes back."""
    obj = cls.__new__(cls, *args)
    info = _class_attr(cls, "__tracked__")
    if isinstance(info, _Tracking) and tracking():
        object.__setattr__(obj, "__class__", _twin_of(cls, info))
    return obj


@attrs.frozen
class _Tracking:
    """How a tracked class is tracked (``cls.__tracked__``)."""

    cls: type
    twin: type
    exempt: Mapping[str, str]
    whole: bool
    #: Classes of the objects inside it that its own resource covers (a tree's nodes).
    internal: tuple[type, ...]


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
        twin = _make_twin(klass, frozenset(exempt), whole)
        info = _Tracking(klass, twin, exempt, whole, tuple(internal))
        type.__setattr__(klass, "__tracked__", info)
        _TRACKED_CLASSES.add(klass)
        type.__setattr__(klass, "__init__", _adopting_init(klass))
        for part in info.internal:
            # Wherever the walk meets one (a handle a region keeps), its changes are made
            # by the owner's methods and noted there.
            type.__setattr__(part, "__tracked_internal_of__", klass)
        return klass

    return apply if cls is None else apply(cls)


_INIT = """
def __init__({params}):
    _init({call})
    rt = _current(None)
    if rt is None:
        if _at_birth[0]:
            _adopt_born({me}, _klass)
        else:
            _unseen[0] = True
    elif _getattr(rt, "_fp", None) is None:
        _unseen[0] = True
    elif type({me}) is _klass:
        _adopt({me}, _klass.__dict__["__tracked__"])
    else:
        _adopt_subclass({me}, _klass)
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
        "_adopt": _adopt,
        "_adopt_subclass": _adopt_subclass,
        "_at_birth": _ADOPT_AT_BIRTH,
        "_adopt_born": _adopt_born,
        "_unseen": _UNSEEN,
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
        source = source.replace("    _init(", check + "    _init(", 1)
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


def _adopt(obj: object, info: _Tracking) -> None:
    # One object built inside a tracking run: its twin, and tracked copies of the plain
    # containers its constructor made (nobody else holds them yet).
    object.__setattr__(obj, "__class__", info.twin)
    if not info.whole:
        _convert_fields(obj, info, _tracked_copy)


def _twin_of(kind: type, info: _Tracking) -> type:
    # The tracking twin of `kind`: its tracked class's, or (for a subclass nobody
    # decorated) one made for it on first need, noting as its tracked base does.
    if kind is info.cls:
        return info.twin
    twin = _SUBCLASS_TWINS.get(kind)
    if twin is None:
        twin = _SUBCLASS_TWINS[kind] = _make_twin(kind, frozenset(info.exempt), info.whole)
    return twin


# Twins made for subclasses of tracked classes that are not decorated themselves.
_SUBCLASS_TWINS: dict[type, type] = {}


def _adopt_subclass(obj: object, klass: type) -> None:
    # Built in a tracking run by `klass`'s __init__ as an instance of a subclass: adopted
    # here when `klass` is its nearest tracked class (a decorated subclass adopts its own).
    kind = type(obj)
    if "__twin_of__" in kind.__dict__:
        return
    info = getattr(kind, "__tracked__", None)
    if isinstance(info, _Tracking) and info.cls is klass:
        object.__setattr__(obj, "__class__", _twin_of(kind, info))
        if not info.whole:
            _convert_fields(obj, info, _tracked_copy)


# --- objects built outside tracking runs --------------------------------------------------
#
# An instance built outside a tracking run is reached, in a later one, through whatever
# holds it: the tracked root (`track` adopts it then) or a module global, a closure, a
# default, a class attribute, which nobody walks.  Its ``__init__`` (outside a tracking
# run: one store) marks that such an instance may exist, and the next footprint-keeping
# run under the noted-only promise starts by adopting every live one (`_adopt_unseen`,
# a look at every object the garbage collector tracks).  Objects made without
# ``__init__`` (a copy, an unpickling) are copies of adopted ones or are found by that
# look when another birth marked it.

#: True: an instance of a tracked class may have been built outside a tracking run since
#: the last noted run began.  Process-wide, as the classes are.
_UNSEEN = [True]
#: Every class `tracked` decorated (their subclasses are found when needed).
_TRACKED_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()
#: True while `adopting_births` holds: instances built outside any run are adopted by
#: their ``__init__`` (in a run that keeps no footprints, they only mark a look).
_ADOPT_AT_BIRTH = [False]


@contextlib.contextmanager
def adopting_births() -> Iterator[None]:
    """``with adopting_births(): ...``: every instance of a tracked class built inside,
    outside any run, is adopted at once, as in a tracking run (for a root about to be
    tracked: `odp_async.world.run_world`'s world), so none is left for a noted run to
    look for; one built in a sim run inside (a setup's) still marks a look.  Sync; one
    thread at a time."""
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


def _adopt_unseen() -> bool:
    """Adopt, for tracking, every live instance of a tracked class not adopted yet, when
    one may have been built outside a tracking run since the last call (switch it to its
    twin; its plain containers stay as they are, and reading one makes the step
    unknown).  True: the noted-only promise can stand."""
    if not _UNSEEN[0]:
        return True
    holds = True
    for obj in _unadopted_instances():
        kind = type(obj)
        info = _class_attr(kind, "__tracked__")
        if isinstance(info, _Tracking) and "__twin_of__" not in kind.__dict__:
            try:
                object.__setattr__(obj, "__class__", _twin_of(kind, info))
            except TypeError:  # a class whose instances cannot switch: no promise
                holds = False
    if not holds:  # one left unadopted: look at everything (and refuse) again next time
        _UNSEEN[0] = _AGED[0] = True
    else:
        _UNSEEN[0] = False
    return holds


def _unadopted_instances() -> list[object]:
    # Every live instance of a tracked class (or an undecorated subclass) not adopted:
    # the filter runs in C (`map`, `compress`), a few dozen instructions per object.
    classes = set()
    stack = list(_TRACKED_CLASSES)
    while stack:
        klass = stack.pop()
        if klass not in classes and "__twin_of__" not in klass.__dict__:
            classes.add(klass)
            stack.extend(type.__subclasses__(klass))
    enabled = gc.isenabled()
    gc.disable()  # no collection moves an object between the generations read below
    try:
        if _AGED[0]:  # objects built since the last look may be in any generation
            _AGED[0] = False
            objects = gc.get_objects()
        else:  # only young ones: those are in the first two generations
            objects = gc.get_objects(0) + gc.get_objects(1)
    finally:
        if enabled:
            gc.enable()
    return list(itertools.compress(objects, map(classes.__contains__, map(type, objects))))


#: True when a collection of an older generation ran since the last look (it moves
#: young objects to the oldest generation, so the next look reads every generation).
_AGED = [True]


def _on_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start" and info["generation"] >= 1:
        _AGED[0] = True


gc.callbacks.append(_on_collection)


def _class_attr(kind: type, name: str) -> object:
    # `name` from the MRO's own dicts (no metaclass __getattr__ runs).
    for klass in kind.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


NOTED_RUN_HOOKS.append(_adopt_unseen)


def _tracked_copy(value: object) -> object:
    plain = _PLAIN.get(type(value))
    return value if plain is None else plain(value)


def _convert_fields(obj: object, info: _Tracking, convert: Callable[[object], object]) -> None:
    # Each noted field's plain container swapped for what `convert` gives.
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


@attrs.frozen
class TrackReport:
    """What `track` did: how many objects it adopted, and the classes of the stateful
    objects it reached that nobody tracks (sorted names; empty: everything is seen)."""

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
    standard library (or a subclass of one), an instance of a tracked class not adopted
    for tracking, or a plain object with fields.  Reading one makes the step unknown
    (sound).  Values, adopted and internal objects, tracked containers, primitives,
    frozen attrs records and the runtime's own objects are not; for a tuple or frozenset
    the answer is `_DEPENDS` (as opaque as its items: `_opaque_items`)."""
    if kind in _PLAIN:
        return True
    info = getattr(kind, "__tracked__", None)
    if isinstance(info, _Tracking):
        return "__twin_of__" not in kind.__dict__  # not adopted: unnoted
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
        try:  # past a twin's hook: reading it here is bookkeeping, not the program's
            d = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            pass
    names = [n for n in seen if n not in ("__weakref__", "__dict__")]
    if isinstance(d, dict):
        names.extend(d)
    return names


def track(root: object, *, deep: bool = True) -> TrackReport:
    """Adopt `root` (and, when `deep`, every object reachable from it) for tracking.

    Instances of `tracked` classes switch to their tracking twin; plain dicts, lists and
    sets held in their fields (or inside such containers) are replaced by tracked ones
    (the same replacement wherever the walk meets the same container, so sharing is
    kept).  Call it for objects built before a tracking run (`run_world` does, for the
    world); objects already adopted are left as they are.  Sync; never checkpoints.
    """
    replaced: dict[int, object] = {}
    visited: set[int] = set()
    untracked: set[str] = set()
    internal: set[type] = set()
    keep: list[object] = []  # keeps walked objects alive, so their ids stay unique
    # (object, covered): covered objects sit inside a whole-tracked object or a
    # primitive, whose own notes cover them; they are walked (for what they hold), not
    # judged.
    stack: list[tuple[object, bool]] = [(root, False)]
    adopted = 0

    def convert(value: object) -> object:
        plain = _PLAIN.get(type(value))
        if plain is None:
            return value
        new = replaced.get(id(value))
        if new is None:
            new = plain(value)
            replaced[id(value)] = new
            keep.append(value)
        return new

    while stack:
        obj: Any
        obj, covered = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        keep.append(obj)
        cls = type(obj)
        if cls is TrackedDict:
            for key, value in list(dict.items(obj)):
                new = convert(value)
                if new is not value:
                    dict.__setitem__(obj, key, new)
                stack += ((key, covered), (new, covered))
            continue
        if cls is TrackedList:
            for i, value in enumerate(list(list.__iter__(obj))):
                new = convert(value)
                if new is not value:
                    list.__setitem__(obj, i, new)
                stack.append((new, covered))
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
        info = getattr(cls, "__tracked__", None)
        inside = covered
        if info is not None and (info.cls is cls or info.twin is cls):
            if info.cls is cls:
                object.__setattr__(obj, "__class__", info.twin)
                adopted += 1
            # (An object adopted in an earlier run may hold new plain containers.)
            if not info.whole:
                _convert_fields(obj, info, convert)
            internal.update(info.internal)
            inside = info.whole
        elif cls in internal or "__tracked_internal_of__" in cls.__dict__ or _self_noting(obj):
            inside = True
        elif not covered and _is_opaque(cls, obj) is True:  # the rule a tracked read applies
            untracked.add(f"{cls.__module__}.{cls.__qualname__}")
        if not deep and obj is not root:
            continue
        for name in _fields_of(obj):
            try:
                value = object.__getattribute__(obj, name)
            except AttributeError:
                continue
            if deep:
                stack.append((value, inside))
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
