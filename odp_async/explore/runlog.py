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

    A file whose header names another run raises `InvalidArgument` naming both choosers
    when the log's chooser is not the run's, else the first field that differs (or a
    field the run does not have); for the ``code`` field (the
    fingerprint of the target's code, `odp_async.explore.fingerprint`), the module that
    changed, and for a log with none (written before it was recorded) that it cannot
    tell; a malformed line raises
    `InvalidArgument` naming the line, except a torn last line (the writer was killed
    mid-line), which is ignored.  Every field of every line is checked: a key written
    twice, a key no line has, ``first``/``last``/``steps``/``unfinished`` not ints (a
    bool or a float is not one) or out of range (``0 <= first < last <= 2**64``,
    ``0 <= steps <= MAX_LOG_STEPS``, ``0 <= unfinished <= last - first``), ``failing``
    not strictly ascending indices in ``first+1 .. last``, ``worker`` not a printable
    string of 1..`MAX_WORKER` characters, and a chunk that overlaps a chunk of an
    earlier line (its schedules would count twice) are refused, and so is a chunk line
    whose ``crc`` (the CRC-32 of its other fields, `chunk_line`) is missing or does not
    match them: a line edited by hand (a failing index removed, say) is named, not
    trusted.  The log records
    chunks; it is trusted for them (a chunk is not run again), except that a resumed
    run replays the first failing schedule it reports (see the runner).

See also
    `odp_async.explore.runner` (``resume=``).
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import zlib
from collections.abc import Callable, Mapping
from typing import IO, Any

import attrs

from .._user_files import UnreadableFile, open_log, read_text
from ..errors import InvalidArgument
from .fingerprint import describe_change

__all__ = ["Chunk", "RunLog", "chunk_line"]

_FORMAT = "odp_async run log 1"

#: The keys of a chunk line (``unfinished`` is optional: absent from older logs).
_CHUNK_KEYS = frozenset({"first", "last", "steps", "failing", "worker", "unfinished", "crc"})

#: Schedule indices are below 2**64 (`ExploreConfig.start`); a chunk ends at most there.
_TOP = 2**64

#: The most steps a line may record (above any run: 2**64 schedules of `MAX_STEPS`).
MAX_LOG_STEPS = 2**94

#: The longest worker name a line may record.
MAX_WORKER = 1000


@attrs.frozen
class Chunk:
    """A completed chunk: schedules ``first .. last-1`` ran, taking `steps` steps; the
    1-based indices of the failing ones are `failing`; `worker` ran it; `unfinished` of
    them reached the step bound unfinished (``"unfinished"``, absent from older logs: 0);
    `line` is its line in the file it was read from (0: not read from a file)."""

    first: int
    last: int
    steps: int
    failing: tuple[int, ...]
    worker: str
    unfinished: int = 0
    line: int = attrs.field(default=0, eq=False)


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
            _same_chooser(name, header.get("chooser"), identity.get("chooser"))
            unknown = sorted(set(header) - set(identity))
            if unknown:
                raise InvalidArgument(
                    f"{name} is the log of another run: its header has a field "
                    f"{_brief(unknown[0])} this run does not"
                )
            for key, value in identity.items():
                theirs_value = header.get(key)
                if key == "code" and theirs_value != value:
                    raise InvalidArgument(_code_changed(name, theirs_value, value))
                if type(theirs_value) is not type(value) or theirs_value != value:
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

    @staticmethod
    def kept(
        path: str | os.PathLike[str],
        first: int,
        last: int,
        rerun: Callable[[int, int], int] | None = None,
    ) -> int:
        """How many schedules of ``[first, last)`` a run resumed from the log at `path`
        takes from it rather than running again: those of the chunks it records inside
        that range (the runner's rule), less ``rerun(a, b)`` of each chunk ``[a, b)``
        (a portfolio's dpor slots: they run again).  0 for a log that cannot be read."""
        try:
            _, chunks, _ = _read(os.fspath(path))
        except InvalidArgument:
            return 0
        return sum(
            c.last - c.first - (rerun(c.first, c.last) if rerun else 0)
            for c in chunks
            if first <= c.first and c.last <= last
        )

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
        _write(self.path, self._file, chunk_line(line))

    def close(self) -> None:
        self._file.close()


def _code_changed(name: str, theirs: object, ours: Any) -> str:
    """The refusal of a log whose target's code differs from this run's (`identity`'s
    ``code``: `odp_async.explore.fingerprint`), naming what changed."""
    if theirs is None:
        return (
            f"{name} records no fingerprint of the target's code (written by an older "
            "odp_async): it cannot tell whether the code changed since; remove it to "
            "explore afresh"
        )
    if not isinstance(theirs, dict):
        return f"{name} is the log of another run: its code differs"
    return (
        f"{name} is the log of other code: {describe_change(theirs, ours)} since it was "
        "written (its recorded schedules may no longer pass); remove it to explore afresh"
    )


def chunk_line(fields: Mapping[str, Any]) -> str:
    """The text of the chunk line recording `fields` (newline-terminated): the fields,
    then ``"crc"``, the CRC-32 of their canonical JSON (`_checksum`), so a line edited
    by hand is refused, naming it, rather than trusted."""
    return json.dumps({**fields, "crc": _checksum(fields)}) + "\n"


def _checksum(fields: Mapping[str, Any]) -> str:
    # Over the values as parsed (keys sorted, no spaces): spacing may change, values not.
    text = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))
    return f"{zlib.crc32(text.encode()):08x}"


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
    _no_overlap(name, chunks)
    return header, chunks, len((complete + "\n").encode()) if torn else None


