"""Plain containers handed to a task, watched for the writes no note records.

Under the noted-only promise a step's footprint is what its notes record.  A plain
container made by a display in a function (``account = {"balance": 0}``, ``items = []``)
and handed to tasks through the spawned function's closure, its defaults or its
arguments is reached by no note, so a lost update on it would be a step with an empty
footprint: DPOR would take the two tasks' steps for independent and claim `complete`
with the bug unseen.  The code walk cannot tell such a container from a read-only one (a
list of locks handed to every worker), and judging every one as unnoted state would cost
the reduction of the common read-only case.

So the sim watches them instead.  At each spawn of a run that keeps footprints under the
promise it adds what the spawned call reaches (`HandedState.add`), and after each step
it compares that state with what it held (`HandedState.changed`): a step that changed
it is unknown, ordered against every other step.  A step that only reads it keeps its
noted footprint: it commutes with another step that only reads, and every step that
writes is unknown, so a read is still ordered against each write.  A step that writes
back what was there (the very object) changed nothing other steps can see.

What is followed, from the spawned callable: a function's closure cells, defaults and
keyword defaults; a bound method's function and its ``__self__``; a
``functools.partial``'s function, arguments and keywords; the arguments; and from each of
those, recursively, the items of a dict (its subclasses too), list, tuple, set,
frozenset, ``collections.deque``, a ``types.SimpleNamespace``'s attributes, a bytearray's
bytes, and the ``__dict__`` and slots of an object of any class that neither notes its own
accesses (a ``@tracked`` class, anything of odp_async: the primitives, cells, the model)
nor is a builtin value, a class, a module or code (a frozen record, an anyio memory
stream, a trio channel, an enum member).  Anything else is compared by identity only.  The
objects seen are kept alive by the snapshot, so an identity never meets a new object at
a reused address.  More than `MAX_PARTS` objects make every later step of the run
unknown (sound, not reduced).
"""

from __future__ import annotations

import collections
import functools
import types
import weakref
from collections.abc import Sequence
from typing import Final

__all__ = ["MAX_PARTS", "HandedState"]

#: The most objects the watched state may hold before every later step of the run is
#: taken as unknown: the comparison after each step walks all of it.
MAX_PARTS: Final = 20_000

#: The end of a container's items in a snapshot (compared by identity).
_END: Final = object()

_SEQUENCES: Final = (list, tuple, set, frozenset, collections.deque)

#: Kinds that hold their state as items.
_CONTAINERS: Final = (dict, list, set, collections.deque, bytearray, types.SimpleNamespace)

#: Kinds whose state is what they call and with what (followed by `_children`).
_CALLS: Final = (types.FunctionType, types.MethodType, functools.partial, tuple, frozenset)

#: Kinds never followed into: classes, modules, code, and what runs code.
_LEAVES: Final = (
    type,
    types.ModuleType,
    types.CodeType,
    types.FrameType,
    types.CoroutineType,
    types.GeneratorType,
    types.AsyncGeneratorType,
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    weakref.ref,
)

#: Per class: whether an object of it is followed into (`_followed`; classes are
#: weakly held, so one made during a run is not kept alive).
_FOLLOWED: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


class HandedState:
    """The state a run's spawned tasks were handed, and what it held after
    the last step (one per run that keeps footprints under the noted-only promise)."""

    __slots__ = ("_dirty", "_parts", "_roots", "too_big")

    def __init__(self) -> None:
        self._roots: list[object] = []
        self._parts: list[object] = []
        self._dirty = False
        #: More than `MAX_PARTS` objects: every later step is unknown.
        self.too_big = False

    def add(self, func: object, args: Sequence[object]) -> None:
        """A task was spawned as ``func(*args)``: watch the plain containers the call
        reaches from now on.  Sync."""
        found: list[object] = []
        _reach(func, found, set())
        for arg in args:
            _reach(arg, found, set())
        if not any(_is_state(x) for x in found):
            return
        # a change made earlier in the spawning step stays that step's
        self._dirty = self.changed()
        self._roots.append(func)
        self._roots.extend(args)
        self._parts = self._snapshot()

    def changed(self) -> bool:
        """After a step: True when the watched state differs from what it held after the
        previous step (or the spawn that added it); the snapshot is then renewed.
        Sync."""
        if not self._roots or self.too_big:
            return self.too_big
        now = self._snapshot()
        before = self._parts
        self._parts = now
        dirty = self._dirty
        self._dirty = False
        if dirty or len(now) != len(before):
            return True
        for a, b in zip(now, before, strict=True):
            if a is not b and not (type(a) is bytes and type(b) is bytes and a == b):
                return True
        return False

    def _snapshot(self) -> list[object]:
        parts: list[object] = []
        seen: set[int] = set()
        for root in self._roots:
            _reach(root, parts, seen)
            if len(parts) > MAX_PARTS:
                self.too_big = True
                return []
        return parts


def _is_state(x: object) -> bool:
    # what may change: a plain container, or an object followed into
    if isinstance(x, _CONTAINERS):
        return True
    return not isinstance(x, _CALLS) and _fields(x) is not None


def _reach(x: object, parts: list[object], seen: set[int]) -> None:
    # Depth-first, each object once (`seen` by id; the snapshot keeps it alive).
    stack = [x]
    while stack:
        x = stack.pop()
        parts.append(x)
        if x is _END:
            continue
        if id(x) in seen or len(parts) > MAX_PARTS:
            continue
        kids = _children(x)
        if kids is None:
            continue
        seen.add(id(x))
        stack.append(_END)
        stack.extend(reversed(kids))


def _children(x: object) -> list[object] | None:
    if isinstance(x, dict):
        out: list[object] = []
        for k, v in list(x.items()):
            out.append(k)
            out.append(v)
        return out
    if isinstance(x, _SEQUENCES):
        return list(x)
    if isinstance(x, bytearray):
        return [bytes(x)]
    if isinstance(x, types.SimpleNamespace):
        return _children(vars(x))
    if isinstance(x, types.FunctionType):
        out = []
        for cell in x.__closure__ or ():
            try:
                out.append(cell.cell_contents)
            except ValueError:  # a cell not yet bound
                out.append(None)
        out.extend(x.__defaults__ or ())
        out.extend((x.__kwdefaults__ or {}).values())
        return out
    if isinstance(x, types.MethodType):
        return [x.__func__, x.__self__]
    if isinstance(x, functools.partial):
        return [x.func, *x.args, *x.keywords.values()]
    return _fields(x)


def _fields(x: object) -> list[object] | None:
    # An object's own fields (its __dict__, then its slots), unless it notes its own
    # accesses or is a value, a class, a module or code.
    kind = type(x)
    if not _followed(kind):
        return None
    out: list[object] = []
    try:
        own = object.__getattribute__(x, "__dict__")
    except AttributeError:
        own = None
    if type(own) is dict:
        out.append(own)
    for klass in kind.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            member = klass.__dict__.get(name)
            if type(member) is types.MemberDescriptorType:
                try:
                    out.append(member.__get__(x, kind))
                except AttributeError:  # a slot not yet set
                    out.append(_END)
    return out or None


def _followed(kind: type) -> bool:
    found = _FOLLOWED.get(kind)
    if found is None:
        module = getattr(kind, "__module__", None) or ""
        found = not (
            hasattr(kind, "__tracked__")
            or issubclass(kind, _LEAVES)
            or module == "builtins"
            or module == "odp_async"
            or module.startswith("odp_async.")
        )
        _FOLLOWED[kind] = found
    return found
