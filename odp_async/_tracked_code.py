"""The code side of `odp_async.tracked.track`: the state a world's code reaches past its
objects' fields, and the watch on class attributes and module globals during tracking
runs.

Contract
    `CodeWalk` judges the code reachable from what `track` walks: every function it meets
    (a method of a class reached, a function held in a field, a global a function loads)
    and every class (the class of an object reached, a class held somewhere): its
    methods (inherited ones, properties, static and class methods included) are read
    with `odp_async._code_reach.code_facts`, and

    * a function that rebinds a module global (``global n; n += 1``) or a variable of its
      closure (``nonlocal``), or writes an attribute of a class or module it names
      statically (``Counter.total += 1``, ``mymod.flag = True``), is reported;
    * every global it loads, and the attributes a static chain reaches on a module or a
      class (``mymod.state``, ``Registry.items``), a variable of its closure, and every
      data attribute of a class reached (its ``__dict__`` over its MRO) is judged as
      `track` judges a field: a plain dict, list or set, an object of an untracked class
      and so on is reported;
    * functions and classes so reached are walked in turn (once each);
    * the default arguments of a function reached (``__defaults__``, ``__kwdefaults__``,
      made once and shared by every call) are judged as its closure's variables are;
    * a class that subclasses a primitive (`odp_async.tracked.primitive_with_state`)
      and whose instances keep fields of its own, a function naming one of the standard
      library's side channels (`_SIDE_CHANNELS`: ``os.environ``, ``open``, ``random``'s
      module functions, ``time.monotonic``...), a function naming ``__closure__`` or
      ``cell_contents``, and a local shared with the functions a function defines that
      they rebind or that is bound to a call of a class nobody notes (a library's
      included: ``types.SimpleNamespace()``, ``collections.deque()``) or of a generator
      function (`_shared_locals`) are reported, and so is such a call's result that the
      function hands on, straight or through a plain local: passed to a call
      (``tg.start_soon(inc, s)``), stored into a container or another object, returned
      or yielded, or a bound method of it taken as a value (`_escaping_state`).

    Code outside the program is trusted, not read: the standard library, attrs, anyio,
    trio and the other libraries named in `_TRUSTED_TOP`, odp_async's runtime, explorer,
    primitives and tracked containers (`_TRUSTED_ODP`), and code a class decorator
    generated (a file name in angle brackets; the function it wraps, ``__wrapped__``, is
    read).  Builtins are trusted.

    **The watch.**  A class attribute or a module global reached this way, and every
    data attribute of a tracked class, is watched while a tracking session is open
    (`watch`, `session_starts`, `run_ends`): each run's end compares its value (by
    identity) with the value at the session's start (or when first watched), and the
    first change is kept (`changed`) for the search to stop on: a write no hook noted
    (``type(self).total += 1``) leaves no search `complete`.  The names of the own
    attributes (`own_state`) of a function the walk reaches, and of a function object,
    enum member or tuple subclass's instance a tracked field hands out, are watched the
    same way (`watch_attrs`: ``func.count = 0`` where there was none), and so are a class
    handed out by a tracked field, its bases, and their data attributes (`watch_class`:
    a class made during the run, which no walk reached).  A function that writes an
    attribute of a function or enum member it names (``counter.n += 1``), or that keeps
    attributes of its own, is reported.

    A write that puts the old value back before the run ends (an attribute added and
    deleted again), an owner computed at run
    time that the code rebinds and restores, ``getattr(mod, computed_name)``, ``exec``
    and code not reachable from the walked roots stay unseen.

Concurrency
    The watch is process-wide, as the hooks it rides with (`odp_async.tracked`).

See also
    `odp_async.tracked.track`, `odp_async._code_reach`.
"""

from __future__ import annotations

import decimal
import dis
import enum
import fractions
import functools
import importlib.util
import inspect
import sys
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from ._code_reach import Chain, code_facts, code_tree, instructions

__all__ = [
    "CodeWalk",
    "changed",
    "has_own_state",
    "promise_taken",
    "run_ends",
    "session_ends",
    "session_starts",
    "session_walk",
    "own_state",
    "watch",
    "watch_attrs",
    "watch_class",
]

#: Libraries trusted to keep no state a program's tasks share unseen (not read).
_TRUSTED_TOP = frozenset(sys.stdlib_module_names) | frozenset(
    {
        "attr",
        "attrs",
        "anyio",
        "trio",
        "sniffio",
        "outcome",
        "exceptiongroup",
        "typing_extensions",
        "click",
        "pytest",
        "_pytest",
        "pluggy",
        "hypothesis",
    }
)

#: Libraries whose wrappers (a closure made by the library around the program's function,
#: e.g. ``functools.wraps``) hold no state the program's tasks share: a value that is such
#: a wrapper is not reported as a closure by `odp_async.tracked.track`.  Empty: only a
#: test harness wrapping the model's own methods (mutmut's trampolines,
#: ``tests/conftest.py``) names one.
_WRAPPER_TOP: frozenset[str] = frozenset()

#: odp_async's own machinery: it notes what it shares itself (the runtime, the
#: primitives, the tracked containers) or is not run by the program (the explorer).
_TRUSTED_ODP = (
    "odp_async._runtime",
    "odp_async._code_reach",
    "odp_async._tracked_code",
    "odp_async.tracked",
    "odp_async.sync",
    "odp_async.shared",
    "odp_async.explore",
    "odp_async.errors",
    "odp_async.snapshot",
    "odp_async.report",
    "odp_async.progress",
    "odp_async.cli",
)

#: Entries of a class's ``__dict__`` that are the class machinery, not its data.
_MACHINERY = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__module__",
        "__doc__",
        "__slots__",
        "__tracked__",
        "__tracked_internal_of__",
        "__annotations__",
        "__attrs_attrs__",
        "__attrs_own_setattr__",
        "__attrs_props__",
        "__attrs_pre_init__",
        "__match_args__",
        "__abstractmethods__",
        "_abc_impl",
        "__orig_bases__",
        "__parameters__",
        "__qualname__",
        "__hash__",
        "__firstlineno__",
        "__static_attributes__",
        "__type_params__",
        "__dataclass_fields__",
        "__dataclass_params__",
    }
)

_DESCRIPTORS = (
    types.MemberDescriptorType,
    types.GetSetDescriptorType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.BuiltinFunctionType,
)

_MISSING = object()


@functools.lru_cache(maxsize=4096)
def trusted(module: str | None) -> bool:
    """Whether code of `module` (a module's name) is trusted, not read."""
    if not module:
        return False
    if module == "odp_async" or module.startswith(_TRUSTED_ODP):
        return True
    return module.split(".", 1)[0] in _TRUSTED_TOP


def library_wrapper(fn: types.FunctionType) -> bool:
    """Whether `fn` is a wrapper made by a library of `_WRAPPER_TOP` (its code's module)."""
    module = fn.__globals__.get("__name__")
    return isinstance(module, str) and module.split(".", 1)[0] in _WRAPPER_TOP


def _reviewed(module: str | None) -> bool:
    """Whether data of `module` (its globals, its classes' attributes) is the model's own:
    odp_async's tables and registries (``PROTOCOLS``, a protocol's ``OPTIONS``) are
    constants after import, by review; its code is still read (a rebinding of a global
    or a class attribute in it is reported)."""
    return bool(module) and (module == "odp_async" or module.startswith("odp_async."))  # type: ignore[union-attr]


def ignore(value: object, label: str) -> None:
    """A judge that judges nothing (a walk between two `track` calls)."""
    pass


