"""State an explored test receives from outside its body, watched between its runs: a
test whose schedules share state (a fixture value one schedule mutates and the next one
reads) is refused, never judged.

Contract
    `ArgumentWatch` is given the roots of an explored test's runs: the values it is
    called with (its fixtures, its parameters, ``self``), the module globals and closure
    variables its own code names and the modules it imports in its body
    (`outside_names`), each under a label that names it (``fixture 'box'``, ``module
    global 'CACHE'``), and the names its code uses (`code_names`).  It records a
    fingerprint of each before the first run (not after it: a global the first run sets
    on first use is a change, since taking it as the baseline would hide a race in that
    lazy initialisation; a memo cache that only gains entries is none); `run_starts`
    (called as each run of the test begins) and `check` (after the last run) compare
    the roots as they are now with that fingerprint and keep the first difference as
    a `Change` (the label, the path to the value that differs, before and after, and
    after which run).  A root
    whose fingerprint holds something that cannot be compared is a `Change` too (with
    `Change.why`) as the second run starts: never taken as unchanged.

    The fingerprint follows what a run can reach from a root:

    * by value: None, bools, numbers, str, bytes, bytearrays, ranges and pure paths
      compare with ``==`` (and by type, so ``1`` is not ``True``); a dict (or a
      subclass) item by item, in order; a list, tuple or deque (or a subclass) element
      by element; a set or frozenset as the set of its elements' fingerprints; an
      instance of a Python class attribute by attribute (its ``__dict__`` and every slot
      of its MRO), an enum member so too (its ``_value_``);
    * code and namespaces, by identity and by what they hold: a function's closure
      cells, defaults, own attributes and the module globals its code names (modules
      it imports in its body included), so a helper's helpers are read; a
      ``functools.partial``'s function, arguments and keywords; a bound method's
      ``__self__`` and function; a class's data and code in its ``__dict__`` and its
      bases' (not dunders), and its metaclass's; a module's attributes that the code
      reaching it names; the class of every instance reached;
    * state outside attributes: an ``lru_cache``'s cache (its keys and results, read
      from what the cache object refers to: a cache that only gains entries is no
      change, an entry lost or whose result changed is), a generator's or
      coroutine's position and locals, a weakref's referent, a mapping proxy's mapping,
      a ``ContextVar``'s value in the caller's context, whether a lock is held, and a C
      type's instance that pickles (an ``array.array``, a ``ctypes`` value, an
      ``io.StringIO``, an ``itertools.count``) by its pickled state, and so an
      instance of a Python class with a C base (a ``random.Random``, a subclass of
      ``array.array``) besides its attributes;
    * an object of an odp_async class that keeps bookkeeping a program cannot reset, by
      the state it shows (`_STATE_HOOK`): an `~odp_async.intervals.IntervalTree` by its
      intervals and their values in order, not its change counters, and a suspended
      iterator of one by whether it is still valid too (`_FRAME_HOOK`).

    A shared object is walked once (a cycle is fine).  Not followed (by identity): the
    functions, classes and modules of trusted libraries
    (`odp_async._tracked_code.trusted`: the standard library, attrs, anyio, trio,
    pytest, odp_async), objects of pytest's, pluggy's and logging's own types, and an
    object of a standard library C type that does not pickle (a socket, a hash object):
    a change inside those is not seen.  Cannot be compared (`Change.why`): anything
    nested deeper than `MAX_DEPTH`, a root of more than `MAX_VALUES` values, an object
    of another library's C type that does not pickle, and a value that raises when
    read.  A lazily filled cache in a Python object (a ``functools.cached_property``)
    is state like any other: filling it is a change.  An attribute reached by a
    computed name (``getattr(mod, name)``) is not seen.

Why not rebuild the fixtures for each schedule
    pytest builds a function-scoped fixture once per test call and offers no public way
    to tear it down and build it again inside the call; doing it through its private
    fixture machinery would also rebuild (or silently share) the fixtures it depends on.
    Comparing is cheap (one walk per run) and says exactly what was shared.

See also
    `odp_async.explore.testing` (which refuses a test whose watch saw a change).
"""

