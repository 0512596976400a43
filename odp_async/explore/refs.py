"""How another process finds a target again: objects by ``module:qualname``, files by content.

Contract
    `object_ref(obj, what)` names a module-level function or class ``module:qualname``,
    after checking that importing that name gives back the very same object.  An object
    that cannot be found that way (a closure, a lambda, a class made inside a function, an
    object of a ``__main__`` script without a module name, an object since replaced) is
    refused with one line of `InvalidArgument` saying why and what to do.  An object of
    ``__main__`` run as ``python -m pkg.mod`` is named ``pkg.mod:qualname``.

    `scenario_ref(scenario)` names a `Scenario` object by the module-level variable that
    holds it (looked up in the module of its body), or refuses it likewise.

    `resolve_ref(ref, what)` imports ``module`` and walks ``qualname``; every failure is
    one line of `InvalidArgument` naming the reference.  In the process whose ``__main__``
    is ``module`` (``python -m module``), the name is looked up there instead of importing
    the module a second time.

    `ScenarioText` is a scenario file by content: its basename (never a directory: a
    token must not carry a home directory), its text and the SHA-256 of the text's
    UTF-8 bytes: the file's bytes, less a leading UTF-8 byte-order mark (the scenario
    reader drops it too, so a file saved with a mark and without is one content).  It
    rebuilds the scenario anywhere; `check_file` raises `ReplayMismatch` naming the file
    and its first changed line when the file given at replay differs from it.

See also
    `odp_async.explore.target` (what is referred to), `odp_async.explore.tokens`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Collection
from typing import Any

import attrs

from .._user_files import UnreadableFile, path_as_module, read_bytes
from ..errors import InvalidArgument, ReplayMismatch
from ..scenarios import Scenario
from ..scenarios.files import ScenarioFileError, _Reader, _text_of, read_scenario

__all__ = ["ScenarioText", "is_ref", "object_ref", "ref_problem", "resolve_ref", "scenario_ref"]

#: Prefixes of scenario names that are not ``module:qualname`` references.
_RESERVED = ("classic:", "test:")


def is_ref(text: str) -> bool:
    """Whether `text` has the shape of a ``module:qualname`` reference."""
    if text.startswith(_RESERVED) or text.count(":") != 1:
        return False
    module, qualname = text.split(":")
    return _dotted(module) and _dotted(qualname)


def ref_problem(text: str) -> str | None:
    """Why `text`, which has a colon and so was meant as a ``module:qualname`` reference
    (not a ``classic:`` or ``test:`` name), is not one; None when it is one or has no
    colon.  One line, naming the part at fault."""
    if ":" not in text or text.startswith(_RESERVED) or is_ref(text):
        return None
    if text.count(":") != 1:
        return f"{text!r} has {text.count(':')} colons; a reference is 'module:qualname'"
    module, qualname = text.split(":")
    as_module = path_as_module(module)
    if as_module is not None and _dotted(qualname):
        name, where = as_module
        return (
            f"{text!r} names its module by a path; a reference names it as an import "
            f"statement does: '{name}:{qualname}', {where}"
        )
    for part, what in ((module, "module name"), (qualname, "qualified name")):
        if not _dotted(part):
            return (
                f"{text!r} is not a 'module:qualname' reference: the {what} {part!r} is not "
                "a dotted Python identifier (each part a letter or _ then letters, digits "
                "or _: what an import statement can name); rename it"
            )
    return None  # pragma: no cover - is_ref(text) held


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _main_name() -> str | None:
    """The module name of ``__main__`` when it was run as ``python -m name``, else None."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    return name if isinstance(name, str) and name and name != "__main__" else None


