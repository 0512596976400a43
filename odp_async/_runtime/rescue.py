"""Could a task reach a way out of a deadlock?  An object-graph walk over what it holds.

Contract
    `Reach(targets, opaque)` walks, from the roots it is given (`add`), every object they
    reach (`gc.get_referents`, transitively) and answers `walk()`: True when the walk
    met an object of `targets` (by id), or could not be sure it does not (see below);
    False only when it is sure.  The sim runtime asks it, when a partial deadlock closes,
    whether any task that could still run could cancel a stuck task (a way out: the stuck
    tasks' cancel scopes and task groups, a pool anyone may release).

    What the walk follows, and how:

    * every container, instance, closure cell, bound method, coroutine or generator
      (its frame: locals, the values on its stack, the function it runs), weak reference
      (its referent);
    * a function: its closure, its defaults, its attributes, and *the globals its code
      names* (its nested code too), resolved in its module, so a helper it calls is
      followed to what that helper names in turn (a registry global of another module);
      the modules its code imports inside a function (``import reg`` in a body);
    * a module of the program: its whole namespace; a class of the program: its
      namespace and bases.
    * Not followed: objects of the types in `opaque` (the runtime's own: following them
      would reach every task through the scheduler); of a type in `views`, only what its
      view gives (what the program can use of a runtime object: a task group's scope);
      the namespaces of library modules and classes (the standard library, installed
      packages, odp_async itself: they keep no scope of the program's, by assumption);
      strings, numbers, code.

    Unsure, so True: more than `limit` objects; a name in the code it meets that reads
    state no walk can follow (``globals``, ``vars``, ``eval``, ``exec``, ``__import__``,
    ``import_module``, ``sys.modules``, ``gc.get_objects``, ``gc.get_referrers``,
    ``sys._getframe``, a frame's ``f_locals`` / ``f_globals`` / ``f_back``, a coroutine's
    ``cr_frame``); an import inside a function of a module not imported yet; a weak
    proxy.

    A target met only through the state of a library object (an instance of a class of
    library code: a model's workqueue holding its task group) does not end the walk:
    `library_hit` says it was met, `program_code` whether any program code was met
    (library code cancels no scope and releases no slot of its own accord; program code
    could make it, through any method).

    `raises` says whether program code the walk met so far contains an explicit
    ``raise`` (or ``assert``), or names a function whose deadline raises
    (``fail_after``, by any name it is bound to): a sibling task that may raise cancels
    its group.
    `soft_hit` says whether it met an object of `soft` (a way out only some code takes,
    not a target by itself), `names` every name that program code names.

    `libraries_met` names the library modules whose state the walk met and did not
    follow; then `held_in` walks *back* from the way out (``gc.get_referrers``, every
    object of a level in one heap pass) to a library's namespace that holds it: a scope
    a program keeps in a logger's attribute or in an installed package's registry.

    Sync; reads only (no attribute of the program's is read through ``__getattr__``:
    the walk uses the referents the interpreter keeps).  Cost: linear in what it visits,
    at most `limit` objects.

See also
    `odp_async._runtime.sim` (`SimRuntime._rescuable`, the caller).
"""

from __future__ import annotations

import builtins
import dis
import gc
import importlib.util
import sys
import sysconfig
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import PurePath
from typing import Any, Final

from .._code_reach import code_tree

__all__ = ["BACK_DEPTH", "BACK_LIMIT", "LIMIT", "Reach", "code_raises", "held_in", "library"]

#: How many objects one walk visits at most before it answers "unsure".
LIMIT: Final = 20_000

#: How many holders `held_in` visits at most, and through how many levels, before it
#: answers "unsure".
BACK_LIMIT: Final = 2_000
BACK_DEPTH: Final = 16

#: Names whose use reads state the walk cannot follow (frames, every module, every object).
_UNSURE_NAMES: Final = frozenset(
    {
        "globals",
        "vars",
        "eval",
        "exec",
        "__import__",
        "import_module",
        "modules",
        "get_objects",
        "get_referrers",
        "_getframe",
        "f_locals",
        "f_globals",
        "f_back",
        "cr_frame",
        "gi_frame",
        "ag_frame",
    }
)

_ATOMS: Final = (str, bytes, bytearray, int, float, complex, bool, type(None), range)
_ATOMS_AND_CODE: Final = (*_ATOMS, types.CodeType)