from __future__ import annotations

import contextvars
import dis
import enum
import functools
import gc
import importlib.util
import pickle
import re
import reprlib
import struct
import sys
import threading
import types
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import PurePath
from typing import Any, Final

import attrs

from .._tracked_code import trusted

__all__ = ["MAX_DEPTH", "MAX_VALUES", "ArgumentWatch", "Change", "code_names", "outside_names"]

#: Values nested deeper than this (from a root) cannot be compared (the watch says so).
MAX_DEPTH: Final = 100
#: The most values one fingerprint of one root reads; past it the root cannot be compared.
MAX_VALUES: Final = 1_000_000

_VALUE_TYPES: Final = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    PurePath,
)
#: Modules whose objects are pytest's own fixtures' values, or a library's own state
#: (``logging``'s loggers fill caches as they log), looked at by identity.
_OPAQUE_MODULES: Final = ("_pytest", "pytest", "pluggy", "logging")

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
    and its closure variables, as `ArgumentWatch.take` takes them.  A global bound to a
    function, class or module is one too: the watch reads what it reaches (the globals
    its code names, its closure, its class attributes, the module's attributes named)."""
    code = getattr(fn, "__code__", None)
    namespace = getattr(fn, "__globals__", None)
    if not isinstance(code, types.CodeType) or not isinstance(namespace, dict):
        return {}
    found: dict[str, tuple[str, Callable[[], object]]] = {}
    for name in dict.fromkeys(_code_names(code)):
        if name in namespace:
            found[f"module global {name!r}"] = (name, _read_global(namespace, name))
    cells = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells, strict=False):
        found[f"closure variable {name!r}"] = (name, _read_cell(cell))
    if isinstance(fn, types.FunctionType):
        for name, module in _imports(fn).items():
            found[f"module {name!r} (imported in the test)"] = (
                name,
                functools.partial(_same, module),
            )
    return found


def _same(value: object) -> object:
    return value


def code_names(fn: Callable[..., object]) -> frozenset[str]:
    """The names `fn`'s code (its nested functions included) uses: globals, attributes."""
    code = getattr(fn, "__code__", None)
    return frozenset(_code_names(code)) if isinstance(code, types.CodeType) else frozenset()


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


def _slot_names(cls: type, below: type | None = None) -> list[str]:
    """The slots of `cls`'s MRO, but those of `below` and its bases (a class that shows
    its state through `_STATE_HOOK`)."""
    skip = below.__mro__ if below is not None else ()
    names = []
    for klass in cls.__mro__:
        if klass in skip:
            continue
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"  # a private slot
            names.append(name)
    return names


#: A class of odp_async that keeps bookkeeping a program cannot reset (an
#: `~odp_async.intervals.IntervalTree`'s change counter for its fail-fast iterators)
#: defines this method: ``self -> dict[str, object]``, its state as a program sees it,
#: read instead of its slots (and its bases'); a subclass's own attributes are still read.
_STATE_HOOK: Final = "_carried_state"
#: ... and this one, for a suspended generator of its methods (an iterator of it):
#: ``(self, frame locals) -> object``, what of the generator counts besides its position
#: and locals (whether the iterator is still valid).
_FRAME_HOOK: Final = "_carried_frame_state"


def _presenter(cls: type) -> type | None:
    """The class of `cls`'s MRO that defines `_STATE_HOOK`, if it is odp_async's."""
    for klass in cls.__mro__:
        if _STATE_HOOK in klass.__dict__:
            module = klass.__module__ or ""
            return klass if module.split(".", 1)[0] == "odp_async" else None
    return None


def _opaque(value: object) -> bool:
    module = type(value).__module__ or ""
    return module.split(".", 1)[0] in _OPAQUE_MODULES


def _code_of(fn: types.FunctionType) -> frozenset[str]:
    return frozenset(_code_names(fn.__code__))


_LOCK_TYPES: Final = (type(threading.Lock()), type(threading.RLock()))
_LRU_WRAPPER: Final = type(functools.lru_cache(maxsize=None)(lambda: None))
_FRAMED: Final = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)


