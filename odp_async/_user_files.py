"""Opening a file a user named: never a hang, never a traceback.

Contract
    `read_bytes(path)` reads a whole regular file; `read_text(path)` decodes it as UTF-8;
    `open_output(path)` (`open_output_bytes`) opens a file to write (created or
    truncated);
    `open_log(path)` opens a regular file to append to.  Each raises `UnreadableFile`
    (an `InvalidArgument`) whose message is one line ``PATH: reason`` and whose `kind`
    tells the reason apart (``"missing"``, ``"directory"``, ``"special"``, ``"text"``,
    ``"os"``, ``"path"``), never an `OSError` or `UnicodeDecodeError`.

    A file to read must be a regular file: a FIFO, socket or device is refused before it
    is opened (opening a FIFO for reading waits for a writer; reading a device may never
    end), and the open is non-blocking in case the path changed in between.  A file to
    write may also be a character device (``/dev/null``, ``/dev/stdout`` on a terminal)
    or a FIFO that has a reader (``/dev/stdout`` in a pipe): the open is non-blocking,
    so a FIFO without a reader is refused at once instead of waiting for one.
"""

from __future__ import annotations

import difflib
import errno
import fcntl
import os
import stat
from typing import IO, Final

from .errors import InvalidArgument

__all__ = [
    "UnreadableFile",
    "file_kind",
    "open_log",
    "open_output",
    "open_output_bytes",
    "read_bytes",
    "read_text",
]

_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class UnreadableFile(InvalidArgument):
    """A user's file that cannot be used: `path`, a `reason` phrase and its `kind`."""

    def __init__(self, path: str, reason: str, kind: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.kind = kind


def file_kind(mode: int) -> str:
    """What a file of `st_mode` `mode` is, when not a regular file: ``"a FIFO"``, ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def not_a_scenario_file(name: str) -> str | None:
    """Why `name`, given where a scenario goes and neither a built-in name nor a
    ``.toml`` path, names no scenario, when it names a path: an existing file (a scenario
    file's name must end in ``.toml``), a directory, a FIFO or device, or a path with a
    ``/`` that does not exist.  None when it looks like a mistyped built-in name.  Only
    stats the path: never opens it (a FIFO would wait)."""
    if "\0" in name:
        return None
    try:
        mode = os.stat(name).st_mode
    except OSError:
        close = _close_scenario_file(name)
        if close is not None:
            return f"{name}: no such scenario file (did you mean {close}?)"
        if os.sep in name or "/" in name:
            return f"{name}: no such scenario file (a scenario file's name ends in .toml)"
        return None
    if stat.S_ISDIR(mode):
        return f"{name} is a directory, not a scenario file (.toml)"
    if stat.S_ISREG(mode) and name.endswith(".py"):
        module = path_as_module(name)
        how = f"{module[0]}:NAME, {module[1]}" if module else "MODULE:NAME"
        return (
            f"{name} is a Python file, not a scenario file (.toml): name its function or "
            f"scenario as {how}"
        )
    if stat.S_ISREG(mode):
        return (
            f"{name} is a file, but a scenario file's name ends in .toml "
            f"(rename it {os.path.basename(name)}.toml)"
        )
    return f"{name} is {file_kind(mode)}, not a scenario file (.toml)"


def path_as_module(path: str) -> tuple[str, str] | None:
    """(module name, where it imports from) for a Python file's path given where a module
    goes (``mine/bank.py``: ``mine.bank``, run from the folder that holds ``mine/``;
    ``bank.py``: ``bank``, run from the folder that holds ``bank.py``; ``/src/bank.py``:
    ``bank``, with ``/src`` on PYTHONPATH), or None when `path` is no such path or names
    no module an import statement could (``../x.py``, ``my-mod.py``)."""
    path = path.replace("\\", "/")
    is_file = path.endswith(".py")
    if "/" not in path and not is_file:
        return None
    path = path[: -len(".py")] if is_file else path
    if path.startswith("/"):
        folder, name = path.rsplit("/", 1)
        where = f"with {folder or '/'} on PYTHONPATH"
    else:
        parts = [part for part in path.split("/") if part not in ("", ".")]
        name = ".".join(parts)
        held = f"{parts[0]}/" if len(parts) > 1 else f"{parts[0]}.py" if parts else ""
        where = f"run from the folder that holds {held}"
    dotted = bool(name) and all(part.isidentifier() for part in name.split("."))
    return (name, where) if dotted else None


def _close_scenario_file(name: str) -> str | None:
    """The ``.toml`` file, in the directory `name` names, whose name is closest to
    `name`'s when `name` looks like a file's (it has a ``.`` or a ``/``), or None."""
    if "." not in name and "/" not in name and os.sep not in name:
        return None
    folder, base = os.path.split(name)
    try:
        files = [f for f in os.listdir(folder or ".") if f.endswith(".toml")]
    except OSError:
        return None
    close = difflib.get_close_matches(base, files, n=1)
    return os.path.join(folder, close[0]) if close else None


def _name(path: str | os.PathLike[str]) -> str:
    name = os.fspath(path)
    if "\0" in name:
        raise UnreadableFile(repr(name), "not a path: it holds a null byte", "path")
    return name


def _os_error(name: str, err: OSError, doing: str) -> UnreadableFile:
    if isinstance(err, FileNotFoundError):
        return UnreadableFile(name, "no such file", "missing")
    if isinstance(err, IsADirectoryError):
        return UnreadableFile(name, "is a directory, not a file", "directory")
    return UnreadableFile(name, f"cannot {doing} it: {err.strerror or err}", "os")


def _refuse_special(name: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise UnreadableFile(name, "is a directory, not a file", "directory")
    if not stat.S_ISREG(mode):
        raise UnreadableFile(name, f"not a regular file ({file_kind(mode)})", "special")


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of the regular file at `path`.  Raises `UnreadableFile`."""
    name = _name(path)
    try:
        _refuse_special(name, os.stat(name).st_mode)
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise _os_error(name, err, "read") from None
    try:
        _refuse_special(name, os.fstat(fd).st_mode)  # swapped since the stat
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as err:
        raise _os_error(name, err, "read") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str]) -> str:
    """The content of the regular file at `path` as UTF-8 text.  Raises `UnreadableFile`
    (kind ``"text"`` when it is not UTF-8, naming the first bad byte's offset)."""
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableFile(_name(path), f"not UTF-8 text (byte {e.start})", "text") from None