_LIBRARY_DIRS: Final = tuple(
    {
        p
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    }
)

_BUILTINS: Final = vars(builtins)

#: Library modules met through every program module's namespace (its loader and spec),
#: whose state holds none of a program's objects.
_NO_PROGRAM_STATE: Final = frozenset(
    {
        "_frozen_importlib",
        "_frozen_importlib_external",
        "importlib._bootstrap",
        "importlib._bootstrap_external",
        "importlib.machinery",
    }
)

_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python

#: Library functions that raise when a deadline passes, as (module, qualname): code
#: that calls one may raise `TimeoutError` without a ``raise`` of its own.
_RAISES_AT_DEADLINE: Final = frozenset({("odp_async._runtime", "fail_after")})

#: Per code object (not nested): whether it raises explicitly, the imports it makes.
_FACTS_MEMO: dict[types.CodeType, tuple[bool, tuple[tuple[int, str], ...]]] = {}


def library(module: object) -> bool:
    """Whether the module named `module` (a name; anything else counts as library) is
    library code: odp_async, the standard library, a built-in module, or an installed
    package (a file under the interpreter's library directories, a ``site-packages`` or
    ``dist-packages``).  Any other module is the program's."""
    if not isinstance(module, str) or not module:
        return True
    if module == "odp_async" or module.startswith("odp_async."):
        return True
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    mod = sys.modules.get(module) or sys.modules.get(top)
    file = getattr(mod, "__file__", None)
    if not isinstance(file, str):
        return False  # not imported, or a namespace package: the program's, to be sure
    return file.startswith(_LIBRARY_DIRS) or any(
        part in ("site-packages", "dist-packages") for part in PurePath(file).parts
    )


def code_raises(code: types.CodeType) -> bool:
    """Whether `code` (or code nested in it) has an explicit ``raise`` or ``assert``."""
    return any(_facts(c)[0] for c in code_tree(code))


def _facts(code: types.CodeType) -> tuple[bool, tuple[tuple[int, str], ...]]:
    """Of `code` alone (memoised): whether it raises explicitly (``raise``,
    ``assert``), and its ``import`` statements as (level, module name)."""
    found = _FACTS_MEMO.get(code)
    if found is None:
        raises = False
        imports: list[tuple[int, str]] = []
        consts: list[Any] = []
        for ins in dis.get_instructions(code):
            if ins.opname == "RAISE_VARARGS":
                raises = True
            elif ins.opname == "IMPORT_NAME":
                # LOAD_CONST level, LOAD_CONST fromlist, IMPORT_NAME module
                level = consts[-2] if len(consts) >= 2 and isinstance(consts[-2], int) else 0
                imports.append((level, str(ins.argval)))
            elif ins.opname == "LOAD_CONST":
                consts.append(ins.argval)
        found = _FACTS_MEMO[code] = (raises, tuple(imports))
    return found