def _imports(fn: types.FunctionType) -> dict[str, object]:
    """The modules `fn`'s code (its nested functions included) imports into a local
    (``import mod`` in its body), as far as they are imported already."""
    package = fn.__globals__.get("__package__") or None
    found: dict[str, object] = {}
    for full in _import_names(fn.__code__, package if isinstance(package, str) else None):
        if full in sys.modules:
            found[full] = sys.modules[full]
    return found


@functools.lru_cache(maxsize=4096)
def _import_names(code: types.CodeType, package: str | None) -> tuple[str, ...]:
    """The modules `code` (its nested code included) imports, by full name (a cache:
    reading the bytecode is the slow part of a walk)."""
    found: list[str] = []
    codes = [code]
    while codes:
        code = codes.pop()
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        level = 0
        for ins in dis.get_instructions(code):
            if ins.opname == "LOAD_CONST" and isinstance(ins.argval, int):
                level = ins.argval
            elif ins.opname == "IMPORT_NAME" and isinstance(ins.argval, str):
                try:
                    full = importlib.util.resolve_name("." * level + ins.argval, package)
                except (ImportError, ValueError, TypeError):
                    continue
                found.append(full)
    return tuple(dict.fromkeys(found))


def _trusted_code(obj: object) -> bool:
    """Whether `obj` (a function, class or module) is of a library trusted to keep no
    state of the test's (`odp_async._tracked_code.trusted`): its data is not read."""
    if isinstance(obj, types.ModuleType):
        return trusted(obj.__name__)
    if isinstance(obj, types.FunctionType):
        module = obj.__globals__.get("__name__")
        return trusted(module if isinstance(module, str) else None)
    module = getattr(obj, "__module__", None)
    return trusted(module if isinstance(module, str) else None)


