"""Put every object reachable from a root back the way it was, in place, at a small cost
per object: how a world built once starts each schedule as if built afresh.

Contract
    ``Snapshot.take(root)`` walks every object reachable from `root` and records its
    state; ``snapshot.restore()`` puts each of those objects back into that state (the
    same objects, so every reference between them holds) and returns how many it had to
    change.  Objects made after the snapshot are dropped by whatever referred to them
    being put back; objects the snapshot saw are never replaced.

    What it copies: instances of Python classes (their class, every slot over the whole
    MRO, whatever the slots are named, read and written through the slot descriptors
    themselves, so a class whose fields are descriptors over other slots is handled, and
    their ``__dict__``), `dict` (items and their order), `list`, `set` and closure
    cells.  What it shares and walks through: tuples, frozensets, weak references, bound
    methods, functions (their closure cells and defaults are walked, the function itself
    is shared).  What it shares without walking: classes, modules, enum members, bare
    ``object()`` tokens, code, builtins, numbers, strings, bytes.  Anything else (a
    deque, a coroutine, a running task, an instance of a C type or of a class built on
    one, such as a dict subclass) raises `InvalidArgument` naming its type and the path
    to it from the root.

    Identity, not equality: an object has changed when any reference it holds (as
    `gc.get_referents` lists them, plus a str-keyed dict's keys) is not the very object
    it held before, so an equal but distinct value (``1`` for ``True``, a new record equal
    to the old one) is put back too.  A set is put back in the iteration order it had:
    `take` refuses a set whose order could not be rebuilt from its items.

Cost
    `take` is one walk, some microseconds per object.  `restore` lists, in C, the
    references of each block of 256 objects and compares them with the recorded ones by
    identity (as raw pointers, one ``memcmp``, on CPython; element by element elsewhere);
    only a block that changed is re-checked, 16 objects then one object at a time, and
    only an object that changed is written back (a container in full).  On the ODP
    model that is about 2.5 µs per registered region, against about 40 µs to build one
    (`benchmarks/bench_model.py`).

Concurrency
    Single-threaded; restore only while nothing runs on the objects (between two runs).

See also
    `odp_async.world.World.snapshot`, `odp_async.world.PreparedWorld`.
"""

from __future__ import annotations

import bisect
import enum
import gc
import sys
import types
import weakref
from operator import is_not
from typing import Any, Final

from .errors import InvalidArgument

__all__ = ["Snapshot"]

_UNSET: Final = object()  # a slot or cell with no value
_BLOCK: Final = 256  # objects compared per `gc.get_referents` call, at most
_BIG: Final = 1024  # an object holding more references than this is a block alone
_CHUNK: Final = 16  # in a block that changed, objects re-checked together

# What the walk does with an object of a type (cached per type).
_ATOM: Final = 0  # shared, not walked
_WALK: Final = 1  # shared (immutable), its parts walked
_TRACK: Final = 2  # copied: state recorded and put back
_REFUSE: Final = 3

# How a tracked object is put back.
_OBJ: Final = 0
_DICT: Final = 1
_LIST: Final = 2
_SET: Final = 3
_CELL: Final = 4

_ATOM_TYPES: Final[frozenset[type]] = frozenset(
    {
        object,  # a bare object() holds no state (a token, a sentinel)
        type(None),
        type(NotImplemented),
        type(Ellipsis),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        range,
        slice,
        types.ModuleType,
        types.CodeType,
        types.BuiltinFunctionType,
        types.WrapperDescriptorType,
        types.MethodDescriptorType,
        types.MethodWrapperType,
        types.GetSetDescriptorType,
        types.MemberDescriptorType,
        types.ClassMethodDescriptorType,
        property,
        staticmethod,
        classmethod,
    }
)
_WALK_TYPES: Final[frozenset[type]] = frozenset(
    {tuple, frozenset, weakref.ReferenceType, types.MethodType, types.FunctionType}
)
_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE


# --- identity comparison of two lists -------------------------------------------------
#
# CPython keeps a list's items as a C array of object pointers (``ob_item``, after the
# variable-size object header).  Two lists hold the very same objects in the same order
# iff those arrays are equal byte for byte; both lists hold their items alive, so an
# address cannot be reused in between.  `_pointers` reads the array through ctypes,
# imported at the first snapshot (not at import: it costs milliseconds every process
# pays); `_POINTERS` says whether a self-test read it right (else element-by-element
# ``is not``), None until then.

