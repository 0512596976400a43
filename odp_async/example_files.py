"""The example scenario files shipped with odp_async: find, list and copy them.

Contract
    There is one copy of the files, ``examples/*.toml`` at the top of the source tree.
    The wheel ships them as package data, ``odp_async/examples/`` (hatch's
    ``force-include``); a checkout or an unpacked sdist has them at ``examples/`` beside
    the package.  `examples_dir` finds whichever exists, package data first.

    `list_examples` returns each file's name and the one-line summary from its
    ``[scenario]`` table; `copy_examples` copies them into a directory and refuses, with
    `InvalidArgument` naming the file, to overwrite anything.

See also
    `odp_async.scenarios.files` (the format), ``odp-async examples`` (the command).
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import attrs

from .errors import InvalidArgument

__all__ = ["ExampleFile", "copy_examples", "examples_dir", "list_examples"]


@attrs.frozen
class ExampleFile:
    name: str  # the file name, e.g. "registration-race.toml"
    path: Path
    summary: str  # one line


def examples_dir() -> Path:
    """The directory holding the example scenario files.

    Raises `InvalidArgument` if neither the package data nor the source tree has them
    (a broken install).
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "examples", package.parent / "examples"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise InvalidArgument(
        f"no example scenario files found (looked in {package / 'examples'} and "
        f"{package.parent / 'examples'}): reinstall odp_async"
    )


def _summary(path: Path) -> str:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # as scenario files
        text = str(data.get("scenario", {}).get("summary", ""))
    except (OSError, tomllib.TOMLDecodeError):
        text = ""
    return " ".join(text.split())


def list_examples() -> tuple[ExampleFile, ...]:
    """Every example scenario file, by name."""
    return tuple(
        ExampleFile(p.name, p, _summary(p)) for p in sorted(examples_dir().glob("*.toml"))
    )


def copy_examples(destination: str | Path) -> list[Path]:
    """Copy every example into `destination` (created if missing); returns the new files.

    Raises `InvalidArgument` if `destination` is a file or already holds a file of the
    same name (nothing is copied then).
    """
    target = Path(destination)
    if target.exists() and not target.is_dir():
        raise InvalidArgument(f"{target} is not a directory")
    examples = list_examples()
    clash = [target / e.name for e in examples if (target / e.name).exists()]
    if clash:
        raise InvalidArgument(
            f"{clash[0]} already exists; not overwriting it (copy into an empty directory)"
        )
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for example in examples:
        shutil.copyfile(example.path, target / example.name)
        copied.append(target / example.name)
    return copied