class _Walk:
    """One fingerprint walk: values met (a shared object is walked once), the number of
    values read (at most `MAX_VALUES`) and what could not be read (`unreadable`)."""

    __slots__ = ("count", "kept", "seen", "unreadable")

    def __init__(self) -> None:
        self.seen: dict[object, int] = {}
        #: objects the walk made (a copy of a frame's locals): kept alive while it runs,
        #: so no other object takes a walked one's id
        self.kept: list[object] = []
        self.count = 0
        self.unreadable: list[str] = []

    def _made(self, value: Any) -> Any:
        self.kept.append(value)
        return value

    def cannot(self, value: object, why: str) -> Any:
        if len(self.unreadable) < 3:
            self.unreadable.append(f"{_kind(value)}: {why}")
        return ("unreadable", _Same(value), why)

    def fp(self, value: object, depth: int = 0, names: frozenset[str] = frozenset()) -> Any:
        """A comparable, hashable picture of `value` (see the module docstring); `names`
        are the names the code that reached it uses (a module's attributes read)."""
        if isinstance(value, _VALUE_TYPES) and not isinstance(value, enum.Enum):
            return ("=", type(value), value)
        if isinstance(value, bytearray):
            return ("=", type(value), bytes(value))
        if _opaque(value):
            return ("is", _Same(value))
        self.count += 1
        if self.count > MAX_VALUES:
            return self.cannot(value, f"more than {MAX_VALUES} values to compare")
        if depth > MAX_DEPTH:
            return self.cannot(value, f"nested deeper than {MAX_DEPTH}")
        key: object = id(value)
        if isinstance(value, types.ModuleType):
            key = (id(value), names)  # its attributes read depend on the code reading it
        if key in self.seen:
            return ("@", self.seen[key])
        self.seen[key] = len(self.seen)
        try:
            return self._parts(value, depth + 1, names)
        except RecursionError:
            return self.cannot(value, f"nested deeper than {MAX_DEPTH}")
        except Exception as e:  # a container or property that does not let itself be read
            return self.cannot(value, f"reading it raised {type(e).__name__}")

    def _items(self, kind: type, value: object, items: list[tuple[str, Any]]) -> Any:
        # code and namespaces: by identity, and what they hold, by name
        return ("obj", kind, (("<identity>", ("is", _Same(value))), *items))

    def _parts(self, value: object, deeper: int, names: frozenset[str]) -> Any:
        fp = self.fp
        if isinstance(value, dict):
            items = tuple(
                (fp(k, deeper, names), fp(v, deeper, names)) for k, v in list(value.items())
            )
            return ("dict", type(value), items)
        if isinstance(value, (list, tuple, deque)):
            return ("seq", type(value), tuple(fp(v, deeper, names) for v in list(value)))
        if isinstance(value, (set, frozenset)):
            return ("set", type(value), frozenset(fp(v, deeper, names) for v in list(value)))
        if isinstance(value, types.ModuleType):
            if _trusted_code(value):
                return ("is", _Same(value))
            space = value.__dict__
            read = [(n, fp(space[n], deeper, names)) for n in sorted(names) if n in space]
            return self._items(types.ModuleType, value, read)
        if isinstance(value, type):
            return self._class(value, deeper)
        if isinstance(value, types.FunctionType):
            return self._function(value, deeper)
        if isinstance(value, (types.MethodType, types.BuiltinMethodType)):
            owner = getattr(value, "__self__", None)
            func = getattr(value, "__func__", None)
            return self._items(
                type(value),
                value,
                [("__func__", fp(func, deeper)), ("__self__", fp(owner, deeper))],
            )
        if isinstance(value, functools.partial):
            parts = [("func", value.func), ("args", value.args), ("keywords", value.keywords)]
            parts.append(("__dict__", value.__dict__))
            return self._items(type(value), value, [(n, fp(v, deeper)) for n, v in parts])
        if isinstance(value, _LRU_WRAPPER):
            return self._lru(value, deeper)
        if isinstance(value, types.MappingProxyType):
            return self._items(
                type(value), value, [("<mapping>", fp(self._made(dict(value)), deeper, names))]
            )
        if isinstance(value, weakref.ref):
            return self._items(type(value), value, [("<referent>", fp(value(), deeper, names))])
        if isinstance(value, contextvars.ContextVar):
            try:
                got = value.get()  # the value in this context, or the variable's default
            except LookupError:
                got = _ABSENT
            return self._items(type(value), value, [("<value>", fp(got, deeper, names))])
        if isinstance(value, _FRAMED):
            return self._frame(value, deeper)
        if isinstance(value, _LOCK_TYPES):
            return ("=", type(value), re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value)))
        if isinstance(value, (staticmethod, classmethod)):
            return self._items(type(value), value, [("__func__", fp(value.__func__, deeper))])
        if isinstance(value, property):
            parts = [("fget", value.fget), ("fset", value.fset), ("fdel", value.fdel)]
            return self._items(type(value), value, [(n, fp(v, deeper)) for n, v in parts])
        return self._object(value, deeper, names)

    def _object(self, value: object, deeper: int, names: frozenset[str]) -> Any:
        fp = self.fp
        attrs_: list[tuple[str, Any]] = []
        own = getattr(value, "__dict__", None)
        if isinstance(own, dict):
            attrs_.extend((str(k), fp(v, deeper, names)) for k, v in list(own.items()))
        presenter = _presenter(type(value))
        if presenter is not None:  # its state as its class shows it, for its own slots
            state = presenter.__dict__[_STATE_HOOK](value)
            attrs_.extend((f"<{k}>", fp(v, deeper, names)) for k, v in state.items())
        for name in _slot_names(type(value), below=presenter):
            try:
                slot = getattr(value, name)
            except AttributeError:  # an empty slot
                attrs_.append((name, ("unset",)))
            else:
                attrs_.append((name, fp(slot, deeper, names)))
        cls = type(value)
        if not _trusted_code(cls):  # its class attributes are state the test reaches
            attrs_.append((f"<class {cls.__qualname__}>", fp(cls, deeper)))
        if own is None and not attrs_:
            return self._c_state(value)
        if _c_backed(type(value)):  # state outside its attributes too: ``io.StringIO``'s text
            attrs_.append(("<state>", self._c_state(value)))
        return ("obj", type(value), tuple(attrs_))

    def _class(self, cls: type, deeper: int) -> Any:
        """A class of the program: the data in its ``__dict__`` and its bases' (code is
        walked as code: what a method closes over, its defaults, the globals it names),
        and its metaclass's."""
        if _trusted_code(cls):
            return ("is", _Same(cls))
        items: list[tuple[str, Any]] = []
        for klass in cls.__mro__:
            if _trusted_code(klass):
                continue
            prefix = "" if klass is cls else f"<{klass.__qualname__}>."
            for name, value in list(klass.__dict__.items()):
                if name.startswith("__") and name.endswith("__"):
                    continue  # Python's and libraries' machinery (``__slotnames__``)
                if name == "_value2member_map_" and issubclass(klass, enum.Enum):
                    continue  # a cache (a Flag's combined members); the members are read
                items.append((f"{prefix}{name}", self.fp(value, deeper)))
        meta = type(cls)
        if meta is not type and not _trusted_code(meta):
            items.append((f"<metaclass {meta.__qualname__}>", self.fp(meta, deeper)))
        return self._items(type, cls, items)

    def _function(self, fn: types.FunctionType, deeper: int) -> Any:
        """A function: its closure's cells, its defaults, its own attributes and (for the
        program's code, not a trusted library's) the module globals its code names."""
        fp = self.fp
        code = fn.__code__
        items: list[tuple[str, Any]] = []
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            items.append((f"<closure {name}>", fp(_read_cell(cell)(), deeper)))
        items.extend((str(k), fp(v, deeper)) for k, v in list(fn.__dict__.items()))
        if _trusted_code(fn):
            return self._items(types.FunctionType, fn, items)
        items.append(("<defaults>", fp(fn.__defaults__, deeper)))
        items.append(("<kwdefaults>", fp(fn.__kwdefaults__, deeper)))
        names = _code_of(fn)
        space = fn.__globals__
        for name in sorted(names):
            if name in space:
                items.append((f"<global {name}>", fp(space[name], deeper, names)))
        for name, module in sorted(_imports(fn).items()):
            items.append((f"<import {name}>", fp(module, deeper, names)))
        return self._items(types.FunctionType, fn, items)

    def _frame(self, value: Any, deeper: int) -> Any:
        """A generator or coroutine: where it is suspended and its locals (None when
        finished)."""
        frame = getattr(value, "gi_frame", None) or getattr(value, "cr_frame", None)
        frame = frame or getattr(value, "ag_frame", None)
        if frame is None:
            return self._items(type(value), value, [("<finished>", ("=", bool, True))])
        local = self._made(dict(frame.f_locals))
        items = [("<at>", ("=", int, frame.f_lasti)), ("<locals>", self.fp(local, deeper))]
        owner = local.get("self")
        presenter = _presenter(type(owner)) if owner is not None else None
        if presenter is not None and _FRAME_HOOK in presenter.__dict__:
            state = presenter.__dict__[_FRAME_HOOK](owner, local)
            items.append(("<state>", self.fp(state, deeper)))
        return self._items(type(value), value, items)

    def _lru(self, wrapper: object, deeper: int) -> Any:
        """A ``functools.lru_cache`` function: what it wraps and what its cache holds
        (read from what the cache object refers to: its keys and results)."""
        space = getattr(wrapper, "__dict__", {})
        held = [r for r in gc.get_referents(wrapper) if r is not space and not isinstance(r, type)]
        items = [("__dict__", self.fp(space, deeper))]
        # the cache is walked apart (objects met in it are numbered apart), so that an
        # entry added does not renumber what is walked after it
        seen = self.seen
        self.seen = dict(seen)
        try:
            entries = tuple(
                (self.fp(k, deeper), self.fp(v, deeper))
                for r in held
                if isinstance(r, dict)
                for k, v in list(r.items())
            )
            # a bounded cache's links: the keys and results, in recency order
            links = frozenset(self.fp(r, deeper) for r in held if not isinstance(r, dict))
        finally:
            self.seen = seen
        items.append(("<cache>", ("cache", dict, entries, links)))
        return self._items(type(wrapper), wrapper, items)

    def _c_state(self, value: object) -> Any:
        """A C type's instance, with no attributes to walk: its pickled state where it
        has one (an ``array.array``, a ``ctypes`` value, an ``io.StringIO``, an
        ``itertools.count``: their state is not in attributes); else, for a type of a
        trusted library (a socket, a generator), its identity (a change inside is not
        seen); for another library's type, unreadable."""
        try:
            state = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # not picklable: nothing the walk can read
            if _trusted_code(type(value)):
                return ("is", _Same(value))
            return self.cannot(value, "an object of a C type whose state cannot be read")
        return ("pickled", type(value), state, _Shown(_repr.repr(value)))


