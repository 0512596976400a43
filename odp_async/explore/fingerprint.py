"""The fingerprint of a target's code: what a run log must match to be resumed.

Contract
    `code_fingerprint(target)` maps the name of each user module that defines the
    target, and each user module those reach, to a digest of its source file
    (``sha256``, 16 hex digits; ``"no source"`` for a module with none).  The modules
    that define it: the module of a ``module:qualname`` scenario or function, of a
    ``module:Class`` protocol (its class's module too).  Those it reaches: the modules
    among the globals of a module already taken (an ``import``), the modules of the
    functions and classes among them (a ``from ... import``), and the modules named by
    every ``import`` statement in its source, in any code object (module level, function
    bodies, nested functions, methods; relative ones resolved against the importing
    module's package, ``from p import m`` taking submodule ``m`` of package ``p``), the
    modules named by a literal string passed to ``importlib.import_module`` or
    ``__import__`` (``import_module("plugins.fast")``), and the parent packages of each
    module taken (their ``__init__`` runs when it is imported), transitively, at most
    `MAX_MODULES`.  A module not imported yet (one a function
    imports when it runs) is found by `importlib.util.find_spec` without importing it,
    so its digest is that of the file it would load.  A user module is one whose source
    file lies outside odp_async and outside the standard library and installed packages
    (``sysconfig``'s ``stdlib``, ``platstdlib``, ``purelib`` and ``platlib``); the
    defining module always counts.  A built-in scenario or protocol has no user module:
    its code is odp_async's.  A scenario file's text is carried whole by the target
    (`TargetSpec.file`).

    `describe_change(theirs, ours)` is the clause naming what differs between two
    fingerprints (``module 'shop' (shop.py) changed``), for a one-line refusal.

    Why: a run log trusts the schedules it records as passing.  The same command after
    the program was edited would otherwise skip them, and call a buggy program clean.

Concurrency
    None: reads and compiles source files; imports nothing (a dotted name whose parent
    package is not imported yet is looked up in that package's directory directly).
"""

from __future__ import annotations

import builtins
import dis
import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from .failures import show_path
from .refs import is_ref
from .target import Target

__all__ = ["MAX_MODULES", "code_fingerprint", "describe_change"]

#: The most modules a fingerprint reads (the defining ones first).
MAX_MODULES: Final = 200

_PACKAGE: Final = str(Path(__file__).resolve().parents[1]) + os.sep
_LIBRARY: Final = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {
        sysconfig.get_path(name)
        for name in ("stdlib", "platstdlib", "purelib", "platlib")
        if sysconfig.get_path(name)
    }
)


def code_fingerprint(target: Target) -> dict[str, str]:
    """``{module name: digest}`` of the user code defining `target` (see above)."""
    roots: list[str] = []
    for ref in (target.source, target.protocol):
        if ref is not None and is_ref(ref):
            roots.append(ref.partition(":")[0])
    if target.protocol_class is not None:
        roots.append(target.protocol_class.__module__)
    found: dict[str, str] = {}
    queue = [name for name in dict.fromkeys(roots) if name in sys.modules]
    seen = set(queue)
    while queue and len(found) < MAX_MODULES:
        name = queue.pop(0)
        module = sys.modules.get(name)
        if module is not None:
            file = _source_file(module)
            is_package = hasattr(module, "__path__")
        else:
            file, is_package = _find_source(name)
            if file is None:
                continue
        if name not in roots and (file is None or not _is_user_file(file)):
            continue
        found[name] = _digest(file)
        # Importing a submodule runs its parent packages' ``__init__`` first.
        reached = _parents(name)[:-1]
        if module is not None:
            reached += _reached(module)
        if file is not None:
            reached += _imported(name, file, is_package, module)
        for other in reached:
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return dict(sorted(found.items()))


def describe_change(theirs: Mapping[str, object], ours: Mapping[str, str]) -> str:
    """What differs between the fingerprints `theirs` (a log's) and `ours`, one clause."""
    for name in sorted(set(theirs) | set(ours)):
        if name not in ours:
            return f"module {name!r} is no longer part of the target"
        if name not in theirs:
            return f"module {name!r} is new to the target"
        if theirs[name] != ours[name]:
            return f"module {name!r}{_where(name)} changed"
    return "the target's code changed"


def _where(name: str) -> str:
    module = sys.modules.get(name)
    file = _find_source(name)[0] if module is None else _source_file(module)
    return "" if file is None else f" ({show_path(file)})"