_POINTERS: bool | None = None
_PTR = 8  # set with _POINTERS: a pointer's size
_OB_ITEM = 24  # ob_refcnt, ob_type, ob_size, then ob_item
_at: Any = None  # ctypes.c_void_p.from_address
_string_at: Any = None  # ctypes.string_at


def _use_pointers() -> bool:
    """Are list item arrays compared as raw pointers?  Probes once, at first use."""
    global _POINTERS, _PTR, _OB_ITEM, _at, _string_at
    if _POINTERS is None:
        _POINTERS = False
        if sys.implementation.name == "cpython":
            import ctypes

            _PTR = ctypes.sizeof(ctypes.c_void_p)
            _OB_ITEM = 3 * _PTR
            _at, _string_at = ctypes.c_void_p.from_address, ctypes.string_at
            try:
                probe = [object(), 12345678901, "probe", None]
                expected = b"".join(id(x).to_bytes(_PTR, sys.byteorder) for x in probe)
                _POINTERS = (
                    _pointers(probe) == expected and _pointers(probe[1:]) == expected[_PTR:]
                )
            except Exception:  # pragma: no cover - an interpreter laid out otherwise
                _POINTERS = False
    return _POINTERS


def _pointers(items: list[Any]) -> bytes:
    if not items:
        return b""
    address = _at(id(items) + _OB_ITEM).value
    return _string_at(address, _PTR * len(items)) if address else b""


def _identity_key(items: list[Any]) -> Any:
    """What `_same` compares `items` by: the pointer bytes (CPython), else the list."""
    return _pointers(items) if _use_pointers() else items


def _same(now: list[Any], key: Any) -> bool:
    """Does `now` hold the very objects `key` was made from (`_identity_key`), in order?"""
    if _use_pointers():
        return bool(_pointers(now) == key)
    return len(now) == len(key) and not any(map(is_not, now, key))


def _members(cls: type) -> tuple[Any, ...]:
    """The slot descriptors of `cls` over its whole MRO: every real slot, by descriptor
    (not by name, so a same-named descriptor of a subclass cannot shadow it)."""
    found: list[Any] = []
    for klass in cls.__mro__:
        for value in vars(klass).values():
            if type(value) is types.MemberDescriptorType and value.__objclass__ is klass:
                found.append(value)
    return tuple(found)


def _classify(t: type) -> int:
    if t in _ATOM_TYPES or issubclass(t, (type, enum.Enum)):
        return _ATOM
    if t in _WALK_TYPES:
        return _WALK
    if t in (dict, list, set, types.CellType):
        return _TRACK
    base: type | None = t
    while base is not None and base.__flags__ & _HEAPTYPE:
        base = base.__base__
    # A Python class over `object` only: no C state besides its slots and __dict__.
    return _TRACK if base is object and t is not object else _REFUSE