def _qual(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class CodeWalk:
    """One walk of the code `track` meets (see the module docstring).

    `judge(value, label)` is `track`'s: it reports `value` (under `label`) when it holds
    state nobody notes and walks what it holds; this walk calls it for every global,
    closure variable and class attribute it reaches, and adds its own findings to
    `reasons`."""

    __slots__ = ("_done", "_judge", "_keep", "_seen", "reasons")

    def __init__(self, judge: Callable[[object, str], None] | None = None) -> None:
        self._judge: Callable[[object, str], None] = judge or ignore
        self._done: set[int] = set()
        self._keep: list[object] = []
        #: Every ``(value, label)`` judged so far, for the next `bind`.
        self._seen: list[tuple[object, str]] = []
        self.reasons: set[str] = set()

    def bind(self, judge: Callable[[object, str], None]) -> None:
        """Judge what is reached from now on with `judge` (a session's walk serves each
        `track` of the session in turn), and, first, every value the walk judged before
        (a global, closure variable or class attribute its code reaches): the code is
        read once per session, but what those values hold is judged by every `track`
        (a plain dict in a tracked object held in a global is reported each time)."""
        self._judge = judge
        if judge is not ignore:
            for value, label in self._seen:
                judge(value, label)

    def _see(self, value: object, label: str) -> None:
        # `_judge`, remembered for the next `bind`.
        self._seen.append((value, label))
        self._judge(value, label)

    def _first(self, obj: object) -> bool:
        if id(obj) in self._done:
            return False
        self._done.add(id(obj))
        self._keep.append(obj)
        return True

    def klass(self, cls: type) -> None:
        """Walk `cls`: its methods as code, its data attributes as values (its MRO)."""
        if not self._first(cls):
            return
        from .tracked import _is_hook, primitive_with_state

        base = primitive_with_state(cls)
        if base is not None:
            self.reasons.add(
                f"{_qual(cls)} (a subclass of {_qual(base)} whose instances keep fields of "
                "their own, in a __dict__ or extra __slots__: the primitive notes only its "
                "own state; give the subclass `__slots__ = ()`, or keep the fields in a "
                "@tracked object)"
            )
        for klass in cls.__mro__:
            if klass is not cls and not self._first(klass):
                continue
            if trusted(getattr(klass, "__module__", None)):
                continue
            own = klass.__dict__
            for name, value in list(own.items()):
                if name in _MACHINERY or _is_hook(value):
                    continue
                dunder = name.startswith("__") and name.endswith("__")
                if isinstance(value, classmethod) and isinstance(
                    value.__func__, types.FunctionType
                ):
                    self.function(value.__func__, first_is_class=True)
                    continue
                if isinstance(value, staticmethod):
                    value = value.__func__
                if isinstance(value, property):
                    for part in (value.fget, value.fset, value.fdel):
                        if part is not None:
                            self.code(part)
                    continue
                if isinstance(value, functools.cached_property):
                    self.code(value.func)
                    continue
                if isinstance(value, types.FunctionType):
                    self.function(value)
                    continue
                if isinstance(value, _DESCRIPTORS) or issubclass(klass, enum.Enum) or dunder:
                    # an enum's members and tables are fixed at its creation; a dunder
                    # datum is Python's or a library's (``__slotnames__``, a cache)
                    continue
                label = f"{klass.__module__}.{klass.__qualname__}.{name} (a class attribute)"
                watch(klass, name, label)
                if not _reviewed(klass.__module__):
                    self._see(value, label)
                    self._side_channel(label, value)
                self.code(value)

    def code(self, value: object) -> None:
        """Walk `value` if it is code (a function, a method, a class)."""
        if isinstance(value, types.FunctionType):
            self.function(value)
        elif isinstance(value, types.MethodType):
            self._see(value.__self__, f"{_qual(value.__func__)}.__self__")
            self.code(value.__func__)
        elif isinstance(value, type):
            self.klass(value)

    def function(self, fn: types.FunctionType, *, first_is_class: bool = False) -> None:
        """Walk `fn`'s code: what it rebinds, what its static chains reach.
        `first_is_class`: `fn` is a class method's (its first argument is a class)."""
        if not self._first(fn):
            return
        code = fn.__code__
        if code.co_filename.startswith("<"):  # generated by a class decorator
            owner = getattr(fn, "__module__", None)
            self._defaults(
                fn, _qual(fn), own_data=_reviewed(owner if isinstance(owner, str) else None)
            )
            wrapped = getattr(fn, "__wrapped__", None)
            if wrapped is not None:
                self.code(wrapped)
            return
        # the module the code was written in (``functools.wraps`` copies the wrapped
        # function's ``__module__`` onto a library's wrapper)
        module = fn.__globals__.get("__name__")
        if trusted(module if isinstance(module, str) else None):
            return
        facts = code_facts(code)
        qual = _qual(fn)
        watch_attrs(fn)
        extra = own_state(fn)
        if extra and not _reviewed(module if isinstance(module, str) else None):
            self.reasons.add(
                f"{qual} (keeps attributes of its own: {', '.join(sorted(extra))}; "
                "a function object's attributes are state the hooks do not see)"
            )
        for name in sorted(facts.global_writes):
            self.reasons.add(f"{qual} (writes the module global {name!r})")
        for name in sorted(facts.deref_writes):
            self.reasons.add(f"{qual} (rebinds {name!r} of its closure)")
        cells: dict[str, object] = {}
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            try:
                cells[name] = cell.cell_contents
            except ValueError:  # an empty cell
                continue
        own_data = _reviewed(module if isinstance(module, str) else None)
        for name, value in cells.items():
            if not own_data:  # the model's own closures (a scenario file's ops): constants
                self._see(value, f"{qual}: {name!r} of its closure")
                self._side_channel(qual, value)
            self.code(value)
        self._hidden_channels(fn, qual, own_data)
        for chain in sorted(facts.loads):
            self._chain(fn, chain, cells, facts.attr_names)
        for owner, attr in sorted(facts.attr_writes):
            if owner[0] == "self":
                # type(self).x, self.__class__.x; cls.x in a class method
                if owner[2] == ("__class__",) or (not owner[2] and first_is_class):
                    self.reasons.add(
                        f"{qual} (writes {attr!r} of {owner[1]}'s class: a class "
                        "attribute, which the hooks do not see)"
                    )
                continue
            target = self._resolve(fn, owner, cells)
            if isinstance(target, (type, types.ModuleType)):
                what = "a class attribute" if isinstance(target, type) else "a module global"
                self.reasons.add(
                    f"{qual} (writes {_name_of(target)}.{attr}: {what}, which the hooks "
                    "do not see)"
                )
            elif isinstance(target, (types.FunctionType, enum.Enum)):
                what = "an enum member"
                if isinstance(target, types.FunctionType):
                    what = "a function object"
                self.reasons.add(
                    f"{qual} (writes {attr!r} of {_qual(target)}: an attribute of {what}, "
                    "which the hooks do not see)"
                )

    def _hidden_channels(self, fn: types.FunctionType, qual: str, own_data: bool) -> None:
        """What `function` adds for the state a function reaches past its globals and
        closure: its default arguments (`_defaults`) and a closure cell reached through
        ``__closure__`` / ``cell_contents`` (`_CELL_NAMES`: a computed access, unknown)."""
        self._defaults(fn, qual, own_data=own_data)
        if not own_data:
            for name, what in _shared_locals(fn):
                self.reasons.add(
                    f"{qual} (shares its local {name!r} ({what}) with the functions it "
                    "defines: state held in a local, which no note sees; keep it in a "
                    "@tracked object, a tracked container or a SharedCell)"
                )
        if not own_data:
            for where, what, how in _escaping_state(fn):
                self.reasons.add(
                    f"{qual} (hands on {what}, {where}, {how}: state made in the function "
                    "that other code (a task) may reach, which no note sees; keep it in a "
                    "@tracked object, a tracked container or a SharedCell)"
                )
        if not own_data:
            for what in _made_at_run_time(fn):
                self.reasons.add(
                    f"{qual} (makes {what} each time it runs: its attributes and defaults "
                    "are state no note sees; define it at module level)"
                )
        if not own_data and _reaches_cells(fn.__code__):
            self.reasons.add(
                f"{qual} (reaches a closure cell through `__closure__` or `cell_contents`: "
                "a cell written past the walk, which the hooks do not see)"
            )

    def _defaults(self, fn: types.FunctionType, qual: str, *, own_data: bool) -> None:
        """Judge `fn`'s default arguments (``__defaults__``, ``__kwdefaults__``) as its
        closure's variables are: a default is made once and shared by every call, so a
        mutable one (``def f(d={})``, ``async def main(acc=Acc())``) is state every task
        calling `fn` shares past the notes (reported: the run loses the promise, sound);
        a value of the allow-list of `odp_async.tracked` (None, numbers, strs, frozen
        records of those, tracked objects, primitives) is not."""
        values = list(fn.__defaults__ or ())
        values.extend((fn.__kwdefaults__ or {}).values())
        for value in values:
            if not own_data:  # the model's own defaults: constants, as its closures
                self._see(value, f"{qual}: a default argument")
                self._side_channel(qual, value)
            self.code(value)

    def _side_channel(self, qual: str, value: object) -> None:
        """Report `value` when it is one of the standard library's side channels
        (`_SIDE_CHANNELS`: the process environment, files, the `random` module's shared
        generator, the clocks)."""
        name = _side_channel_names().get(id(value)) if value is not _MISSING else None
        if name is not None:
            self.reasons.add(
                f"{qual} (uses {name}: state outside the program's objects (the process "
                "environment, a file, the random module's shared generator, the clock), "
                "which no note sees)"
            )

    def _root(self, fn: types.FunctionType, chain: Chain, cells: Mapping[str, object]) -> object:
        kind, base, _ = chain
        if kind == "global":
            found = fn.__globals__.get(base, _MISSING)
            if found is not _MISSING:
                watch(fn.__globals__, base, f"{fn.__globals__.get('__name__', '?')}.{base}")
                return found
            return _MISSING  # a builtin (trusted), or not defined yet
        if kind == "deref":
            return cells.get(base, _MISSING)
        level, _, name = base.partition(":")
        try:
            package = fn.__globals__.get("__package__") or None
            full = importlib.util.resolve_name("." * int(level) + name, package)
        except (ImportError, ValueError, TypeError):
            return _MISSING
        return sys.modules.get(full, _MISSING)

    def _resolve(
        self, fn: types.FunctionType, chain: Chain, cells: Mapping[str, object]
    ) -> object:
        value = self._root(fn, chain, cells)
        for attr in chain[2]:
            value = _static_attr(value, attr)
            if value is _MISSING:
                break
        return value

    def _chain(
        self,
        fn: types.FunctionType,
        chain: Chain,
        cells: Mapping[str, object],
        attr_names: frozenset[str],
    ) -> None:
        kind, base, attrs = chain
        value = self._root(fn, chain, cells)
        module = fn.__globals__.get("__name__")
        user = not _reviewed(module if isinstance(module, str) else None)
        if value is _MISSING:
            if user and kind == "global":  # a builtin (``open``)
                self._side_channel(_qual(fn), _builtin(fn, base))
            return
        label = f"{_qual(fn)}: {base}"
        if user:
            self._side_channel(_qual(fn), value)
            if kind == "import" and not attrs and isinstance(value, types.ModuleType):
                for name in attr_names:  # imported into a local
                    self._side_channel(_qual(fn), value.__dict__.get(name, _MISSING))
        if not _reviewed(module if isinstance(module, str) else None):
            self._see(value, label)
        self.code(value)
        if kind == "import" and not attrs and isinstance(value, types.ModuleType):
            # imported into a local: its attributes are reached through that local
            for name in sorted(attr_names):
                self._module_attr(value, name, label)
        for attr in attrs:
            owner = value
            value = _static_attr(value, attr)
            if value is _MISSING:
                return
            if user:
                self._side_channel(_qual(fn), value)
            label = f"{label}.{attr}"
            where = getattr(owner, "__module__", None)
            if isinstance(owner, types.ModuleType):
                where = owner.__name__
                watch(owner.__dict__, attr, f"{owner.__name__}.{attr}")
            if trusted(where if isinstance(where, str) else None):
                return  # a library's own state (sys.modules, reprlib.repr): its business
            if not _reviewed(where if isinstance(where, str) else None):
                self._see(value, label)
            self.code(value)

    def _module_attr(self, module: types.ModuleType, name: str, label: str) -> None:
        value = module.__dict__.get(name, _MISSING)
        if value is _MISSING or trusted(module.__name__):
            return
        watch(module.__dict__, name, f"{module.__name__}.{name}")
        if not _reviewed(module.__name__):
            self._see(value, f"{label}.{name}")
        self.code(value)


def _name_of(target: type | types.ModuleType) -> str:
    if isinstance(target, type):
        return f"{target.__module__}.{target.__qualname__}"
    return target.__name__


def _static_attr(value: object, attr: str) -> object:
    # `attr` of a module or a class, from their dicts (no code runs); _MISSING for an
    # instance (its fields are noted by its class's hooks, or it was judged) or a miss.
    if isinstance(value, types.ModuleType):
        return value.__dict__.get(attr, _MISSING)
    if isinstance(value, type):
        for klass in value.__mro__:
            if attr in klass.__dict__:
                found = klass.__dict__[attr]
                if isinstance(found, (staticmethod, classmethod)):
                    return found.__func__
                return found
    return _MISSING


#: The standard library's well-known side channels: state kept outside the program's
#: objects (the process environment, files, the `random` module's one shared generator,
#: the clocks), which no note sees and whose value depends on the order the tasks reach
#: it.  A function the walk reaches that names one (``os.environ``, ``from random import
#: choice``, ``open(path)``, ``time.monotonic()``) is reported: the run loses the
#: noted-only promise (sound, not reduced).  A small curated table, not a complete one:
#: sockets, subprocesses, databases and other modules' files stay unseen (README, "What it
#: cannot see").  A generator of one's own (``random.Random(seed)``) is an object: judged
#: as any other.
_SIDE_CHANNELS: dict[str, tuple[str, ...]] = {
    "builtins": ("open", "input"),
    "os": ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv", "open", "fdopen"),
    "io": ("open", "open_code", "FileIO"),
    "pathlib": ("Path", "PosixPath", "WindowsPath"),
    "random": (
        "seed",
        "random",
        "getrandbits",
        "randbytes",
        "randrange",
        "randint",
        "choice",
        "choices",
        "shuffle",
        "sample",
        "uniform",
        "triangular",
        "gauss",
        "normalvariate",
        "lognormvariate",
        "expovariate",
        "vonmisesvariate",
        "gammavariate",
        "betavariate",
        "paretovariate",
        "weibullvariate",
        "getstate",
        "setstate",
    ),
    "time": (
        "time",
        "time_ns",
        "monotonic",
        "monotonic_ns",
        "perf_counter",
        "perf_counter_ns",
        "process_time",
        "process_time_ns",
    ),
}

#: Attribute names through which code reaches a closure's cells (a computed access).
_CELL_NAMES = frozenset({"__closure__", "cell_contents"})


@functools.cache
def _side_channel_names() -> dict[int, str]:
    # id of each object of `_SIDE_CHANNELS` -> its name; the objects are module globals of
    # the standard library (alive for the process: their ids stay theirs).
    found: dict[int, str] = {}
    for module_name, names in _SIDE_CHANNELS.items():
        module = importlib.import_module(module_name)
        for name in names:
            value = module.__dict__.get(name, _MISSING)
            if value is not _MISSING:
                found.setdefault(id(value), f"{module_name}.{name}")
    return found


def _builtin(fn: types.FunctionType, name: str) -> object:
    space = fn.__builtins__ if hasattr(fn, "__builtins__") else None
    if isinstance(space, types.ModuleType):
        space = space.__dict__
    return space.get(name, _MISSING) if isinstance(space, dict) else _MISSING


@functools.lru_cache(maxsize=4096)
def _reaches_cells(code: types.CodeType) -> bool:
    """Whether `code` (or code nested in it) names ``__closure__`` or ``cell_contents``
    (an attribute it loads or stores, or a constant string it passes to ``getattr``)."""
    if not _CELL_NAMES.isdisjoint(code.co_names):
        return True
    for const in code.co_consts:
        if isinstance(const, str) and const in _CELL_NAMES:
            return True
        if isinstance(const, types.CodeType) and _reaches_cells(const):
            return True
    return False


_GENERATORS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
#: Modules of the plain containers (``dict``, ``list``, ``collections.deque``...): their
#: instances take no attributes (`_unnoted_result`).
_CONTAINER_MODULES = frozenset({"builtins", "collections"})


def _shared_locals(fn: types.FunctionType) -> list[tuple[str, str]]:
    """The locals of `fn` (and of the functions nested in it) that its nested functions
    share (``co_cellvars``) and that hold state: rebound by a nested function
    (``nonlocal n; n += 1``), or bound to a call of a class that makes mutable objects
    and that nobody notes (``box = Box()``, ``types.SimpleNamespace(n=0)``,
    ``collections.deque()``, ``dict(n=0)``, ``functools.partial(f, d)``: `_state_class`)
    or of a generator or async generator function, a module's or one defined in `fn`
    (``g = gen()``, a generator expression).  Each as ``(name, what)``.  A container
    display (``results = []``, ``{"n": 0}``) is not judged: a local a task fills and the
    main function reads after the join is the common case (judging it would lose the
    reduction of most programs), and what a local is bound to by any other expression
    (``box = make_box()``, ``obj.gen()``) is not judged either."""
    return _read_once(_SHARED, fn, _shared_locals_read)


def _shared_locals_read(fn: types.FunctionType) -> list[tuple[str, str]]:
    # `_shared_locals`, read.
    found: list[tuple[str, str]] = []
    made = _functions_made(fn.__code__)
    for code in code_tree(fn.__code__):
        cells = set(code.co_cellvars)
        if not cells:
            continue
        rebound = {
            name
            for inner in code_tree(code)[1:]
            for name in _deref_stores(inner)
            if name in cells and name in inner.co_freevars
        }
        found.extend((name, "rebound by a function it defines") for name in sorted(rebound))
        ins = instructions(code)
        for n, op in enumerate(ins):
            if op.opname != "STORE_DEREF" or op.argval not in cells or op.argval in rebound:
                continue
            what = _fresh_state(fn, ins, n, made)
            if what is not None:
                found.append((str(op.argval), what))
    return found


def _escaping_state(fn: types.FunctionType) -> list[tuple[str, str, str]]:
    """The fresh state (`_fresh_state`: a call of a class nobody notes, of a generator
    function) that `fn` (or a function nested in it) makes and hands on, where others
    may reach it: the object the call made, or a local bound to it (``s = Box()``; a
    local a store of such a local binds, ``t = s``, in turn), passed as an argument to
    any call (``tg.start_soon(inc, s)``, ``functools.partial(inc, s)``, ``helper(s)``),
    stored into a container, another object or a variable of a closure (``[s]``,
    ``other.box = s``), returned or yielded, or a bound method of it taken as a value
    (``tg.start_soon(s.run)``: an attribute read not called, whose value is followed
    the same way).  Each as ``(where, what, how)``.  Not handed on: the receiver of an
    attribute read used as a value (``s.n == 2``, ``f"{s.n}"``), of an attribute or item
    write or delete (``s.n = 1``, ``d["n"] = 1``), of a method call (``s.inc()``; what it
    returns is not followed), of an item read (``d["n"]``), a call of the object itself
    (``w()``), an operand of an operator, comparison or test, the iterable of a ``for``
    or ``async for``, an exception raised, what ``await`` runs (``await gen()``: this
    task drives it) and an argument of a builtin that keeps none (`_KEEPS_NOTHING`:
    ``len(d)``, ``sum(x for x in xs)``).  Whatever else the code does with it (a
    shape `_flow` does not read: ``with s``) counts as handed on (conservative: the
    reduction is lost, the verdict stays sound).  A local shared through the closures
    of the functions `fn` defines is `_shared_locals`'s."""
    return _read_once(_ESCAPING, fn, _escaping_state_read)


R = TypeVar("R")

#: Per reading (`_shared_locals`, `_escaping_state`, `_made_at_run_time`): code -> (what
#: it depends on besides the code when read, held as `_held` holds them; the reading).
_MemoTable = dict[types.CodeType, tuple[list[object], R]]
_SHARED: _MemoTable[list[tuple[str, str]]] = {}
_ESCAPING: _MemoTable[list[tuple[str, str, str]]] = {}
_MADE: _MemoTable[list[str]] = {}


def _read_once(
    table: _MemoTable[R], fn: types.FunctionType, read: Callable[[types.FunctionType], R]
) -> R:
    """`read(fn)`, read once per code object while what else it depends on stays the
    same objects: the values of the globals the code names (the callees it judges) and
    the function's name (in what it reports).  A walk outside a session reads the main
    function at every run of a search: without this, most of a noted-only run's time."""
    space = fn.__globals__
    now: list[object] = [fn.__module__, fn.__qualname__]
    now.extend(space.get(name, _MISSING) for name in _global_names(fn.__code__))
    kept = table.get(fn.__code__)
    if kept is not None and _same_values(kept[0], now):
        return kept[1]
    found = read(fn)
    if len(table) >= 4096:
        table.clear()
    table[fn.__code__] = (list(map(_held, now)), found)
    return found


def _held(value: object) -> object:
    # A weak reference to `value` where it takes one, else `value` in a 1-tuple (a tuple
    # takes no weak reference, so the two never mix): a memo that held a user module's
    # classes would keep them, and their hooks, alive after the module is gone.
    try:
        return weakref.ref(value)
    except TypeError:
        return (value,)


def _same_values(kept: list[object], now: list[object]) -> bool:
    # Whether the values `kept` holds (`_held`) are `now`'s, one by one, by identity.
    if len(kept) != len(now):
        return False
    for held, value in zip(kept, now, strict=True):
        if type(held) is tuple:
            if held[0] is not value:
                return False
        # A weakly held value was not None: a dead reference's None matches nothing.
        elif value is None or held() is not value:  # type: ignore[operator]
            return False
    return True


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    # The names `code` (or code nested in it) may load as globals.
    return tuple(sorted({name for inner in code_tree(code) for name in inner.co_names}))


def _escaping_state_read(fn: types.FunctionType) -> list[tuple[str, str, str]]:
    # `_escaping_state`, read.
    found: list[tuple[str, str, str]] = []
    made = _functions_made(fn.__code__)
    for code in code_tree(fn.__code__):
        ins = instructions(code)
        if "CALL" not in {op.opname for op in ins}:
            continue
        at = {op.offset: i for i, op in enumerate(ins)}
        judged: set[str] = set()
        reported: set[tuple[str, str]] = set()
        work: list[tuple[int, str, str]] = []
        for k, op in enumerate(ins):
            if op.opname == "CALL" and k + 1 < len(ins):
                if ins[k + 1].opname == "STORE_DEREF":
                    continue  # a local shared through closures: `_shared_locals`'s
                what = _fresh_state(fn, ins, k + 1, made)
                if what is not None:
                    work.append((k + 1, what, "made by a call"))

        def keeps_nothing(
            p: int, ins: Sequence[dis.Instruction] = ins, code: types.CodeType = code
        ) -> bool:
            # whether the call whose PRECALL is at `p` is of a builtin keeping none of
            # its arguments (``len(d)``, ``sum(x for x in xs)``)
            if p + 2 >= len(ins) or ins[p + 1].opname != "CALL":
                return False
            rule = _keeps_nothing().get(id(_callee(fn, ins, p + 2)))
            if rule is None:
                return False
            most, keywords = rule
            names: tuple[str, ...] = ()
            if p and ins[p - 1].opname == "KW_NAMES":  # 3.11's dis leaves its argval unknown
                names = tuple(code.co_consts[int(ins[p - 1].arg or 0)])
            positional = int(ins[p].arg or 0) - len(names)
            return (most is None or positional <= most) and set(names) <= keywords

        while work:
            i, what, where = work.pop()
            how, aliases = _flow(ins, at, i, keeps_nothing)
            if how is not None and (where, what) not in reported:
                reported.add((where, what))
                found.append((where, what, how))
            for name in sorted(aliases - judged):
                judged.add(name)
                for k, op in enumerate(ins):
                    if op.opname == "LOAD_FAST" and op.argval == name:
                        work.append((k + 1, what, f"held in its local {name!r}"))
    return found


#: Instructions (CPython 3.11) that take nothing from the stack and push one value.
_PUSH_ONE = frozenset(
    {"LOAD_CONST", "LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_CLASSDEREF", "LOAD_NAME",
     "LOAD_ASSERTION_ERROR", "PUSH_NULL"}
)  # fmt: skip
#: Instructions that leave the stack as it is.
_NO_STACK = frozenset({"NOP", "RESUME", "KW_NAMES", "EXTENDED_ARG", "MAKE_CELL", "CALL"})
#: Instructions that take the value on top as an operand and keep nothing of it (a
#: test, a conversion to a string, the iterable of a ``for``), with how many they take.
_OPERANDS: dict[str, int] = {
    "POP_TOP": 1,
    "UNARY_NOT": 1,
    "UNARY_NEGATIVE": 1,
    "UNARY_POSITIVE": 1,
    "UNARY_INVERT": 1,
    "GET_ITER": 1,
    "GET_AITER": 1,
    "GET_AWAITABLE": 1,
    "DELETE_ATTR": 1,
    "POP_JUMP_FORWARD_IF_TRUE": 1,
    "POP_JUMP_FORWARD_IF_FALSE": 1,
    "POP_JUMP_FORWARD_IF_NONE": 1,
    "POP_JUMP_FORWARD_IF_NOT_NONE": 1,
    "POP_JUMP_BACKWARD_IF_TRUE": 1,
    "POP_JUMP_BACKWARD_IF_FALSE": 1,
    "POP_JUMP_BACKWARD_IF_NONE": 1,
    "POP_JUMP_BACKWARD_IF_NOT_NONE": 1,
    "BINARY_OP": 2,
    "COMPARE_OP": 2,
    "IS_OP": 2,
    "CONTAINS_OP": 2,
    "BINARY_SUBSCR": 2,
    "DELETE_SUBSCR": 2,
}
#: Instructions after which the path ends (the value, still on the stack, is dropped).
_PATH_ENDS = frozenset({"RETURN_VALUE", "RAISE_VARARGS", "RERAISE"})
#: How far `_flow` follows a value (instructions, over every path).
_FLOW_STEPS = 2000


#: Builtins that keep none of their arguments: a call of one hands nothing on (it may
#: run the object's code, read as any other).  Not ``iter``, ``getattr``, ``enumerate``,
#: ``zip``, ``map``, ``filter``, ``reversed``: what they return holds the argument.
#: Builtins whose result never is, nor holds, one of their arguments itself, by the most
#: positional arguments for which that holds (None: any number) and the keywords they
#: may be given.  ``max(w1, w2)``, ``min(xs, default=d)``, ``next(it, d)``, ``sum(xs, s)``
#: return an argument; ``abs(x)`` is ``x.__abs__()``, which may be ``x``; ``dict(n=w)``
#: holds ``w``: none of those keeps the promise.
_KEEPS_NOTHING: dict[str, tuple[int | None, frozenset[str]]] = {
    **dict.fromkeys(
        ("len", "isinstance", "issubclass", "id", "repr", "str", "hash", "bool", "all",
         "any", "callable", "format", "hasattr", "int", "float"),
        (None, frozenset()),
    ),
    "print": (None, frozenset({"sep", "end", "file", "flush"})),
    "type": (1, frozenset()),
    "sum": (1, frozenset()),
    "next": (1, frozenset()),
    "min": (1, frozenset({"key"})),
    "max": (1, frozenset({"key"})),
    **dict.fromkeys(("list", "tuple", "set", "frozenset", "dict"), (1, frozenset())),
    "sorted": (1, frozenset({"key", "reverse"})),
}  # fmt: skip


@functools.cache
def _keeps_nothing() -> dict[int, tuple[int | None, frozenset[str]]]:
    import builtins

    return {id(getattr(builtins, name)): rule for name, rule in _KEEPS_NOTHING.items()}


def _flow(
    ins: Sequence[dis.Instruction],
    at: Mapping[int, int],
    start: int,
    keeps_nothing: Callable[[int], bool],
) -> tuple[str | None, set[str]]:
    """Follow the value pushed just before `start` (CPython 3.11) along every path until
    each takes it: ``(how, aliases)``, `how` None when no path hands it on, else how the
    first one does (``passed to a call``...); `aliases` the locals it is stored to (their
    loads are followed in turn).  `keeps_nothing(p)`: whether the call whose PRECALL is
    at `p` keeps none of its arguments.  A shape not read counts as handed on."""
    aliases: set[str] = set()
    seen: set[tuple[int, int]] = set()
    # (index, values above it on the stack)
    work = [(start, 0)]
    steps = 0
    while work:
        i, h = work.pop()
        if (i, h) in seen:
            continue
        seen.add((i, h))
        steps += 1
        if i >= len(ins) or steps > _FLOW_STEPS or h > 64:
            return "in code not read", aliases
        op = ins[i]
        name, arg = op.opname, int(op.arg or 0)
        if name in _PUSH_ONE:
            work.append((i + 1, h + 1))
        elif name == "LOAD_GLOBAL":
            work.append((i + 1, h + 1 + (arg & 1)))
        elif name in _NO_STACK:
            work.append((i + 1, h))
        elif name == "RAISE_VARARGS" or (name in _PATH_ENDS and h >= 1):
            continue  # raised (``raise Error()``: an exception, not shared state)
        elif name == "LOAD_ATTR":  # a bound method perhaps: its value is followed
            work.append((i + 1, h))
        elif name == "LOAD_METHOD":
            if h == 0:
                continue  # the receiver of a method call
            work.append((i + 1, h + 1))
        elif name == "STORE_ATTR":
            if h == 1:
                return "stored into an attribute of another object", aliases
            if h > 1:
                work.append((i + 1, h - 2))
        elif name == "STORE_SUBSCR":
            if h in (0, 2):
                return "stored into a container", aliases
            if h > 2:
                work.append((i + 1, h - 3))
        elif name == "FORMAT_VALUE":
            taken = 2 if arg & 0x04 else 1
            if h >= taken:
                work.append((i + 1, h - taken + 1))
        elif name in _OPERANDS:
            taken = _OPERANDS[name]
            if h >= taken:
                pushed = 0 if name in ("POP_TOP", "DELETE_ATTR", "DELETE_SUBSCR") else 1
                if name.startswith("POP_JUMP"):
                    pushed = 0
                    work.append((at[op.argval], h - taken))
                work.append((i + 1, h - taken + pushed))
        elif name == "PRECALL":
            if h < arg:
                if keeps_nothing(i):
                    continue
                return "passed to a call", aliases
            if h > arg + 1:
                work.append((i + 1, h - arg - 1))
            elif h == arg + 1:
                return "called with what the call passes it", aliases
            # h == arg: the object itself is called (``w()``, ``s.run()`` read as a
            # value first); CPython 3.11 puts a value there that the call passes only
            # for a method's receiver (LOAD_METHOD, taken above), the iterable of a
            # comprehension (GET_ITER, above) and a decorated function (never fresh)
        elif name == "STORE_FAST":
            if h == 0:
                aliases.add(str(op.argval))
            else:
                work.append((i + 1, h - 1))
        elif name in ("JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT"):
            work.append((at[op.argval], h))
        elif name in ("JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP"):
            work.append((at[op.argval], h))
            if h:
                work.append((i + 1, h - 1))
        elif name == "FOR_ITER":
            if h == 0:
                return "in code not read", aliases
            work.append((i + 1, h + 1))
            work.append((at[op.argval], h - 1))
        elif name == "CALL_FUNCTION_EX":  # NULL, the callable, a tuple, a dict if arg & 1
            taken = 1 + (arg & 1)
            if h < taken:
                return "passed to a call", aliases
            if h > taken + 1:
                work.append((i + 1, h - taken - 1))
            elif h == taken + 1:
                return "called with what the call passes it", aliases
            # h == taken: the object itself is called (``super().__init__(**options)``)
        elif name in ("DICT_MERGE", "DICT_UPDATE", "LIST_EXTEND", "SET_UPDATE"):
            if h:  # else its items are copied (``f(**d)``, ``[*q]``): not followed
                work.append((i + 1, h - 1))
        elif name in ("LIST_APPEND", "SET_ADD", "MAP_ADD"):
            taken = 2 if name == "MAP_ADD" else 1
            if h < taken:
                return "stored into a container", aliases
            work.append((i + 1, h - taken))
        elif name == "MAKE_FUNCTION":  # the code, and a value per flag under it
            taken = 1 + bin(arg & 0x0F).count("1")
            if h < taken:
                return "stored into a function's defaults or closure", aliases
            work.append((i + 1, h - taken + 1))
        elif name == "GET_LEN":  # ``match``: its length pushed over it
            work.append((i + 1, h + 1))
        elif name == "LIST_TO_TUPLE":  # a copy of a list the code built
            if h:
                work.append((i + 1, h))
        elif name == "BUILD_SLICE":
            if h < arg:
                return "stored into a container", aliases
            work.append((i + 1, h - arg + 1))
        elif name == "UNPACK_SEQUENCE":  # its items are read from it, not followed
            if h:
                work.append((i + 1, h - 1 + arg))
        elif name in ("BUILD_STRING", "BUILD_TUPLE", "BUILD_LIST", "BUILD_SET"):
            if h < arg:
                return "stored into a container", aliases
            work.append((i + 1, h - arg + 1))
        elif name == "BUILD_MAP":
            if h < 2 * arg:
                return "stored into a container", aliases
            work.append((i + 1, h - 2 * arg + 1))
        else:
            return {
                "RETURN_VALUE": "returned",
                "YIELD_VALUE": "yielded",
                "STORE_DEREF": "stored into a variable of a closure",
                "STORE_GLOBAL": "stored into a module global",
                "BUILD_CONST_KEY_MAP": "stored into a container",
            }.get(name, f"used in a shape the walk does not read ({name})"), aliases
    return None, aliases


@functools.lru_cache(maxsize=4096)
def _functions_made(code: types.CodeType) -> Mapping[str, list[types.CodeType]]:
    """The names that `code` (or code nested in it) binds to a function it defines right
    there (``def acc(): ...``, no decorator), each with the code of every such function
    (a name bound in two scopes has both: judged as either)."""
    made: dict[str, list[types.CodeType]] = {}
    for inner in code_tree(code):
        ins = instructions(inner)
        for k, op in enumerate(ins):
            if (
                op.opname == "MAKE_FUNCTION"
                and k + 1 < len(ins)
                and ins[k + 1].opname in ("STORE_FAST", "STORE_DEREF")
                and isinstance(ins[k - 1].argval, types.CodeType)
            ):
                made.setdefault(str(ins[k + 1].argval), []).append(ins[k - 1].argval)
    return made


def _made_at_run_time(fn: types.FunctionType) -> list[str]:
    """What `fn` (or a function nested in it) makes at run time that can hold state past
    the notes: a class (``class Box: n = 0`` in a function; its class attributes are not
    those the walk reads at the start), a function whose defaults are built at run time
    (``def store(d={})`` in a function: a fresh dict per call of the outer function, shared
    by every task calling the inner one; ``kw-only`` defaults always), a function given
    an attribute (``store.box = ...``), and a callable made by wrapping a function made
    there, kept in a variable: a decorated nested function (``@functools.lru_cache``,
    ``@functools.wraps(g)``, ``@staticmethod``: a cache, a wrapper's or a method
    object's attributes), or a call given such a function as an argument
    (``functools.cache(g)``, ``staticmethod(g)``, ``functools.partial(g, {})``; any
    function made there that the statement loads, when the arguments branch).  Defaults
    that are one constant tuple of immutable values are not state.  Static, and
    conservative: a shape it cannot read is reported."""
    return _read_once(_MADE, fn, _made_at_run_time_read)


def _made_at_run_time_read(fn: types.FunctionType) -> list[str]:
    # `_made_at_run_time`, read.
    found: list[str] = []
    stores = ("STORE_FAST", "STORE_DEREF")
    for code in code_tree(fn.__code__):
        ins = instructions(code)
        made: set[str] = set()
        # names bound to a call's result that may keep attributes no note sees
        called: set[str] = set()
        for k, op in enumerate(ins):
            if (
                op.opname in stores
                and k
                and ins[k - 1].opname == "CALL"
                and _unnoted_result(fn, ins, k)
            ):
                called.add(str(op.argval))
            if op.opname == "LOAD_BUILD_CLASS":
                found.append(f"a class ({code.co_qualname})")
            elif op.opname == "MAKE_FUNCTION":
                if k + 1 < len(ins) and ins[k + 1].opname in stores:
                    made.add(str(ins[k + 1].argval))
                else:
                    kept = _kept_after_calls(ins, k + 1)
                    if kept is not None:
                        found.append(f"a decorated function {kept!r} ({code.co_qualname})")
                if not _constant_defaults(ins, k):
                    found.append(
                        f"a function with defaults built at run time ({code.co_qualname})"
                    )
        for k, op in enumerate(ins):
            if (
                op.opname == "STORE_ATTR"
                and k
                and ins[k - 1].opname in ("LOAD_FAST", "LOAD_DEREF")
                and str(ins[k - 1].argval) in made
            ):
                found.append(f"a function given the attribute {op.argval!r} ({code.co_qualname})")
            elif (
                op.opname == "STORE_ATTR"
                and k
                and ins[k - 1].opname in ("LOAD_FAST", "LOAD_DEREF")
                and str(ins[k - 1].argval) in called
            ):
                found.append(
                    f"an object given the attribute {op.argval!r}, made by a call "
                    f"({code.co_qualname})"
                )
            elif op.opname == "PRECALL" and k + 2 < len(ins) and ins[k + 2].opname in stores:
                spans = _arguments(ins, k, int(op.arg or 0))
                if spans is None:  # not read: any function the statement loads
                    spans = [(i, i + 1) for i in range(_statement_start(ins, k), k)]
                wrapped = [
                    str(ins[a].argval)
                    for a, b in spans
                    if b == a + 1
                    and ins[a].opname in ("LOAD_FAST", "LOAD_DEREF")
                    and str(ins[a].argval) in made
                ]
                if wrapped:
                    found.append(
                        f"a wrapper of the function {wrapped[0]!r}, kept as "
                        f"{ins[k + 2].argval!r} ({code.co_qualname})"
                    )
    return found


def _kept_after_calls(ins: Sequence[dis.Instruction], k: int) -> str | None:
    # The name a value pushed just before `k` is stored to after one or more calls that
    # take it as their last argument (CPython 3.11: PRECALL n, CALL n, ...; a decorator
    # stack), or None.
    called = False
    while k + 1 < len(ins) and ins[k].opname == "PRECALL" and ins[k + 1].opname == "CALL":
        called = True
        k += 2
    if called and k < len(ins) and ins[k].opname in ("STORE_FAST", "STORE_DEREF"):
        return str(ins[k].argval)
    return None


def _constant_defaults(ins: Sequence[dis.Instruction], k: int) -> bool:
    # The MAKE_FUNCTION at `k` (CPython 3.11): flags 0x01 defaults, 0x02 kw-only defaults,
    # 0x04 annotations, 0x08 closure; pushed in that order, then the code object.
    flags = int(ins[k].arg or 0)
    if not flags & 0x03:
        return True
    if flags & 0x06:
        return False  # kw-only defaults (a dict built at run time), or a shape not read
    j = k - 2  # past the code object's LOAD_CONST
    if flags & 0x08:
        if j < 0 or ins[j].opname != "BUILD_TUPLE":
            return False
        j -= 1 + int(ins[j].arg or 0)  # past the closure's LOAD_CLOSUREs
    if j < 0 or ins[j].opname != "LOAD_CONST" or not isinstance(ins[j].argval, tuple):
        return False
    return all(isinstance(v, (type(None), bool, int, float, str, bytes)) for v in ins[j].argval)


@functools.lru_cache(maxsize=4096)
def _deref_stores(code: types.CodeType) -> frozenset[str]:
    return frozenset(
        str(op.argval) for op in instructions(code) if op.opname in ("STORE_DEREF", "DELETE_DEREF")
    )


def _unnoted_result(fn: types.FunctionType, ins: Sequence[dis.Instruction], n: int) -> bool:
    """Whether the call whose result the store at `n` keeps may make an object whose
    attribute writes no note sees: anything but an instance of a class known to note
    them (a `@tracked` class, a primitive, a `SharedCell`), a plain container (no
    attributes to write) or a class (``type(self)``: class attributes are watched).  A
    callee it cannot name counts as such (conservative)."""
    callee = _callee(fn, ins, n)
    if not isinstance(callee, type):
        return True
    if issubclass(callee, type):  # ``owner = type(self)``: a class, its attributes watched
        return False
    if callee.__module__ in _CONTAINER_MODULES:  # no attributes to give, but for a
        return bool(callee.__dictoffset__)  # ``staticmethod(f)``: it has a __dict__
    return _state_class(callee, int(ins[n - 1].argval or 0))


#: How far back `_arguments` reads a call's arguments (instructions).
_SCAN = 400


def _arguments(ins: Sequence[dis.Instruction], p: int, count: int) -> list[tuple[int, int]] | None:
    """The spans ``(start, end)`` of the `count` values pushed just before `p` (CPython
    3.11: a call's arguments before its PRECALL, a ``KW_NAMES`` among them), first
    value first, read backward by stack effect; None when that code is not straight
    (a jump or a jump target in it: ``f(a if c else b)``) or not read."""
    end = p
    if end and ins[end - 1].opname == "KW_NAMES":
        end -= 1
    spans: list[tuple[int, int]] = []
    depth = 0
    i = end
    while len(spans) < count:
        i -= 1
        if i < 0 or end - i > _SCAN:
            return None
        op = ins[i]
        if op.is_jump_target or op.opcode in dis.hasjrel or op.opcode in dis.hasjabs:
            return None
        try:
            arg = op.arg if op.opcode >= dis.HAVE_ARGUMENT else None
            depth += dis.stack_effect(op.opcode, arg, jump=False)
        except ValueError:
            return None
        if depth > len(spans) + 1:
            return None
        if depth == len(spans) + 1:
            spans.append((i, end))
            end = i
    if end < len(ins) and ins[end].is_jump_target:
        return None  # what comes before the values is not one path
    spans.reverse()
    return spans


#: Instructions that end a statement (what comes after them starts another).
_STATEMENT_ENDS = frozenset(
    {"STORE_FAST", "STORE_DEREF", "STORE_GLOBAL", "STORE_NAME", "STORE_ATTR", "STORE_SUBSCR",
     "POP_TOP", "RETURN_VALUE"}
)  # fmt: skip


def _statement_start(ins: Sequence[dis.Instruction], k: int) -> int:
    # The first instruction after the last statement's end before `k`.
    i = k
    while i > 0 and ins[i - 1].opname not in _STATEMENT_ENDS and k - i < _SCAN:
        i -= 1
    return i


#: Instructions after which the next one does not run.
_NO_FALLTHROUGH = frozenset(
    {"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "RETURN_VALUE",
     "RAISE_VARARGS", "RERAISE"}
)  # fmt: skip


def _callee_end(ins: Sequence[dis.Instruction], p: int, count: int) -> int | None:
    """The index of the last instruction pushing the callee of the PRECALL at `p`
    (CPython 3.11: two slots, then `count` arguments), found by the stack depth before
    each instruction of the statement, every path followed (``Box(a if c else b)``,
    ``Box(await load())``): the callee's slots are the two the statement pushes first,
    kept under everything up to `p`.  None when that is not read."""
    start = _statement_start(ins, p)
    at = {op.offset: i for i, op in enumerate(ins)}
    depth = {start: 0}
    work = [start]
    while work:
        i = work.pop()
        if i >= p:
            continue
        op = ins[i]
        arg = op.arg if op.opcode >= dis.HAVE_ARGUMENT else None
        nexts: list[tuple[int | None, bool]] = []
        if op.opcode in dis.hasjrel or op.opcode in dis.hasjabs:
            nexts.append((at.get(op.argval), True))
        if op.opname not in _NO_FALLTHROUGH:
            nexts.append((i + 1, False))
        for k, jump in nexts:
            try:
                after = depth[i] + dis.stack_effect(op.opcode, arg, jump=jump)
            except ValueError:
                return None
            if k is None or not start <= k <= p or after < 0:
                return None
            if k in depth:
                if depth[k] != after:
                    return None
                continue
            depth[k] = after
            work.append(k)
    if depth.get(p) != 2 + count or any(i not in depth for i in range(start, p + 1)):
        return None
    first = next(i for i in range(start, p + 1) if depth[i] >= 2)
    if depth[first] != 2 or any(depth[i] < 2 for i in range(first, p + 1)):
        return None
    end = first - 1  # pushed the callee's second slot; an attribute chain may follow
    while end + 1 < p and ins[end + 1].opname == "LOAD_ATTR":
        end += 1
    return end if end >= start else None


def _callee(
    fn: types.FunctionType,
    ins: Sequence[dis.Instruction],
    n: int,
    made: Mapping[str, list[types.CodeType]] | None = None,
) -> object:
    # What the CALL just before the store at `n` calls: an object named by a global and
    # attribute chain (``Box``, ``mymod.Box``); the code of a function defined in the
    # function (a name in `made`: ``acc()``; a generator expression's, called on its
    # iterable); else `_MISSING`.
    before = ins[n - 1]
    if before.opname != "CALL" or n < 2 or ins[n - 2].opname != "PRECALL":
        return _MISSING
    p = n - 2
    if not before.argval and p and ins[p - 1].opname == "GET_ITER":
        # a generator expression (CPython 3.11): MAKE_FUNCTION, its iterable, GET_ITER
        spans = _arguments(ins, p - 1, 1)
        j = spans[0][0] - 1 if spans else -1
        if spans is None:  # an iterable that branches: the statement's first function
            k = _statement_start(ins, p)
            while k < p and ins[k].opname in (
                "RESUME",
                "LOAD_CLOSURE",
                "BUILD_TUPLE",
                "LOAD_CONST",
            ):
                k += 1
            j = k
        if j > 0 and ins[j].opname == "MAKE_FUNCTION":
            code = ins[j - 1].argval
            return code if isinstance(code, types.CodeType) else _MISSING
        return _MISSING
    spans = _arguments(ins, p, int(before.argval or 0))
    if spans is not None:
        j = spans[0][0] - 1 if spans else p - 1
    else:  # arguments that branch or wait: follow the statement's stack
        end = _callee_end(ins, p, int(before.argval or 0))
        if end is None:
            return _MISSING
        j = end
    if j >= 0 and ins[j].opname in ("LOAD_FAST", "LOAD_DEREF"):
        codes = (made or {}).get(str(ins[j].argval), [])
        # a generator function among them first (judged as either: conservative)
        codes = sorted(codes, key=lambda c: not c.co_flags & _GENERATORS)
        return codes[0] if codes else _MISSING
    names: list[str] = []
    while j >= 0 and ins[j].opname in ("LOAD_ATTR", "LOAD_METHOD"):
        names.append(str(ins[j].argval))
        j -= 1
    if j < 0 or ins[j].opname != "LOAD_GLOBAL":
        return _MISSING
    callee = fn.__globals__.get(str(ins[j].argval), _MISSING)
    if callee is _MISSING:
        callee = _builtin(fn, str(ins[j].argval))
    for name in reversed(names):
        callee = _static_attr(callee, name)
    return callee


def _fresh_state(
    fn: types.FunctionType,
    ins: Sequence[dis.Instruction],
    n: int,
    made: Mapping[str, list[types.CodeType]],
) -> str | None:
    """What the store at `n` (or whatever takes the value the CALL just before `n`
    pushed) binds, when it is fresh state: a call of a class
    that makes mutable objects nobody notes (`_state_class`), or of a generator or async
    generator function (a module's, or one defined in `fn`: `made`; a generator
    expression)."""
    callee = _callee(fn, ins, n, made) if n else _MISSING
    if isinstance(callee, types.CodeType):
        if callee.co_flags & _GENERATORS:
            return f"a generator of {callee.co_qualname}, defined in {_qual(fn)}"
        return None
    if isinstance(callee, types.FunctionType):
        if callee.__code__.co_flags & _GENERATORS:
            return f"a generator of {_qual(callee)}"
        return None
    if isinstance(callee, type) and _state_class(callee, int(ins[n - 1].argval or 0)):
        return f"a {callee.__module__}.{callee.__qualname__}"
    return None


#: Classes whose instances are values: a call of one makes no state (``n = int(0)``,
#: ``t = tuple(xs)``); exactly these, not their subclasses.  Small and explicit.
_IMMUTABLE: frozenset[type] = frozenset(
    {
        int,
        float,
        complex,
        bool,
        str,
        bytes,
        tuple,
        frozenset,
        range,
        type(None),
        object,
        fractions.Fraction,
        decimal.Decimal,
    }
)


def _state_class(cls: type, argc: int) -> bool:
    # Whether a call of `cls` (with `argc` arguments) makes state nobody notes: any class
    # but those making values (`_IMMUTABLE`; a frozen attrs or dataclass record), the
    # ones noting their own state (a `@tracked` class, a tracked container, a primitive
    # or a SharedCell that keeps no fields of its own, the runtime's objects) and
    # ``type(x)`` (a class: its attributes are watched).  A library's class is no
    # exception (``deque``, ``types.SimpleNamespace``, ``functools.partial``: their
    # instances hold state).
    from . import tracked

    if cls in _IMMUTABLE or cls is super:  # ``super()``: a view of an object judged itself
        return False
    if tracked._is_frozen_dataclass(cls) or (attrs.has(cls) and tracked._is_frozen(cls)):
        return False  # a frozen record: fields set once, by the call
    if issubclass(cls, type):
        return argc != 1  # ``type(name, bases, ns)`` makes a class no walk read
    info = getattr(cls, "__tracked__", None)
    if isinstance(info, tracked._Tracking) and info.cls is cls:
        return False
    if issubclass(cls, tracked._primitives()):
        return tracked.primitive_with_state(cls) is not None
    if cls in tracked._CONTAINERS or "__tracked_internal_of__" in cls.__dict__:
        return False
    return not cls.__module__.startswith("odp_async._runtime")


# --- the watch ---------------------------------------------------------------------------

#: (id of the owner, name) -> (the owner: a class or a module's dict, name, label).
_WATCHED: dict[tuple[int, str], tuple[object, str, str]] = {}
#: The values at the session's start (or when first watched in it).
_VALUES: dict[tuple[int, str], object] = {}
#: What `run_ends` compares after every run, in `_WATCHED`'s order, one entry per value
#: taken: ``(get, name, before, owner)``, `get` the bound ``get`` of the owner's live
#: namespace (a class's ``__dict__`` view, a module's dict), or None for the names of an
#: owner's own attributes (`_ATTRS`, compared by value).  Built as the values are taken:
#: a run's check is one call per watched name, nothing looked up again.
_CHECKS: list[tuple[Callable[[str, object], object] | None, str, object, object]] = []
_OPEN = [False]
_CHANGED: list[str] = []
#: Whether a run of the session ran under the noted-only promise (`promise_taken`): only
#: then do its steps rest on the notes alone, and a change nobody noted matters.
_TAKEN = [False]


def promise_taken() -> None:
    """A run of the open session runs under the noted-only promise."""
    _TAKEN[0] = True


#: The name under which `watch_attrs` watches an object's own attributes as a whole.
_ATTRS = "<own attributes>"

#: What Python, enum and functools put in a function's or an enum member's own
#: ``__dict__`` (`own_state` leaves them out).
_VALUE_MACHINERY = frozenset(
    {
        "__wrapped__",
        "__tracked_init__",
        "__signature__",
        "__isabstractmethod__",
        "_value_",
        "_name_",
        "__objclass__",
        "_sort_order_",
        "__no_type_check__",
        "__deprecated__",
        "__final__",
        "__override__",
    }
)


def _class_data(cls: type) -> frozenset[str]:
    # The names of `cls`'s own data attributes (not code, descriptors or machinery).
    return frozenset(
        name
        for name, value in list(cls.__dict__.items())
        if name not in _MACHINERY
        and not (name.startswith("__") and name.endswith("__"))
        and not isinstance(
            value,
            (
                types.FunctionType,
                classmethod,
                staticmethod,
                property,
                functools.cached_property,
                *_DESCRIPTORS,
            ),
        )
    )


def own_state(value: object) -> frozenset[str]:
    """The names of the attributes `value` (a function object, an enum member, an
    instance of a tuple subclass) keeps in its own ``__dict__`` beyond what Python, enum
    and functools put there: state a program may share past every note
    (``func.count = 1``, ``Mode.A.count = 1``); for a class, its own data attributes."""
    if isinstance(value, type):
        return _class_data(value)
    try:
        space = object.__getattribute__(value, "__dict__")
    except AttributeError:
        return frozenset()
    if not isinstance(space, dict) or not space:
        return frozenset()
    return frozenset(name for name in space if name not in _VALUE_MACHINERY)


def has_own_state(value: object) -> bool:
    """Whether `own_state` of `value` (not a class) is not empty; cheaper (every read of
    an enum member or a function from a tracked field asks)."""
    try:
        space = object.__getattribute__(value, "__dict__")
    except AttributeError:
        return False
    if not isinstance(space, dict):
        return False
    machinery = _VALUE_MACHINERY
    return any(name not in machinery for name in space)


def _read(owner: object, name: str) -> object:
    if name is _ATTRS:
        return own_state(owner)
    space = owner.__dict__ if isinstance(owner, type) else owner
    return space.get(name, _MISSING)  # type: ignore[attr-defined]


def _take(key: tuple[int, str], owner: object, name: str) -> None:
    # The value watched under `key` now (the session's start, or when first watched in
    # an open session), and the check `run_ends` makes of it.
    before = _VALUES[key] = _read(owner, name)
    if name is _ATTRS:
        _CHECKS.append((None, name, before, owner))
    else:
        space = owner.__dict__ if isinstance(owner, type) else owner
        _CHECKS.append((space.get, name, before, owner))  # type: ignore[attr-defined]


def watch_attrs(value: object) -> None:
    """Watch the names of `value`'s own attributes (`own_state`: a function object, an
    enum member) for the rest of the session: an attribute added or deleted during a
    run (``func.count = 0`` where there was none) is a change nobody noted."""
    key = (id(value), _ATTRS)
    if key in _WATCHED:
        return
    if isinstance(value, enum.Enum):
        label = f"the attributes of {_qual(type(value))}.{value.name} (an enum member)"
    elif isinstance(value, types.FunctionType):
        label = f"the attributes of {_qual(value)} (a function object)"
    elif isinstance(value, type):
        label = f"the class attributes of {_qual(value)} (a class)"
    else:
        label = f"the attributes of a {_qual(type(value))} value"
    _WATCHED[key] = (value, _ATTRS, label)
    if _OPEN[0]:
        _take(key, value, _ATTRS)


def watch_class(cls: type) -> None:
    """Watch `cls` (a class handed out by a tracked field or container, perhaps made
    during the run, so no walk reached it) for the rest of the session: the names of
    its data attributes and of its bases' (one added or deleted during a run), and each
    one's value (by identity), as for a class the walk reached.  Classes of trusted code
    and enum classes (fixed at their creation) are not watched."""
    if (id(cls), _ATTRS) in _WATCHED or trusted(getattr(cls, "__module__", None)):
        return
    for klass in cls.__mro__:
        if trusted(getattr(klass, "__module__", None)) or issubclass(klass, enum.Enum):
            continue
        watch_attrs(klass)
        for name in _class_data(klass):
            watch(klass, name, f"{_qual(klass)}.{name} (a class attribute)")


def watch(owner: type | dict[str, Any], name: str, label: str) -> None:
    """Watch attribute `name` of `owner` (a class, or a module's dict) for the rest of
    the session (or from the next session's start)."""
    key = (id(owner), name)
    if key in _WATCHED:
        return
    _WATCHED[key] = (owner, name, label)
    if _OPEN[0]:
        _take(key, owner, name)


#: Per tracked class: the names in its ``__dict__`` and (weakly) their values' types at
#: its last scan (`_tracked_class_data`), and the data attributes (with their labels)
#: that scan found.  Which entries are data depends on their names and value types
#: alone, so a class whose ``__dict__`` has the same names holding values of the same
#: types is not scanned again at the next session's start.  The types are held weakly:
#: a class attribute holding an instance of a class of the same module (whose methods'
#: globals reach the class) would otherwise keep the class, this memo's key, alive.
_SCANS: weakref.WeakKeyDictionary[
    type, tuple[tuple[str, ...], tuple[weakref.ref[type], ...], tuple[tuple[str, str], ...]]
] = weakref.WeakKeyDictionary()


def _tracked_class_data(cls: type) -> tuple[tuple[str, str], ...]:
    # The data attributes `session_starts` watches on a tracked class, with their labels.
    space = cls.__dict__
    names = tuple(space)
    kinds = tuple(map(type, space.values()))
    scan = _SCANS.get(cls)
    if (
        scan is not None
        and scan[0] == names
        and all(ref() is kind for ref, kind in zip(scan[1], kinds, strict=True))
    ):
        return scan[2]
    found = tuple(
        (name, f"{cls.__module__}.{cls.__qualname__}.{name}")
        for name, value in zip(names, space.values(), strict=True)
        if not (name in _MACHINERY or name.startswith("__") or callable(value))
        and not isinstance(value, (staticmethod, classmethod, property, *_DESCRIPTORS))
    )
    _SCANS[cls] = (names, tuple(map(weakref.ref, kinds)), found)
    return found


def session_starts(tracked_classes: list[type]) -> None:
    """A tracking session starts (hooks installed): the values watched are taken now,
    with every data attribute of the tracked classes."""
    _CHANGED.clear()
    _TAKEN[0] = False
    watched = _WATCHED
    for cls in tracked_classes:
        for name, label in _tracked_class_data(cls):
            if (id(cls), name) not in watched:
                watch(cls, name, label)
    _CHECKS.clear()
    for key, (owner, name, _) in _WATCHED.items():
        _take(key, owner, name)
    _OPEN[0] = True


def run_ends() -> None:
    """A tracking run ended: the first watched value that changed is kept (`changed`)."""
    if _CHANGED or not _OPEN[0] or not _TAKEN[0]:
        return
    missing = _MISSING
    for get, name, before, owner in _CHECKS:  # (`_read`, inlined)
        if get is not None:
            if get(name, missing) is before:
                continue
        elif own_state(owner) == before:
            continue
        label = _WATCHED[(id(owner), name)][2]
        _CHANGED.append(
            f"{label} changed during a run (a class attribute, module global or "
            "attribute of a function object or enum member written past the tracked "
            "objects' hooks, e.g. `Cls.total += 1`, `func.count = 0`): the "
            "footprints cannot see it, so no search over them can be complete; keep "
            "shared state in instances of @tracked classes or tracked containers"
        )
        return


#: The walk of the open session: each class or function is read once per session, what
#: it was found to reach stays reported for the session's later walks (the same program).
_SESSION_WALK: list[CodeWalk] = []


def session_walk() -> CodeWalk:
    """The open session's walk (a fresh one outside a session)."""
    if not _OPEN[0]:
        return CodeWalk()
    if not _SESSION_WALK:
        _SESSION_WALK.append(CodeWalk())
    return _SESSION_WALK[0]


def session_ends() -> None:
    """The session ended: nothing is watched any more."""
    _OPEN[0] = False
    _SESSION_WALK.clear()
    _WATCHED.clear()
    _VALUES.clear()
    _CHECKS.clear()


def changed() -> str | None:
    """What the watch saw change in the current (or last) session, or None."""
    return _CHANGED[0] if _CHANGED else None