def _walk(root: object, qualname: str) -> object:
    found = root
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def object_ref(obj: object, what: str) -> str:
    """``module:qualname`` of a module-level function or class; `InvalidArgument` if none.

    `what` says what the object is, for the message ("function", "protocol class").
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise InvalidArgument(
            f"{what} {obj!r} has no module and qualified name another process could import "
            "it by: pass a module-level function or class"
        )
    shown = f"{what} {qualname!r}"
    if "<lambda>" in qualname:
        raise InvalidArgument(
            f"{shown} is a lambda, so no other process can import it: use a module-level async def"
        )
    if "<locals>" in qualname:
        raise InvalidArgument(
            f"{shown} is defined inside a function (a closure), so no other process can "
            f"import it: define it at module level in an importable module"
        )
    if module == "__main__":
        name = _main_name()
        if name is None:
            raise InvalidArgument(
                f"{shown} is defined in the __main__ script, which no other process can "
                "import: move it to a module (or run the script with python -m)"
            )
        root: object = sys.modules["__main__"]
        ref = f"{name}:{qualname}"
    else:
        ref = f"{module}:{qualname}"
        try:
            root = importlib.import_module(module)
        except Exception as e:
            raise InvalidArgument(
                f"{shown} comes from module {module!r}, which cannot be imported "
                f"({type(e).__name__}: {e}): define it in an importable module"
            ) from None
    try:
        found = _walk(root, qualname)
    except AttributeError:
        found = None
    if found is not obj:
        raise InvalidArgument(
            f"{shown}: {ref} does not name this object (it was replaced, redefined or "
            "built at run time): define it once at module level"
        )
    return ref


def scenario_ref(scenario: Scenario) -> str:
    """``module:name`` of the module-level variable holding `scenario`; else `InvalidArgument`."""
    modules = []
    for fn in (scenario.body, scenario.make):
        module = getattr(fn, "__module__", None)
        if isinstance(module, str) and module not in modules:
            modules.append(module)
    for module in modules:
        if module == "__main__":
            name = _main_name()
            if name is None:
                continue
        else:
            name = module
        namespace = vars(sys.modules[module]) if module in sys.modules else {}
        for key, value in namespace.items():
            if value is scenario and key.isidentifier():
                return f"{name}:{key}"
    raise InvalidArgument(
        f"scenario {scenario.name!r} is not held by a module-level variable of an importable "
        "module (looked in the module of its body), so no other process can find it: "
        "assign it to a global in a module and pass that, or 'module:NAME'"
    )


def resolve_ref(ref: str, what: str) -> object:
    """The object ``module:qualname`` names.  Raises `InvalidArgument` naming `ref`."""
    if not is_ref(ref):
        raise InvalidArgument(f"{what} reference {ref!r} is not of the form 'module:qualname'")
    module, qualname = ref.split(":")
    root: object
    if module == _main_name():
        root = sys.modules["__main__"]
    else:
        try:
            root = importlib.import_module(module)
        except ImportError as e:
            raise InvalidArgument(
                f"cannot import module {module!r} of {what} {ref!r}: {e} "
                "(is it on sys.path / PYTHONPATH?)"
            ) from None
        except Exception as e:
            raise InvalidArgument(
                f"importing module {module!r} of {what} {ref!r} raised {type(e).__name__}: {e}"
            ) from None
        except SystemExit as e:  # not a verdict: a silent exit 0 would read as a pass
            raise InvalidArgument(
                f"importing module {module!r} of {what} {ref!r} called sys.exit({e.code!r})"
            ) from None
    try:
        return _walk(root, qualname)
    except AttributeError:
        raise InvalidArgument(f"module {module!r} has no {qualname!r} ({what} {ref!r})") from None


@attrs.frozen
class ScenarioText:
    """A scenario file by content: `name` (its basename), `sha256` (hex, of `text` in
    UTF-8: the file's bytes without a byte-order mark) and `text`."""

    name: str
    sha256: str
    text: str

    @classmethod
    def read(
        cls, path: str | os.PathLike[str], protocols: Collection[str] | None = None
    ) -> tuple[ScenarioText, Scenario]:
        """The file's content and its scenario.  `protocols`: those of its
        ``scenario.protocols`` to import (`read_scenario`; None: all).  Raises
        `ScenarioFileError` (an `InvalidArgument`) naming the file, as `read_scenario`
        does."""
        scenario = read_scenario(path, protocols=protocols).scenario
        raw = read_bytes(path)
        try:
            text = _text_of(raw)  # read_scenario checked it is UTF-8
        except UnicodeDecodeError as e:  # changed since
            raise UnreadableFile(
                os.fspath(path), f"not UTF-8 text (byte {e.start})", "text"
            ) from None
        # the digest of what the token carries (no byte-order mark), as `is_intact` checks
        digest = _digest(text.encode("utf-8"))
        return cls(os.path.basename(os.fspath(path)), digest, text), scenario

    def is_intact(self) -> bool:
        """Whether `text` still hashes to `sha256` (a token carries both: an edit of one
        without the other is refused when the token is read)."""
        return _digest(self.text.encode("utf-8")) == self.sha256

    def scenario(self, protocols: Collection[str] | None = None) -> Scenario:
        """The scenario the text describes (errors name the file by its basename);
        `protocols` as for `read`."""
        return _TextReader(self.name, self.text, protocols).read().scenario

    def check_file(
        self, path: str | os.PathLike[str], protocols: Collection[str] | None = None
    ) -> Scenario:
        """The scenario of the file at `path`, which must hold this very content.

        Raises `ReplayMismatch` naming the file and its first changed line when it
        differs, `ScenarioFileError` when it cannot be read.
        """
        now, scenario = ScenarioText.read(path, protocols)
        if now.sha256 == self.sha256:
            return scenario
        old, new = self.text.splitlines(), now.text.splitlines()
        line = next(
            (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
            min(len(old), len(new)),
        )
        if old == new:
            where = "only its line endings changed (or a byte no line shows)"
        else:
            was = old[line] if line < len(old) else "<end of file>"
            got = new[line] if line < len(new) else "<end of file>"
            if was.strip() != got.strip():  # the change, without the indentation
                was, got = was.strip(), got.strip()
            where = f"line {line + 1}: was {was!r}, now {got!r}"
        raise ReplayMismatch(
            f"scenario file {os.fspath(path)} changed since the token was made "
            f"({where}); replay without the file to use the content the token carries"
        )


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class _TextReader(_Reader):
    """A scenario file reader over text already in memory (a token's)."""

    def __init__(self, name: str, text: str, protocols: Collection[str] | None = None) -> None:
        super().__init__(name, protocols)
        self._text = text

    def parse(self) -> dict[str, Any]:
        try:
            return self.loads(self._text)
        except ScenarioFileError as e:
            # one line: a syntax error's quoted source line is the token's own business
            first = str(e).splitlines()[0].removeprefix(f"{self.path}")
            raise self.fail(None, f"the scenario text in the token is not valid{first}") from None
