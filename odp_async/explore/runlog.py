"""The log of a seeded exploration's completed chunks, to resume it.

Contract
    `RunLog.open(path, identity)` opens (or creates) a JSON-lines file: a header line with
    the run's `identity` (what makes schedule ``i`` the same schedule: the target, the
    chooser, the seed, ``max_steps``, PCT's depth and k), then one line per completed
    chunk: its range of schedule indices ``[first, last)``, the steps it took, the 1-based
    indices of its failing schedules, and the worker that ran it.  `record` appends (and
    flushes) a line; `completed` holds what the file already recorded.  The budget and
    the start are not part of the identity: a resumed run may cover a wider or another
    range, and reuses whichever recorded chunks fall inside it.

    A file whose header names another run raises `InvalidArgument` naming the first field
    that differs; a malformed line raises `InvalidArgument` naming the line, except a
    torn last line (the writer was killed mid-line), which is ignored.

See also
    `odp_async.explore.runner` (``resume=``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import IO, Any

import attrs

from .._user_files import UnreadableFile, open_log, read_text
from ..errors import InvalidArgument

__all__ = ["Chunk", "RunLog"]

_FORMAT = "odp_async run log 1"


@attrs.frozen
class Chunk:
    """A completed chunk: schedules ``first .. last-1`` ran, taking `steps` steps; the
    1-based indices of the failing ones are `failing`; `worker` ran it; `unfinished` of
    them reached the step bound unfinished (``"unfinished"``, absent from older logs: 0)."""

    first: int
    last: int
    steps: int
    failing: tuple[int, ...]
    worker: str
    unfinished: int = 0


@attrs.define
class RunLog:
    """An open run log (see the module docstring); close it when done."""

    path: str
    completed: list[Chunk]
    _file: IO[str]

    @classmethod
    def open(cls, path: str | os.PathLike[str], identity: Mapping[str, Any]) -> RunLog:
        """Open the log at `path` for `identity`, creating it if it does not exist.
        Raises `InvalidArgument` (another run's log, a malformed line, a file that is not
        a regular UTF-8 file or cannot be read or written: one line naming it)."""
        name = os.fspath(path)
        identity = {"format": _FORMAT, **identity}
        header, completed, keep = _read(name)
        if header is not None:
            for key, value in identity.items():
                if header.get(key) != value:
                    theirs, ours = repr(header.get(key)), repr(value)
                    if len(theirs) + len(ours) > 120:  # a scenario file's text: no quote
                        raise InvalidArgument(
                            f"{name} is the log of another run: its {key} differs"
                        )
                    raise InvalidArgument(
                        f"{name} is the log of another run: its {key} is {theirs}, "
                        f"this run's is {ours}"
                    )
            if keep is not None:  # drop the torn last line
                try:
                    os.truncate(name, keep)
                except OSError as err:
                    raise UnreadableFile(name, f"cannot write it: {err.strerror}", "os") from None
        file = open_log(name)
        if header is None:
            _write(name, file, json.dumps(identity, sort_keys=True) + "\n")
        return cls(name, completed, file)

    @staticmethod
    def check(path: str | os.PathLike[str]) -> None:
        """Raise what `open` would for the file at `path` whatever the run (a file that
        cannot be read, is not UTF-8 or holds a malformed line), without writing it."""
        _read(os.fspath(path))

    def record(self, chunk: Chunk) -> None:
        """Append a completed chunk (flushed at once)."""
        line = {
            "first": chunk.first,
            "last": chunk.last,
            "steps": chunk.steps,
            "failing": list(chunk.failing),
            "worker": chunk.worker,
        }
        if chunk.unfinished:
            line["unfinished"] = chunk.unfinished
        _write(self.path, self._file, json.dumps(line) + "\n")

    def close(self) -> None:
        self._file.close()


def _read(name: str) -> tuple[dict[str, Any] | None, list[Chunk], int | None]:
    """The log at `name`: its header (None: no log yet), its chunks, and the length to
    truncate it to when its last line is torn (the writer was killed mid-line: that
    chunk runs again), else None."""
    try:
        text = read_text(name)
    except UnreadableFile as e:
        if e.kind != "missing":
            raise
        text = ""
    if not text:
        return None, [], None
    complete, _, torn = text.rpartition("\n")
    lines = complete.split("\n") if complete else []
    if not lines:
        raise InvalidArgument(f"{name} is not an odp_async run log (no header)")
    header = _parse(name, 1, lines[0])
    chunks = [_chunk(name, n, _parse(name, n, line)) for n, line in enumerate(lines[1:], 2)]
    return header, chunks, len((complete + "\n").encode()) if torn else None


def _write(name: str, file: IO[str], line: str) -> None:
    try:
        file.write(line)
        file.flush()
    except OSError as err:
        raise UnreadableFile(name, f"cannot write it: {err.strerror or err}", "os") from None


def _parse(name: str, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{name} line {number} is not a run log line: {line[:60]!r}")
    return value


def _chunk(name: str, number: int, data: dict[str, Any]) -> Chunk:
    try:
        first, last, steps = (int(data[k]) for k in ("first", "last", "steps"))
        failing = tuple(int(i) for i in data["failing"])
        worker = str(data["worker"])
        unfinished = int(data.get("unfinished", 0))
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"{name} line {number} is not a run log line") from None
    if not 0 <= first < last or any(not first < i <= last for i in failing):
        raise InvalidArgument(f"{name} line {number} records an impossible chunk")
    if not 0 <= unfinished <= last - first:
        raise InvalidArgument(f"{name} line {number} records an impossible chunk")
    return Chunk(first, last, steps, failing, worker, unfinished)