class Snapshot:
    """The recorded state of every object reachable from a root; see the module docs."""

    __slots__ = (
        "__dict__",
        "_block_keys",
        "_block_objects",
        "_block_refs",
        "_block_starts",
        "_key_checks",
        "_kinds",
        "_objects",
        "_saved",
        "_sizes",
        "root",
    )

    def __init__(self, root: object) -> None:
        self.root = root
        self._objects: list[Any] = []  # tracked objects, in walk order
        self._kinds: list[int] = []
        self._saved: list[Any] = []  # per object: what `_put_back` writes
        self._block_objects: list[list[Any]] = []
        self._block_starts: list[int] = []  # per block: its first object's index
        # Per block: its objects' referents (`gc.get_referents`) when as recorded, and
        # their `_identity_key`; per object: how many of them are its own.
        self._block_refs: list[list[Any]] = []
        self._block_keys: list[Any] = []
        self._sizes: list[int] = []
        # str-keyed dicts (`gc.get_referents` lists only their values): (index, keys key)
        self._key_checks: list[tuple[int, Any]] = []

    @classmethod
    def take(cls, root: object) -> Snapshot:
        """Record the state of everything reachable from `root`.  Raises
        `InvalidArgument` for an object it cannot copy (see the module docstring)."""
        snap = cls(root)
        snap._walk(root)
        get = gc.get_referents
        objects = snap._objects
        snap._sizes = [len(get(o)) for o in objects]
        starts = snap._block_starts
        for i, size in enumerate(snap._sizes):
            if not starts or size > _BIG or i - starts[-1] == _BLOCK or snap._sizes[i - 1] > _BIG:
                starts.append(i)
        for b, lo in enumerate(starts):
            hi = starts[b + 1] if b + 1 < len(starts) else len(objects)
            snap._block_objects.append(objects[lo:hi])
            snap._block_refs.append([])
            snap._block_keys.append(b"")
            snap._rekey(b)
        for i, (o, kind) in enumerate(zip(objects, snap._kinds, strict=True)):
            if kind == _DICT and o and all(type(k) is str for k in o):
                snap._key_checks.append((i, _identity_key(list(o))))
        return snap

    def __len__(self) -> int:
        """How many objects the snapshot copies."""
        return len(self._objects)

    def restore(self) -> int:
        """Put every object back into its recorded state; return how many changed.  Sync."""
        get = gc.get_referents
        changed = 0
        keys = self._block_keys
        if _use_pointers():  # `_same`, inlined: this loop is the whole cost of a restore
            at = _at
            string_at = _string_at
            ptr, ob_item = _PTR, _OB_ITEM
            for b, block in enumerate(self._block_objects):
                now = get(*block)
                if now:
                    items = at(id(now) + ob_item).value or 0
                    if string_at(items, ptr * len(now)) == keys[b]:
                        continue
                elif not keys[b]:
                    continue
                changed += self._restore_block(b, block)
        else:
            for b, block in enumerate(self._block_objects):
                if not _same(get(*block), keys[b]):
                    changed += self._restore_block(b, block)
        for i, key in self._key_checks:
            d = self._objects[i]
            if not _same(list(d), key):
                self._put_back(i)
                self._sizes[i] = len(get(d))
                changed += 1
                self._rekey(bisect.bisect_right(self._block_starts, i) - 1)
        return changed

    def _restore_block(self, b: int, block: list[Any]) -> int:
        get = gc.get_referents
        was_all = self._block_refs[b]
        sizes = self._sizes
        lo = self._block_starts[b]
        if len(block) == 1:  # a block alone (a big container): it changed
            self._put_back(lo)
            sizes[lo] = len(get(block[0]))
            self._rekey(b)
            return 1
        at = 0
        changed = 0
        for c in range(0, len(block), _CHUNK):
            chunk = block[c : c + _CHUNK]
            span = sum(sizes[lo + c : lo + c + len(chunk)])
            now = get(*chunk)
            if len(now) == span and not any(map(is_not, now, was_all[at : at + span])):
                at += span
                continue
            for i in range(lo + c, lo + c + len(chunk)):
                size = sizes[i]
                now = get(block[i - lo])
                if len(now) != size or any(map(is_not, now, was_all[at : at + size])):
                    self._put_back(i)
                    # What it holds now is its recorded state (a refilled dict or set
                    # may list it otherwise than before): compare with that from now on.
                    sizes[i] = len(get(block[i - lo]))
                    changed += 1
                at += size
        self._rekey(b)
        return changed

    def _rekey(self, b: int) -> None:
        refs = gc.get_referents(*self._block_objects[b])
        self._block_refs[b] = refs
        self._block_keys[b] = _identity_key(refs)

    # --- taking ------------------------------------------------------------------------

    def _walk(self, root: object) -> None:
        kinds: dict[type, int] = {t: _ATOM for t in _ATOM_TYPES}
        members: dict[type, tuple[tuple[Any, str], ...]] = {}
        seen: set[int] = set()
        # The path to each object met, for error messages: its parent's index and its
        # label (a str, or a `_Key` shown as ``[key]``).
        parents: list[int] = []
        labels: list[object] = []
        stack: list[tuple[Any, int, object]] = [(root, -1, "root")]
        objects = self._objects
        saved = self._saved
        kinds_out = self._kinds
        atom = _ATOM
        while stack:
            obj, parent, label = stack.pop()
            t = type(obj)
            kind = kinds.get(t)
            if kind is None:
                kind = kinds[t] = _classify(t)
            if kind == atom or id(obj) in seen:
                continue
            seen.add(id(obj))
            here = len(parents)
            parents.append(parent)
            labels.append(label)
            if kind == _REFUSE:
                raise InvalidArgument(
                    f"cannot snapshot {_path(parents, labels, here)}: an object of type "
                    f"{t.__module__}.{t.__qualname__} (a snapshot copies instances of Python "
                    "classes, dicts, lists, sets and closure cells)"
                )
            if kind == _WALK:
                self._walk_shared(obj, t, here, stack)
                continue
            if t is dict:
                items = list(obj.items())
                objects.append(obj)
                kinds_out.append(_DICT)
                saved.append(items)
                for k, v in items:
                    if kinds.get(type(v)) != atom:
                        stack.append((v, here, _Key(k)))
                    if kinds.get(type(k)) != atom:
                        stack.append((k, here, "<a key>"))
            elif t is list:
                objects.append(obj)
                kinds_out.append(_LIST)
                saved.append(list(obj))
                for n, x in enumerate(obj):
                    if kinds.get(type(x)) != atom:
                        stack.append((x, here, _Key(n)))
            elif t is set:
                items = list(obj)
                again: set[Any] = set()
                again.update(items)
                if any(map(is_not, again, items)):
                    raise InvalidArgument(
                        f"cannot snapshot {_path(parents, labels, here)}: a set whose "
                        "iteration order "
                        "cannot be rebuilt from its items"
                    )
                objects.append(obj)
                kinds_out.append(_SET)
                saved.append(items)
                for x in items:
                    stack.append((x, here, "<an item>"))
            elif t is types.CellType:
                try:
                    value = obj.cell_contents
                except ValueError:
                    value = _UNSET
                else:
                    stack.append((value, here, ".cell_contents"))
                objects.append(obj)
                kinds_out.append(_CELL)
                saved.append(value)
            else:
                slots = members.get(t)
                if slots is None:
                    slots = members[t] = tuple((md, "." + md.__name__) for md in _members(t))
                values = []
                for md, name in slots:
                    try:
                        value = md.__get__(obj, t)
                    except AttributeError:
                        value = _UNSET
                    else:
                        if kinds.get(type(value)) != atom:
                            stack.append((value, here, name))
                    values.append(value)
                d = obj.__dict__ if t.__dictoffset__ else None
                if d is not None:
                    stack.append((d, here, ".__dict__"))
                objects.append(obj)
                kinds_out.append(_OBJ)
                saved.append((t, tuple(md for md, _ in slots), tuple(values), d))

    @staticmethod
    def _walk_shared(
        obj: Any, t: type, here: int, stack: list[tuple[object, int, object]]
    ) -> None:
        if t is tuple or t is frozenset:
            for n, x in enumerate(obj):
                stack.append((x, here, _Key(n)))
        elif t is weakref.ReferenceType:
            target = obj()
            if target is not None:
                stack.append((target, here, "()"))
        elif t is types.MethodType:
            stack.append((obj.__self__, here, ".__self__"))
            stack.append((obj.__func__, here, ".__func__"))
        else:
            name = obj.__qualname__
            for n, cell in enumerate(obj.__closure__ or ()):
                stack.append((cell, here, f"<{name} cell {n}>"))
            if obj.__defaults__:
                stack.append((obj.__defaults__, here, f"<{name}>.__defaults__"))
            if obj.__kwdefaults__:
                stack.append((obj.__kwdefaults__, here, f"<{name}>.__kwdefaults__"))

    # --- putting back -------------------------------------------------------------------

    def _put_back(self, i: int) -> None:
        obj = self._objects[i]
        kind = self._kinds[i]
        saved = self._saved[i]
        if kind == _OBJ:
            cls, slots, values, d = saved
            if type(obj) is not cls:
                obj.__class__ = cls
            for md, value in zip(slots, values, strict=True):
                if value is _UNSET:
                    try:
                        md.__delete__(obj)
                    except AttributeError:
                        pass
                else:
                    md.__set__(obj, value)
            if d is not None and obj.__dict__ is not d:
                obj.__dict__ = d
        elif kind in (_DICT, _SET):
            obj.clear()
            obj.update(saved)
        elif kind == _LIST:
            obj[:] = saved
        elif saved is _UNSET:
            try:
                del obj.cell_contents
            except ValueError:
                pass
        else:
            obj.cell_contents = saved


class _Key:
    """A dict key or a sequence index on the path to an object (shown as ``[key]``)."""

    __slots__ = ("key",)

    def __init__(self, key: object) -> None:
        self.key = key


def _path(parents: list[int], labels: list[object], at: int) -> str:
    out = []
    while at >= 0:
        label = labels[at]
        out.append(f"[{label.key!r}]" if isinstance(label, _Key) else str(label))
        at = parents[at]
    return "".join(reversed(out))