class Reach:
    """One walk (see the module docstring).  Add roots with `add`, then `walk`; more
    roots and another `walk` may follow (objects already seen are not visited again)."""

    __slots__ = (
        "_lib",
        "_libraries",
        "_library_globals",
        "_opaque",
        "_prog",
        "_seen",
        "_soft",
        "_targets",
        "_todo",
        "_views",
        "libraries_met",
        "library_hit",
        "limit",
        "names",
        "program_code",
        "raises",
        "soft_hit",
    )

    def __init__(
        self,
        targets: set[int],
        opaque: tuple[type, ...],
        views: Mapping[type, Callable[[Any], Iterable[object]]] | None = None,
        *,
        soft: set[int] | None = None,
        limit: int = LIMIT,
    ) -> None:
        self._targets = targets
        self._soft = soft or set()
        self._opaque = opaque
        self._views = views or {}
        #: id -> reached only through a library object's state (False: by the program's)
        self._seen: dict[int, bool] = {}
        self._prog: list[object] = []  # reached through the program's own objects
        self._lib: list[object] = []  # reached only through a library object's state
        self._todo = self._prog  # where `_visit` puts what it finds
        self._library_globals: dict[int, bool] = {}
        self._libraries: dict[str, bool] = {}
        self.limit = limit
        #: True once the walk met an object of `soft` (a way out only some code takes).
        self.soft_hit = False
        #: True once the walk met a target only through a library object's state.
        self.library_hit = False
        #: True once the walk met a function of the program's (not library code).
        self.program_code = False
        #: Every name the program code the walk met names (globals, attributes, methods).
        self.names: set[str] = set()
        #: True once the walk met program code with an explicit ``raise``.
        self.raises = False
        #: The ids of the namespaces of the library modules (odp_async's aside) whose state
        #: the walk met but did not follow: a module, a class or a function of theirs.
        self.libraries_met: set[int] = set()

    def add(self, obj: object) -> None:
        """A root of the walk."""
        self._prog.append(obj)

    def walk(self) -> bool:
        """Visit what the roots reach: True if a target (or unsure) is reached through
        the program's own objects, False otherwise (see `library_hit`)."""
        prog, lib, seen, targets = self._prog, self._lib, self._seen, self._targets
        while prog or lib:
            held = not prog
            obj = lib.pop() if held else prog.pop()
            key = id(obj)
            if key in targets:
                if not held:
                    return True
                self.library_hit = True
                continue
            if isinstance(obj, _ATOMS_AND_CODE):
                continue
            was = seen.get(key)
            if was is not None and (not was or held):
                continue  # seen already, by a path at least as direct
            seen[key] = held
            if was is None and len(seen) > self.limit:
                return True
            if key in self._soft:
                self.soft_hit = True
            if isinstance(obj, self._opaque):
                continue
            self._todo = lib if held or self._library_instance(obj) else prog
            view = self._views.get(type(obj))
            if view is not None:
                self._todo.extend(view(obj))
            elif self._visit(obj):
                return True
        return False

    def _library_instance(self, obj: object) -> bool:
        """An instance of a class of library code (its state is the library's)."""
        t = type(obj)
        return (
            bool(t.__flags__ & _HEAPTYPE)
            and t not in self._views
            and self._library(t.__dict__.get("__module__"))
        )

    def _visit(self, obj: object) -> bool:
        todo = self._todo
        if isinstance(obj, types.FunctionType):
            return self._function(obj)
        if isinstance(obj, types.ModuleType):
            if not self._library(obj.__name__):
                todo.append(obj.__dict__)
            else:
                self._met(obj.__name__)
            return False
        if isinstance(obj, type):
            module = obj.__dict__.get("__module__")
            if not self._library(module):
                todo.extend(gc.get_referents(obj))
            elif module != "builtins":  # (a builtin type: no program state)
                self._met(module)
            return False
        if isinstance(obj, types.BuiltinFunctionType) and isinstance(
            obj.__self__, types.ModuleType
        ):
            self._met(obj.__self__.__name__)
            return False
        if isinstance(obj, dict):
            if self._module_dict(obj):
                return False
        elif isinstance(obj, weakref.ref):
            todo.append(obj())
        elif isinstance(obj, (weakref.ProxyType, weakref.CallableProxyType)):
            return True  # its referent is not one of its referents: unsure
        todo.extend(gc.get_referents(obj))
        return False

    def _met(self, name: object) -> None:
        """A library module's state met and not followed (`held_in` may walk back to it)."""
        if (
            isinstance(name, str)
            and name not in _NO_PROGRAM_STATE
            and name.partition(".")[0] != "odp_async"
        ):
            mod = sys.modules.get(name)
            if mod is not None:
                self.libraries_met.add(id(mod.__dict__))

    def _library(self, name: object) -> bool:
        key = name if isinstance(name, str) else ""
        known = self._libraries.get(key)
        if known is None:
            known = self._libraries[key] = library(name)
        return known

    def _module_dict(self, d: dict[Any, Any]) -> bool:
        """True if `d` is a library module's namespace (not followed)."""
        key = id(d)
        known = self._library_globals.get(key)
        if known is None:
            name = d.get("__name__")
            mod = sys.modules.get(name) if isinstance(name, str) else None
            known = mod is not None and getattr(mod, "__dict__", None) is d and self._library(name)
            self._library_globals[key] = known
        return known

    def _function(self, fn: types.FunctionType) -> bool:
        todo = self._todo
        if fn.__closure__:
            todo.extend(fn.__closure__)
        if fn.__defaults__:
            todo.append(fn.__defaults__)
        if fn.__kwdefaults__:
            todo.append(fn.__kwdefaults__)
        todo.append(fn.__dict__)
        g = fn.__globals__
        if self._module_dict(g):
            if (fn.__module__, fn.__qualname__) in _RAISES_AT_DEADLINE:
                self.raises = True
            self._met(g.get("__name__"))
            return False  # library code: what it names is the library's
        self.program_code = True
        for code in code_tree(fn.__code__):
            if _UNSURE_NAMES.intersection(code.co_names):
                return True
            raises, imports = _facts(code)
            self.raises = self.raises or raises
            self.names.update(code.co_names)
            for name in code.co_names:
                if name in g:
                    todo.append(g[name])
                elif name in _BUILTINS:
                    todo.append(_BUILTINS[name])  # (a name the program set in builtins)
            for level, module in imports:
                if self._import(level, module, g):
                    return True
        return False

    def _import(self, level: int, module: str, g: dict[str, Any]) -> bool:
        """Follow a function-level import; True if unsure (a module not imported yet)."""
        try:
            name = (
                importlib.util.resolve_name("." * level + module, g.get("__package__") or "")
                if level
                else module
            )
        except (ImportError, ValueError):
            return True
        mod = sys.modules.get(name)
        if mod is None:
            return not self._library(name)
        self._todo.append(mod)
        return False


