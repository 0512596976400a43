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
        Raises `InvalidArgument` (another run's log, a malformed line) or `OSError`."""
        name = os.fspath(path)
        identity = {"format": _FORMAT, **identity}
        completed: list[Chunk] = []
        if os.path.exists(name) and os.path.getsize(name) > 0:
            with open(name, encoding="utf-8") as f:
                text = f.read()
            # A torn last line (the writer was killed mid-line) is dropped: it runs again.
            complete, _, torn = text.rpartition("\n")
            lines = complete.split("\n") if complete else []
            if not lines:
                raise InvalidArgument(f"{name} is not an odp_async run log (no header)")
            header = _parse(name, 1, lines[0])
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
            for number, line in enumerate(lines[1:], start=2):
                completed.append(_chunk(name, number, _parse(name, number, line)))
            if torn:
                with open(name, "r+b") as f:
                    f.truncate(len((complete + "\n").encode()))
            file = open(name, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        else:
            file = open(name, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
            file.write(json.dumps(identity, sort_keys=True) + "\n")
            file.flush()
        return cls(name, completed, file)

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
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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