def _write(name: str, file: IO[str], line: str) -> None:
    try:
        file.write(line)
        file.flush()
    except OSError as err:
        raise UnreadableFile(name, f"cannot write it: {err.strerror or err}", "os") from None


def _parse(name: str, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as e:
        raise InvalidArgument(
            f"{name} line {number} writes the field {_brief(e.args[0])} twice"
        ) from None
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        value = None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{name} line {number} is not a run log line: {line[:60]!r}")
    return value


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            raise _DuplicateKey(key)
        fields[key] = value
    return fields


def _same_chooser(name: str, theirs: object, ours: object) -> None:
    """`InvalidArgument` naming both choosers when the log at `name` was written by
    another chooser than this run's: the first difference a user can act on (the fields
    that chooser records, pct's ``k``, random's ``stream``..., follow from it)."""
    if theirs == ours or theirs is None or ours is None:
        return
    shown = theirs if isinstance(theirs, str) and theirs.isidentifier() else _brief(theirs)
    raise InvalidArgument(
        f"{name} is the log of a {shown} run, and this run's chooser is {ours}: resume it "
        f"with --chooser {shown}, or give this run another log file"
    )


def _brief(value: object) -> str:
    text = json.dumps(value)  # as the line writes it: true, not True
    return text if len(text) <= 60 else text[:57] + "..."


def _int(name: str, number: int, data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data[key]
    if type(value) is not int or not low <= value <= high:  # a bool is not an int here
        raise InvalidArgument(
            f"{name} line {number} records {key} {_brief(value)}: "
            f"not an int in {_show(low)}..{_show(high)}"
        )
    return value


def _show(value: int) -> str:
    """`value`, a power of two or one below it as ``2**k`` or ``2**k-1``."""
    for power, text in ((value, ""), (value + 1, "-1")):
        if power > 2**20 and power & (power - 1) == 0:
            return f"2**{power.bit_length() - 1}{text}"
    return str(value)


def _chunk(name: str, number: int, data: dict[str, Any]) -> Chunk:
    chunk = _fields(name, number, data)
    crc = data.get("crc")
    if crc is None:
        raise InvalidArgument(
            f'{name} line {number} has no checksum ("crc"): a line this odp_async '
            "writes has one (a log of an older odp_async: start a new log)"
        )
    fields = {key: value for key, value in data.items() if key != "crc"}
    if crc != _checksum(fields):
        raise InvalidArgument(
            f"{name} line {number} fails its checksum (crc {_brief(crc)}): the line was "
            "edited; restore it, or delete it (its schedules run again)"
        )
    return chunk


def _fields(name: str, number: int, data: dict[str, Any]) -> Chunk:
    missing = sorted({"first", "last", "steps", "failing", "worker"} - set(data))
    unknown = sorted(set(data) - _CHUNK_KEYS)
    if missing or unknown:
        what = (
            f"has no {missing[0]!r}" if missing else f"has an unknown field {_brief(unknown[0])}"
        )
        raise InvalidArgument(f"{name} line {number} is not a run log line: it {what}")
    first = _int(name, number, data, "first", 0, _TOP - 1)
    last = _int(name, number, data, "last", first + 1, _TOP)
    steps = _int(name, number, data, "steps", 0, MAX_LOG_STEPS)
    unfinished = (
        _int(name, number, data, "unfinished", 0, last - first) if "unfinished" in data else 0
    )
    failing = data["failing"]
    if not isinstance(failing, list) or any(
        type(i) is not int or not first < i <= last for i in failing
    ):
        raise InvalidArgument(
            f"{name} line {number} records failing {_brief(failing)}: not a list of "
            f"schedule indices in {first + 1}..{last} (the chunk's, 1-based)"
        )
    if any(a >= b for a, b in itertools.pairwise(failing)):
        raise InvalidArgument(
            f"{name} line {number} records failing {_brief(failing)}: not in ascending "
            "order without repeats"
        )
    worker = data["worker"]
    if (
        not isinstance(worker, str)
        or not 0 < len(worker) <= MAX_WORKER
        or not worker.isprintable()
    ):
        raise InvalidArgument(
            f"{name} line {number} records worker {_brief(worker)}: not a printable "
            f"string of 1..{MAX_WORKER} characters"
        )
    return Chunk(first, last, steps, tuple(failing), worker, unfinished, number)


def _no_overlap(name: str, chunks: list[Chunk]) -> None:
    """Refuse a chunk that shares a schedule with the chunk of an earlier line (a run
    never records a schedule twice: the resumed run would count it twice)."""
    starts: list[int] = []  # the chunks seen so far, disjoint, by their first schedule
    seen: list[Chunk] = []
    for chunk in chunks:
        at = bisect.bisect_left(starts, chunk.first)
        for other in seen[max(at - 1, 0) : at + 1]:
            if other.first < chunk.last and chunk.first < other.last:
                raise InvalidArgument(
                    f"{name} line {chunk.line} records schedules {chunk.first}.."
                    f"{chunk.last - 1}, overlapping line {other.line}'s "
                    f"{other.first}..{other.last - 1} (a schedule is recorded once)"
                )
        starts.insert(at, chunk.first)
        seen.insert(at, chunk)