def held_in(
    hard: Iterable[object],
    soft: Iterable[object],
    stop: tuple[type, ...],
    skip: AbstractSet[int] = frozenset(),
    *,
    limit: int = BACK_LIMIT,
    depth: int = BACK_DEPTH,
) -> tuple[bool, bool]:
    """Whether library state holds the objects of `hard` (first), of `soft` (second): a
    chain of holders (``gc.get_referrers``, transitively) from one of them to the
    namespace of a library module (odp_async's aside: it keeps none of a program's
    objects) or to a library class.  `skip`: the ids of holders that are no library
    state (the runtime's own lists of scopes, the caller's locals).

    One heap pass per level, for every object of the level at once; the walk goes up
    through containers, instances, cells and functions, and stops at frames, coroutines
    and generators (a task's own state: `Reach` walks it forward), at objects of `stop`
    types (the runtime's), at module namespaces and modules, and at classes (whose
    instances all hold them; a program's class is the program's state).  Unsure is yes:
    more than `limit` holders, or more than `depth` levels.
    """
    # (a tuple: ``get_referrers(*objects)`` gets it as its arguments, not a new holder)
    objects: tuple[object, ...] = (*hard, *soft)
    hard_ids = {id(o) for o in hard}
    seen = {id(o) for o in objects}
    found_soft = False
    for _ in range(depth):
        if not objects:
            return False, found_soft
        mixed = len(hard_ids) != len(objects)
        upper: list[object] = []
        upper_hard: set[int] = set()
        for holder in gc.get_referrers(*objects):
            key = id(holder)
            if holder is objects or key in skip or isinstance(holder, (*_STOPS, *stop)):
                continue
            if isinstance(holder, type):
                module: object = holder.__dict__.get("__module__")
            elif _is_namespace(holder):
                module = holder.get("__name__")
            else:
                module = None
            if module is not None:  # a class or a module: the end of a chain
                if _library_state(module):
                    if not mixed or any(id(r) in hard_ids for r in gc.get_referents(holder)):
                        return True, found_soft
                    found_soft = True
                continue
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > limit:
                return True, True
            upper.append(holder)
            if not mixed or any(id(r) in hard_ids for r in gc.get_referents(holder)):
                upper_hard.add(key)
        objects, hard_ids = tuple(upper), upper_hard
        del upper
    return True, True


def _library_state(module: object) -> bool:
    """Whether a class or module namespace of module `module` is a library's whose state
    may hold a program's object (odp_async's and the import system's keep none)."""
    return (
        library(module)
        and isinstance(module, str)
        and module.partition(".")[0] != "odp_async"
        and module not in _NO_PROGRAM_STATE
    )


_STOPS: Final = (
    types.FrameType,
    types.CoroutineType,
    types.GeneratorType,
    types.AsyncGeneratorType,
    types.ModuleType,
)


def _is_namespace(obj: object) -> bool:
    """A module's namespace (a dict that is some loaded module's ``__dict__``)."""
    if type(obj) is not dict:
        return False
    name = obj.get("__name__")
    mod = sys.modules.get(name) if isinstance(name, str) else None
    return mod is not None and getattr(mod, "__dict__", None) is obj