def _source_file(module: types.ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    return file


def _is_user_file(file: str) -> bool:
    path = str(Path(file).resolve())
    return not path.startswith(_PACKAGE) and not path.startswith(_LIBRARY)


def _digest(file: str | None) -> str:
    if file is None:
        return "no source"
    try:
        data = Path(file).read_bytes()
    except OSError:
        return "no source"
    return hashlib.sha256(data).hexdigest()[:16]


def _reached(module: types.ModuleType) -> list[str]:
    """The names of the modules `module`'s globals are, or define their values."""
    names: list[str] = []
    for value in list(vars(module).values()):
        if isinstance(value, types.ModuleType):
            names.append(value.__name__)
        elif isinstance(value, (type, types.FunctionType)):
            owner = getattr(value, "__module__", None)
            if isinstance(owner, str):
                names.append(owner)
    return names


#: The functions whose call with a literal module name imports it.
_IMPORTERS: Final = (importlib.import_module, builtins.__import__)
_IMPORTER_NAMES: Final = frozenset(("import_module", "__import__"))
_NAME_LOADS: Final = frozenset(
    ("LOAD_NAME", "LOAD_GLOBAL", "LOAD_ATTR", "LOAD_METHOD", "LOAD_DEREF", "LOAD_FAST")
)


def _imported(
    name: str, file: str, is_package: bool, module: types.ModuleType | None = None
) -> list[str]:
    """The modules named by the ``import`` statements of every code object of `file`,
    and by its calls of ``importlib.import_module`` or ``__import__`` (under those
    names, or another global of `module` bound to one of them) with a literal name.

    ``import a.b`` names ``a`` and ``a.b``; ``from .m import x`` names ``<package>.m``
    and, should ``x`` be a submodule, ``<package>.m.x``; ``import_module("a.b")`` names
    ``a`` and ``a.b``, ``import_module(".m", ...)`` ``<package>.m``.  A name that cannot
    be resolved (a relative import beyond the top package) is skipped.
    """
    try:
        code = compile(Path(file).read_bytes(), file, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return []
    package = name if is_package else name.rpartition(".")[0]
    importers = set(_IMPORTER_NAMES)
    if module is not None:
        for key, value in list(vars(module).items()):
            if any(value is f for f in _IMPORTERS):
                importers.add(key)
    names: list[str] = []
    codes = [code]
    while codes:
        current = codes.pop()
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        consts: list[object] = []
        callee: str | None = None
        for ins in dis.get_instructions(current):
            if (
                callee is not None
                and ins.opname == "LOAD_CONST"
                and isinstance(ins.argval, str)
                and ins.argval
            ):
                literal = ins.argval
                dots = len(literal) - len(literal.lstrip("."))
                base = _absolute(literal[dots:], dots, package)
                if base is not None:
                    names.extend(_parents(base))
            if ins.opname in _NAME_LOADS and ins.argval in importers:
                callee = str(ins.argval)
            elif ins.opname not in ("PUSH_NULL", "PRECALL", "CACHE"):
                callee = None
            if ins.opname == "IMPORT_NAME" and len(consts) >= 2:
                level, fromlist = consts[-2], consts[-1]
                base = _absolute(str(ins.argval), level, package)
                if base is None:
                    continue
                names.extend(_parents(base))
                if isinstance(fromlist, tuple):
                    names.extend(f"{base}.{item}" for item in fromlist if item != "*")
            if ins.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):
                consts.append(ins.argval)
            else:
                consts.clear()
    return names


def _absolute(target: str, level: object, package: str) -> str | None:
    if not isinstance(level, int) or level < 0:
        return None
    if level == 0:
        return target or None
    try:
        return importlib.util.resolve_name("." * level + target, package)
    except (ImportError, ValueError):
        return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _find_source(name: str) -> tuple[str | None, bool]:
    """The source file of module `name` not imported yet, and whether it is a package.

    Imports nothing: each parent package's directory is searched directly.
    """
    parent, _, last = name.rpartition(".")
    path: list[str] | None = None
    if parent:
        module = sys.modules.get(parent)
        if module is not None:
            search = getattr(module, "__path__", None)
            path = None if search is None else list(search)
        else:
            pfile, is_package = _find_source(parent)
            path = [str(Path(pfile).parent)] if pfile is not None and is_package else None
        if path is None:
            return None, False
    try:
        spec = (
            importlib.util.find_spec(name)
            if not parent
            else importlib.machinery.PathFinder.find_spec(last, path)
        )
    except (ImportError, ValueError, AttributeError):  # a finder of another kind
        return None, False
    if spec is None or not isinstance(spec.origin, str) or not spec.origin.endswith(".py"):
        return None, False
    return spec.origin, spec.submodule_search_locations is not None