def _open_write(name: str, flags: int, *, special: bool) -> int:
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG  # to be created
    except OSError as err:
        raise _os_error(name, err, "write") from None
    if not (special and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode))):
        _refuse_special(name, mode)
    try:
        fd = os.open(name, flags | os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if stat.S_ISFIFO(mode) and err.errno == errno.ENXIO:  # nobody reads it
            raise UnreadableFile(name, "a FIFO that nobody reads", "special") from None
        raise _os_error(name, err, "write") from None
    now = os.fstat(fd).st_mode
    if not (special and (stat.S_ISFIFO(now) or stat.S_ISCHR(now))) and not stat.S_ISREG(now):
        os.close(fd)
        _refuse_special(name, now)
    # Blocking writes from here on: a FIFO's reader is there, and waits for the data.
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def open_output(path: str | os.PathLike[str]) -> IO[str]:
    """`path` opened to write UTF-8 text from its start (created, or truncated): a
    regular file, a character device or a FIFO with a reader.  Raises `UnreadableFile`;
    write errors later are `OSError`s for the caller to name."""
    fd = _open_write(_name(path), os.O_CREAT | os.O_TRUNC, special=True)
    return os.fdopen(fd, "w", encoding="utf-8")


def open_output_bytes(path: str | os.PathLike[str]) -> IO[bytes]:
    """`open_output` for bytes."""
    fd = _open_write(_name(path), os.O_CREAT | os.O_TRUNC, special=True)
    return os.fdopen(fd, "wb")


def open_log(path: str | os.PathLike[str]) -> IO[str]:
    """The regular file at `path` (created if missing) opened to append UTF-8 lines.
    Raises `UnreadableFile`."""
    name = _name(path)
    fd = _open_write(name, os.O_CREAT | os.O_APPEND, special=False)
    return os.fdopen(fd, "a", encoding="utf-8")
