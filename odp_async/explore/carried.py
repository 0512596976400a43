"""State an explored test receives from outside its body, watched between its runs: a
test whose schedules share state (a fixture value one schedule mutates and the next one
reads) is refused, never judged.

Contract
    `ArgumentWatch` is given the values an explored test is called with (its fixtures,
    its parameters, ``self``) and the module globals and closure variables its own code
    names (`outside_names`; not those only its helpers name), each under a label that
    names it (``fixture 'box'``, ``module global 'CACHE'``).  It
    records a fingerprint of each before the first run; `run_starts` (called as each run
    of the test begins) and `check` (after the last run) compare the values as they are
    now with that fingerprint and keep the first difference as a `Change` (the label,
    the path to the value that differs, before and after, and after which run).

    The fingerprint is by value where the walk can read the value: None, bools, numbers,
    str, bytes, bytearrays, enum members, ranges and pure paths compare with ``==`` (and
    by type, so ``1`` is not ``True``); a dict (or a subclass) item by item, in order; a
    list, tuple or deque (or a subclass) element by element; a set or frozenset as the
    set of its elements' fingerprints; an instance of a Python class attribute by
    attribute (its ``__dict__`` and every slot of its MRO).  A shared object is walked
    once (a cycle is fine).  Compared by identity only, not looked into: classes,
    modules, functions, methods, code, objects of pytest's and pluggy's own types (the
    ``request``, ``monkeypatch``, ``capsys`` fixtures), an object of any other C type
    that does not pickle (a lock, a socket) and anything nested deeper than `MAX_DEPTH`:
    a change inside those is not seen.  A C type's instance that pickles (an
    ``array.array``, a ``ctypes`` value, an ``io.StringIO``, an ``itertools.count``) is
    compared by its pickled state.  A lazily filled cache in a Python object (a
    ``functools.cached_property``) is state like any other: filling it is a change.

Why not rebuild the fixtures for each schedule
    pytest builds a function-scoped fixture once per test call and offers no public way
    to tear it down and build it again inside the call; doing it through its private
    fixture machinery would also rebuild (or silently share) the fixtures it depends on.
    Comparing is cheap (one walk per run) and says exactly what was shared.

See also
    `odp_async.explore.testing` (which refuses a test whose watch saw a change).
"""

from __future__ import annotations

import enum
import pickle
import reprlib
import types
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import PurePath
from typing import Any, Final

import attrs

__all__ = ["MAX_DEPTH", "ArgumentWatch", "Change", "outside_names"]

#: Values nested deeper than this (from an argument) are compared by identity.
MAX_DEPTH: Final = 100

_VALUE_TYPES: Final = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    enum.Enum,
    range,
    PurePath,
)
_OPAQUE_TYPES: Final = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
)
#: Modules whose objects are pytest's own fixtures' values, looked at by identity.
_OPAQUE_MODULES: Final = ("_pytest", "pytest", "pluggy")

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40


#: What a name reads when it is not bound (a deleted global, an empty cell).
_ABSENT: Final = object()


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _read_global(namespace: dict[str, Any], name: str) -> Callable[[], object]:
    return lambda: namespace.get(name, _ABSENT)


def _read_cell(cell: types.CellType) -> Callable[[], object]:
    def read() -> object:
        try:
            return cell.cell_contents
        except ValueError:  # an empty cell
            return _ABSENT

    return read


def outside_names(fn: Callable[..., object]) -> dict[str, tuple[str, Callable[[], object]]]:
    """The module globals a function's own code (its nested functions included) names
    and its closure variables, as `ArgumentWatch.take` takes them; a global bound to a
    class, module or function is left out (code, not state)."""
    code = getattr(fn, "__code__", None)
    namespace = getattr(fn, "__globals__", None)
    if not isinstance(code, types.CodeType) or not isinstance(namespace, dict):
        return {}
    found: dict[str, tuple[str, Callable[[], object]]] = {}
    for name in dict.fromkeys(_code_names(code)):
        if name in namespace and not isinstance(namespace[name], _OPAQUE_TYPES):
            found[f"module global {name!r}"] = (name, _read_global(namespace, name))
    cells = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells, strict=False):
        value = _read_cell(cell)()
        if not isinstance(value, _OPAQUE_TYPES):
            found[f"closure variable {name!r}"] = (name, _read_cell(cell))
    return found


class _Shown:
    """How a value looked when pictured: shown in a message, never compared."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Shown)

    def __hash__(self) -> int:
        return 0


class _Same:
    """An object compared by identity (a reference to it is kept)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _slot_names(cls: type) -> list[str]:
    names = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"  # a private slot
            names.append(name)
    return names


def _opaque(value: object) -> bool:
    if isinstance(value, _OPAQUE_TYPES):
        return True
    module = type(value).__module__ or ""
    return module.split(".", 1)[0] in _OPAQUE_MODULES


def _fingerprint(value: object, seen: dict[int, int], depth: int = 0) -> Any:
    """A comparable, hashable picture of `value` (see the module docstring)."""
    if isinstance(value, _VALUE_TYPES):
        return ("=", type(value), value)
    if isinstance(value, bytearray):
        return ("=", type(value), bytes(value))
    if depth > MAX_DEPTH or _opaque(value):
        return ("is", _Same(value))
    key = id(value)
    if key in seen:
        return ("@", seen[key])
    seen[key] = len(seen)
    try:
        return _parts(value, seen, depth + 1)
    except Exception:  # a container or property that does not let itself be read
        return ("is", _Same(value))