def _kind(value: object) -> str:
    cls = type(value)
    return f"a {cls.__module__}.{cls.__qualname__}"


def _c_backed(cls: type) -> bool:
    """Whether a class of `cls`'s MRO (but ``object``) is written in C, so its instances
    may keep state no attribute shows (``ctypes.c_int``'s value, ``io.StringIO``'s text,
    a ``random.Random``'s generator state, a Python subclass of ``array.array``)."""
    return any(_c_layout(c) for c in cls.__mro__[:-1])


def _c_layout(cls: type) -> bool:
    """Whether `cls` is a C type: a static one, or a heap type made by a C module (its
    instances are larger than a ``class`` statement over its base would make them)."""
    if not cls.__flags__ & _HEAP_TYPE:
        return True
    base = cls.__base__
    if base is None:
        return False
    slots = cls.__dict__.get("__slots__", ())
    named = (slots,) if isinstance(slots, str) else tuple(slots)
    size = base.__basicsize__ + _POINTER * sum(
        1 for n in named if n not in ("__dict__", "__weakref__")
    )
    if cls.__weakrefoffset__ and not base.__weakrefoffset__:
        size += _POINTER
    if cls.__dictoffset__ > 0 and not base.__dictoffset__:
        size += _POINTER
    return cls.__basicsize__ != size


_POINTER: Final = struct.calcsize("P")


#: ``Py_TPFLAGS_HEAPTYPE``: set for a class made by a ``class`` statement (or by a C
#: module with heap types), unset for a static C type.
_HEAP_TYPE: Final = 1 << 9


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
    if kind == "unreadable":
        return f"unreadable ({fp[2]})"
    if kind == "cache":
        return f"a cache of {len(fp[2])} entries"
    if kind == "pickled":
        text = str(fp[3].text)
        if " at 0x" in text:  # a repr that shows no state: name the pickled one
            return f"a {fp[1].__name__} in state {zlib.crc32(fp[2]):08x}"
        return text
    return "another object"


def _diff(path: str, before: Any, after: Any, gains: bool = True) -> tuple[str, str, str] | None:
    """(the path to the first difference, before, after), or None if equal (or if
    `gains`, equal but for memo caches that gained entries)."""
    if before == after:
        return None
    kind = before[0]
    leaves = ("=", "is", "@", "unset", "set", "pickled", "unreadable")
    if kind != after[0] or kind in leaves or before[1] is not after[1]:
        return path, _show(before), _show(after)
    if kind == "cache":
        return _cache_diff(path, before, after, gains)
    if kind in ("dict", "obj"):
        b_items, a_items = dict(before[2]), dict(after[2])
        for k in [*b_items, *(k for k in a_items if k not in b_items)]:
            name = f"{path}.{k}" if kind == "obj" else f"{path}[{_show(k)}]"
            if k not in a_items:
                return name, _show(b_items[k]), "absent"
            if k not in b_items:
                if isinstance(k, str) and k.startswith("<import "):
                    continue  # a module its code imports, imported since: no state carried
                return name, "absent", _show(a_items[k])
            found = _diff(name, b_items[k], a_items[k], gains)
            if found:
                return found
        if list(b_items) == [k for k in a_items if k in b_items]:
            return None  # equal but for caches that gained entries (or modules imported)
        return path, "its items in one order", "in another"
    b_parts, a_parts = before[2], after[2]
    if len(b_parts) != len(a_parts):
        return path, _show(before), _show(after)
    for i, (b, a) in enumerate(zip(b_parts, a_parts, strict=True)):
        found = _diff(f"{path}[{i}]", b, a, gains)
        if found:
            return found
    return None  # equal but for caches that gained entries