def _parts(value: object, seen: dict[int, int], deeper: int) -> Any:
    if isinstance(value, dict):
        items = tuple(
            (_fingerprint(k, seen, deeper), _fingerprint(v, seen, deeper))
            for k, v in list(value.items())
        )
        return ("dict", type(value), items)
    if isinstance(value, (list, tuple, deque)):
        return ("seq", type(value), tuple(_fingerprint(v, seen, deeper) for v in list(value)))
    if isinstance(value, (set, frozenset)):
        return ("set", type(value), frozenset(_fingerprint(v, seen, deeper) for v in list(value)))
    attrs_: list[tuple[str, Any]] = []
    own = getattr(value, "__dict__", None)
    if isinstance(own, dict):
        attrs_.extend((str(k), _fingerprint(v, seen, deeper)) for k, v in list(own.items()))
    for name in _slot_names(type(value)):
        try:
            slot = getattr(value, name)
        except AttributeError:  # an empty slot
            attrs_.append((name, ("unset",)))
        else:
            attrs_.append((name, _fingerprint(slot, seen, deeper)))
    if own is None and not attrs_:
        return _c_state(value)
    if _c_backed(type(value)):  # state outside its attributes too: ``io.StringIO``'s text
        attrs_.append(("<state>", _c_state(value)))
    return ("obj", type(value), tuple(attrs_))


def _c_backed(cls: type) -> bool:
    """Whether a class of `cls`'s MRO (but ``object``) is written in C, so its instances
    may keep state no attribute shows (``ctypes.c_int``'s value, ``io.StringIO``'s text)."""
    return any(not c.__flags__ & _HEAP_TYPE for c in cls.__mro__[:-1])


#: ``Py_TPFLAGS_HEAPTYPE``: set for a class made by a ``class`` statement (or by a C
#: module with heap types), unset for a static C type.
_HEAP_TYPE: Final = 1 << 9


def _c_state(value: object) -> Any:
    """A C type's instance, with no attributes to walk: its pickled state where it has
    one (an ``array.array``, a ``ctypes`` value, an ``io.StringIO``, an
    ``itertools.count``: their state is not in attributes), else its identity (a lock,
    a socket: a change inside is not seen)."""
    try:
        state = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # not picklable: nothing the walk can read
        return ("is", _Same(value))
    return ("pickled", type(value), state, _Shown(_repr.repr(value)))


def _show(fp: Any) -> str:
    kind = fp[0]
    if kind == "=":
        return _repr.repr(fp[2])
    if kind in ("dict", "seq", "set"):
        return f"a {fp[1].__name__} of {len(fp[2])} items"
    if kind == "obj":
        return f"a {fp[1].__name__}"
    if kind == "unset":
        return "unset"
    if kind == "pickled":
        text = str(fp[3].text)
        if " at 0x" in text:  # a repr that shows no state: name the pickled one
            return f"a {fp[1].__name__} in state {zlib.crc32(fp[2]):08x}"
        return text
    return "another object"


def _diff(path: str, before: Any, after: Any) -> tuple[str, str, str] | None:
    """(the path to the first difference, before, after), or None if equal."""
    if before == after:
        return None
    kind = before[0]
    leaves = ("=", "is", "@", "unset", "set", "pickled")
    if kind != after[0] or kind in leaves or before[1] is not after[1]:
        return path, _show(before), _show(after)
    if kind in ("dict", "obj"):
        b_items, a_items = dict(before[2]), dict(after[2])
        for k in [*b_items, *(k for k in a_items if k not in b_items)]:
            name = f"{path}.{k}" if kind == "obj" else f"{path}[{_show(k)}]"
            if k not in a_items:
                return name, _show(b_items[k]), "absent"
            if k not in b_items:
                return name, "absent", _show(a_items[k])
            found = _diff(name, b_items[k], a_items[k])
            if found:
                return found
        return path, "its items in one order", "in another"
    b_parts, a_parts = before[2], after[2]
    if len(b_parts) != len(a_parts):
        return path, _show(before), _show(after)
    for i, (b, a) in enumerate(zip(b_parts, a_parts, strict=True)):
        found = _diff(f"{path}[{i}]", b, a)
        if found:
            return found
    return path, _show(before), _show(after)


@attrs.frozen
class Change:
    """An argument that was not the same after a run as before the first one."""

    label: str  # e.g. "fixture 'box'"
    path: str  # the value that differs, from the argument's name: "box['x']"
    before: str
    after: str
    run: int  # the run after which it differed (1 = the first)

    def describe(self) -> str:
        return (
            f"{self.label} changed between the test's runs ({self.path} was {self.before} "
            f"before the first run, {self.after} after run {self.run})"
        )


@attrs.define
class ArgumentWatch:
    """The fingerprints of an explored test's arguments, and the first change seen."""

    #: label -> (name for paths, how to read the value, its fingerprint before the first run)
    _watched: dict[str, tuple[str, Callable[[], object], Any]] = attrs.field(factory=dict)
    runs: int = 0
    change: Change | None = None

    @classmethod
    def take(cls, values: Mapping[str, tuple[str, Callable[[], object]]]) -> ArgumentWatch:
        """Watch each ``label -> (name, read)`` (`read` gives the value as it is now);
        the fingerprints are taken now."""
        watch = cls()
        for label, (name, read) in values.items():
            watch._watched[label] = (name, read, _fingerprint(read(), {}))
        return watch

    def run_starts(self) -> None:
        """A run of the test begins: compare with the fingerprints (after the first)."""
        if self.runs:
            self.check()
        self.runs += 1

    def check(self) -> Change | None:
        """Compare now (unless a change was already seen); the first change, or None."""
        if self.change is None:
            for label, (name, read, before) in self._watched.items():
                found = _diff(name, before, _fingerprint(read(), {}))
                if found is not None:
                    self.change = Change(label, *found, run=max(self.runs, 1))
                    break
        return self.change