def _cache_diff(path: str, before: Any, after: Any, gains: bool) -> tuple[str, str, str] | None:
    """A memo cache only gaining entries is no change (a pure function's results);
    an entry lost, or whose key or result now differs, is."""
    a_entries = dict(after[2])
    for k, b in before[2]:
        name = f"{path}[{_show(k)}]"
        if k not in a_entries:
            return name, _show(b), "absent"
        found = _diff(name, b, a_entries[k], gains)
        if found:
            return found
    lost = before[3] - after[3]
    if lost:
        return path, f"a cache holding {_show(next(iter(lost)))}", "one without it"
    if not gains:
        b_entries = dict(before[2])
        for k, a in after[2]:
            if k not in b_entries:
                return f"{path}[{_show(k)}]", "absent", _show(a)
        if after[3] - before[3]:
            return path, _show(before), _show(after)
    return None


@attrs.frozen
class Change:
    """A root that was not the same after a run as before the first one, or that could
    not be compared (`why`): state the runs may have shared unseen."""

    label: str  # e.g. "fixture 'box'"
    path: str  # the value that differs, from the argument's name: "box['x']"
    before: str
    after: str
    run: int  # the run after which it differed (1 = the first)
    why: str | None = None  # set when the root could not be compared, and why
    since: int = 0  # the run after which `before` was taken (0: before the first run)

    def describe(self) -> str:
        if self.why is not None:
            return (
                f"{self.label} could not be compared between the test's runs ({self.why}), "
                "so its runs may have shared state nobody saw"
            )
        when = f"after run {self.since}" if self.since else "before the first run"
        return (
            f"{self.label} changed between the test's runs ({self.path} was {self.before} "
            f"{when}, {self.after} after run {self.run})"
        )


def _fingerprint(value: object, names: frozenset[str]) -> tuple[Any, list[str]]:
    walk = _Walk()
    return walk.fp(value, 0, names), walk.unreadable


@attrs.define
class ArgumentWatch:
    """The fingerprints of an explored test's roots, and the first change seen."""

    #: label -> (name for paths, how to read the value, its fingerprint before the first run)
    _watched: dict[str, tuple[str, Callable[[], object], Any]] = attrs.field(factory=dict)
    #: label -> what of it could not be read before the first run
    _unreadable: dict[str, list[str]] = attrs.field(factory=dict)
    _names: frozenset[str] = frozenset()
    runs: int = 0
    change: Change | None = None

    @classmethod
    def take(
        cls,
        values: Mapping[str, tuple[str, Callable[[], object]]],
        names: frozenset[str] = frozenset(),
    ) -> ArgumentWatch:
        """Watch each ``label -> (name, read)`` (`read` gives the value as it is now);
        the fingerprints are taken now.  `names` are the names the test's code uses: the
        attributes of a module root (or of a module a root holds) that are read."""
        watch = cls(names=names)
        for label, (name, read) in values.items():
            fingerprint, unreadable = _fingerprint(read(), names)
            watch._watched[label] = (name, read, fingerprint)
            if unreadable:
                watch._unreadable[label] = unreadable
        return watch

    def run_starts(self) -> None:
        """A run of the test begins: compare with the fingerprints (after the first); a
        root that could not be read makes the second run (and the verdict) suspect."""
        if self.runs:
            self.check()
            if self.change is None and self._unreadable:
                label, why = next(iter(self._unreadable.items()))
                name = self._watched[label][0]
                self.change = Change(label, name, "", "", self.runs, why="; ".join(why))
        self.runs += 1

    def check(self) -> Change | None:
        """Compare now (unless a change was already seen); the first change, or None."""
        if self.change is None:
            for label, (name, read, before) in self._watched.items():
                found = _diff(name, before, _fingerprint(read(), self._names)[0])
                if found is not None:
                    run = max(self.runs, 1)
                    self.change = Change(label, *found, run=run)
                    break
        return self.change
