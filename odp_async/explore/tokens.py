"""Replay tokens: a failing schedule as compact, versioned text that any process can replay.

Contract
    A token is ``odp2.<payload>.<crc>``: version 2, then the zlib-compressed, base64url
    text of a small JSON header and the schedule (the chooser's answers, varint-packed),
    then a CRC-32 of ``odp2.<payload>`` (prefix included: a token whose prefix was
    edited fails it).  A token made before the CRC covered the prefix (a CRC of the
    payload alone) still decodes: its prefix decides nothing about what it replays, and
    one whose header has a field version 1 never wrote under ``odp1`` is refused as
    edited.  The header holds the target as `TargetSpec` values
    (a built-in name, ``classic:<name>`` or ``module:qualname``; the protocol's name or
    ``module:qualname``; options; scenario parameters; a function's JSON arguments; a
    scenario file's basename, SHA-256 and whole text, never its path), the step bound,
    the violation kind and step it reproduces (for an ``error``, also the type names of
    the exceptions raised: field ``x``, optional, so tokens made before it still decode),
    the odp_async version that made it, and
    optionally the id of the explored test it belongs to and the chooser (or the
    portfolio's member, such as ``pct-d4`` or ``dpor``) that found it (`found_by`: an
    optional field, so version 2 tokens without it still decode).  Version 1 tokens (built-in
    targets, files by path) still decode.  Only the format prefix (``odp1``, ``odp2``)
    decides whether a token is read: the odp_async version in the header is a record, not
    a format, so a token made by another odp_async (older or newer) replays here when its
    format is read, and a replay that does not reproduce it says which version made it
    (`ReplayMismatch`, with ``the token was made by odp_async X; this is Y``; the
    ``replay`` command notes it on stderr even when it reproduces).

    `decode_token` ignores whitespace anywhere in a token (a paste wrapped across lines)
    and refuses anything else with `InvalidArgument` naming what is wrong: a
    character that is not ASCII (such as a byte that is not UTF-8), an unknown version, a
    truncated or edited token (CRC), a payload that does not unpack (or inflates past
    `MAX_INFLATED` bytes), a field the header may not have (one this odp_async does not
    know, one written twice; options with no protocol to take them), a header field of
    the wrong type or out of its range (a violation kind not in `VIOLATION_KINDS`, a
    chooser not in `FINDERS`, the step bound in ``1..MAX_STEPS``, parameters a table of
    names to ints in ``1..MAX_PARAM``, options a table of booleans, finite numbers and strings, a
    function target's arguments JSON values with ints of at most `MAX_ARG_INT_BITS` bits and
    finite floats, JSON nested at most `MAX_JSON_DEPTH` deep), a schedule entry above
    `MAX_CHOICE`.  `encode_token` checks its header as `decode_token` will, so it never
    issues a token that is then refused, and refuses a target no other process could rebuild
    (a closure, arguments out of those ranges...) with `InvalidArgument` saying why.
    `replay_token` re-runs the exact schedule and raises `ReplayMismatch` if the run asks
    for other, more or fewer choices than recorded, or does not reproduce the recorded
    violation kind at the recorded step (for an ``error``, raising the recorded exception
    types: an ``assert`` edited into a ``KeyError`` is not the same failure), or (given
    the scenario file) the file's content changed: a token never silently diverges.

See also
    `odp_async.explore.runner` (prints a token with every failure).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import zlib
from collections.abc import Sequence
from typing import Any, Final

import attrs

from .._runtime.choosers import ReplayChooser
from .._runtime.interrupts import marking_ctrl_c
from ..check import VIOLATION_KINDS
from ..errors import InvalidArgument, ReplayMismatch
from ..scenarios.files import ScenarioFileError
from .arguments import require_bool, require_path, show
from .config import MAX_STEPS
from .failures import error_leaves
from .portfolio import FINDERS
from .refs import ScenarioText
from .target import MAX_ARG_INT_BITS, Execution, Target, TargetSpec

__all__ = ["TOKEN_VERSION", "DecodedToken", "decode_token", "encode_token", "replay_token"]

TOKEN_VERSION = 2
_PREFIX = f"odp{TOKEN_VERSION}"
#: Versions this odp_async still reads (1: no file content, no test id, no arguments).
_READS = ("odp1", _PREFIX)


@attrs.frozen
class DecodedToken:
    """What a token says: the target (`spec`), the step bound, the failure it reproduces
    (`kind` at `step`), the odp_async `version` that made it, and the `schedule`."""

    source: str
    protocol: str | None
    options: dict[str, Any]
    max_steps: int
    kind: str | None
    step: int | None
    version: str
    schedule: tuple[int, ...]
    params: dict[str, int] = attrs.field(factory=dict)
    #: The id of the explored test the token belongs to (pytest's node id), if any.
    test_id: str | None = None
    #: A scenario file's content (file targets).
    file: ScenarioText | None = None
    #: A function target's arguments.
    args: tuple[Any, ...] = ()
    #: The chooser, or the portfolio's member, that found the failure (None: not recorded).
    found_by: str | None = None
    #: For an ``error`` failure, the type names (``__qualname__``) of the exceptions the
    #: run raised, in raise order (`odp_async.explore.failures.error_leaves`); None: not
    #: recorded (another kind, or a token made before they were).
    exceptions: tuple[str, ...] | None = None

    @property
    def spec(self) -> TargetSpec:
        return TargetSpec(
            self.source, self.protocol, self.options, self.params, self.file, self.args
        )

    def target(self, *, scenario_file: str | os.PathLike[str] | None = None) -> Target:
        """The target to replay on (see `Target.from_spec` for `scenario_file`).  A
        scenario file's entry of the token's own protocol that cannot be loaded (its
        module is not on the path) raises `InvalidArgument` naming that protocol."""
        try:
            return Target.from_spec(self.spec, scenario_file=scenario_file)
        except ScenarioFileError as e:
            raise _own_protocol_error(e, self.protocol) from None


def _pack(values: Sequence[int]) -> bytes:
    out = bytearray()
    for v in values:
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _unpack(data: bytes) -> tuple[int, ...]:
    values: list[int] = []
    v = shift = 0
    for byte in data:
        v |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 35:
                raise InvalidArgument(
                    f"malformed token: a schedule entry is above {MAX_CHOICE} (a task index)"
                )
            continue
        if v > MAX_CHOICE:
            raise InvalidArgument(
                f"malformed token: a schedule entry is above {MAX_CHOICE} (a task index)"
            )
        values.append(v)
        v = shift = 0
    if shift:
        raise InvalidArgument("malformed token: the schedule ends in the middle of a number")
    return tuple(values)


def encode_token(
    target: Target,
    schedule: Sequence[int],
    execution: Execution,
    max_steps: int,
    *,
    test_id: str | None = None,
    found_by: str | None = None,
) -> str:
    """The token replaying `schedule` on `target` to `execution`'s first violation.

    Raises `InvalidArgument` (saying why) for a target no other process could rebuild.
    """
    from .. import __version__

    spec = target.spec()
    failure = execution.failure
    header: dict[str, Any] = {
        "s": spec.source,
        "p": spec.protocol,
        "o": dict(spec.options),
        "m": max_steps,
        "k": failure.kind if failure else None,
        "t": failure.step if failure else None,
        "v": __version__,
        "a": dict(spec.params),
    }
    if test_id is not None:
        header["i"] = test_id
    if found_by is not None:
        header["c"] = found_by
    raised = _raised_types(execution)
    if raised is not None:
        header["x"] = list(raised)
    if spec.file is not None:
        header["f"] = [spec.file.name, spec.file.sha256, spec.file.text]
    if spec.args:
        header["g"] = list(spec.args)
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    try:
        _header(raw)  # what `decode_token` will check: never issue a token it refuses
    except ValueError as e:
        raise InvalidArgument(f"a token cannot carry {spec.source!r}: {e}") from None
    raw += b"\0"
    payload = base64.urlsafe_b64encode(zlib.compress(raw + _pack(schedule), 9)).rstrip(b"=")
    text = payload.decode()
    return f"{_PREFIX}.{text}.{_checksum(_PREFIX, text)}"


def _checksum(version: str, payload: str) -> str:
    """The CRC-32 (8 hex digits) of ``version.payload``: the prefix is covered, so a
    token whose prefix was edited fails it."""
    return f"{zlib.crc32(f'{version}.{payload}'.encode()):08x}"


#: What a paste may add inside a token (ASCII only: any other character is named).
_ASCII_SPACE: Final = re.compile(r"[ \t\r\n\f\v]+")

#: Header fields a version 1 token never wrote: under ``odp1`` with a payload-only CRC
#: (a token made before the CRC covered the prefix), they show the prefix was edited.
_V2_ONLY: Final = ("i", "f", "g", "c", "x")


def decode_token(token: str) -> DecodedToken:
    """Unpack a token, or raise `InvalidArgument` saying what is wrong with it."""
    if not isinstance(token, str):
        raise InvalidArgument(f"a token is a str, got {type(token).__name__}")
    token = _ASCII_SPACE.sub("", token)  # a paste wrapped across lines, or indented
    if not token.isascii():  # a token is base64url and hex (a byte past UTF-8 arrives as
        # a lone surrogate, which no codec encodes: the checksum's `encode` raised)
        at = next(i for i, ch in enumerate(token) if not ch.isascii())
        raise InvalidArgument(
            f"malformed token {_short(token)}: character {at + 1} ({token[at]!r}) is not "
            "ASCII; a token is ASCII"
        )
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].startswith("odp"):
        raise InvalidArgument(
            f"malformed token {_short(token)}: expected 'odp{TOKEN_VERSION}.<payload>.<crc>'"
        )
    version, payload, crc = parts
    if version not in _READS:
        raise InvalidArgument(
            f"token version {version!r} is not supported (this odp_async reads "
            f"{', '.join(map(repr, _READS))})"
        )
    corrupted = InvalidArgument(
        f"token {_short(token)} fails its checksum: it was truncated or edited"
    )
    # A token made before the checksum covered the prefix has the CRC of its payload
    # alone.  Still read: its prefix decides nothing once it is read (both
    # formats decode one way), so an edited prefix cannot change what it replays; and
    # a payload with a field version 1 never wrote under ``odp1`` is an edit, refused.
    legacy = crc != _checksum(version, payload)
    if legacy and f"{zlib.crc32(payload.encode()):08x}" != crc:
        raise corrupted
    try:
        blob = _inflate(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        raw, _, packed = blob.partition(b"\0")
        header = _header(raw)
        decoded = DecodedToken(
            source=header["s"],
            protocol=header["p"],
            options=header["o"],
            max_steps=header["m"],
            kind=header["k"],
            step=header["t"],
            version=header["v"],
            schedule=_unpack(packed),
            params=header["a"],
            test_id=header["i"],
            file=_file(header["f"]),
            args=tuple(header["g"]),
            found_by=header["c"],
            exceptions=header["x"],
        )
    except (binascii.Error, zlib.error, ValueError) as e:
        raise InvalidArgument(f"malformed token {_short(token)}: {e}") from None
    if legacy and version == "odp1" and any(header[k] for k in _V2_ONLY):
        raise corrupted
    return decoded


def _file(value: object) -> ScenarioText | None:
    if value is None:
        return None
    if not (
        isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)
    ):
        raise ValueError("the scenario file entry is not [name, sha256, text]")
    carried = ScenarioText(*value)
    if not carried.is_intact():
        raise ValueError(
            f"the text of scenario file {carried.name!r} does not hash to the sha256 beside it"
        )
    return carried


# --- the header's schema ------------------------------------------------------------------
# Every field of a token's header is checked against its type and range here, before any
# of it is used: a token is input (pasted, edited, fuzzed), and its checksum only proves
# it was not damaged by accident.

#: The most bytes a token's payload may inflate to (a scenario file's text included).
MAX_INFLATED: Final = 16 * 1024 * 1024
#: The deepest nesting of arrays and objects a header may have (its own is 3; a function
#: target's JSON arguments take the rest).
MAX_JSON_DEPTH: Final = 32
#: The largest scenario parameter a token may carry.
MAX_PARAM: Final = 1_000_000
#: The largest schedule entry (an index among the runnable tasks).
MAX_CHOICE: Final = 2**31 - 1
#: The largest int an option may be (an argument's: `MAX_ARG_INT_BITS` bits).
_MAX_INT: Final = 2**63


def _inflate(data: bytes) -> bytes:
    """zlib-decompress `data` to at most `MAX_INFLATED` bytes (no decompression bomb)."""
    inflater = zlib.decompressobj()
    blob = inflater.decompress(data, MAX_INFLATED)
    if inflater.unconsumed_tail:
        raise ValueError(f"the payload inflates to more than {MAX_INFLATED} bytes")
    if not inflater.eof:
        raise ValueError("the payload is a truncated zlib stream")
    return blob


def _json_depth(raw: bytes) -> int:
    """How deeply `raw`'s arrays and objects nest (strings skipped), without recursing."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", raw)):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_STRINGS: Final = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS: Final = re.compile(rb"[\[\]{}]")


#: The most digits an integer of a header may have: beyond what any field holds (an
#: argument, `MAX_ARG_INT_BITS` bits, has up to 1,234), below Python's limit of 4,300.
MAX_INT_DIGITS: Final = 1300


def _int(text: str) -> int:
    # Before Python's own limit (4,300 digits), whose message advises a call of its API.
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _header(raw: bytes) -> dict[str, Any]:
    """The checked header: every field present (defaults filled in), each of its type and
    in its range.  Raises ValueError naming the field."""
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"the header nests {depth} deep (at most {MAX_JSON_DEPTH})")
    try:
        header = json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_int=_int)
    except RecursionError:  # the depth check makes this unreachable; a guard all the same
        raise ValueError("the header nests too deep") from None
    if not isinstance(header, dict):
        raise ValueError(f"the header is a JSON {_kind(header)}, expected an object")
    for key in ("s", "p", "o", "m", "k", "t", "v"):
        if key not in header:
            raise ValueError(f"the header has no field {key!r}")
    for key in header:
        if key not in _FIELDS:
            raise ValueError(
                f"the header has a field this odp_async does not know: "
                f"{json.dumps(key)[:40]} (it knows {', '.join(_FIELDS)})"
            )
    if header["p"] is None and header["o"]:
        raise ValueError(
            f"the header sets protocol options ('o': {_brief(header['o'])}) but names no "
            "protocol ('p' is null): the options would apply to nothing"
        )
    version = _text(header, "v", "the version")
    if len(version) > 40 or not version.isprintable():
        raise ValueError(f"the version ('v') is {_brief(version)}, expected a version string")
    return {
        "s": _text(header, "s", "the source"),
        "p": _text(header, "p", "the protocol", optional=True),
        "o": _options(header.get("o")),
        "m": _count(header, "m", "the step bound", 1, MAX_STEPS),
        "k": _known(header, "k", "the violation kind", VIOLATION_KINDS),
        "t": _count(header, "t", "the violation step", 0, MAX_STEPS, optional=True),
        "v": version,
        "a": _params(header.get("a", {})),
        "i": _text(header, "i", "the test id", optional=True),
        "f": header.get("f"),  # checked by `_file`
        "g": _args(header.get("g", [])),
        "c": _known(header, "c", "the chooser that found it", sorted(FINDERS)),
        "x": _type_names(header),
    }


#: The most exception types a token records (an ExceptionGroup's leaves), and the
#: longest name.
MAX_RAISED: Final = 64
_MAX_TYPE_NAME: Final = 200


def _type_names(header: dict[str, Any]) -> tuple[str, ...] | None:
    # "x": the exception types an error failure raised (`_raised_types`), or absent.
    value = header.get("x")
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_RAISED:
        raise ValueError(
            f"the exceptions ('x') are {_brief(value)}, expected a list of 1 to "
            f"{MAX_RAISED} type names"
        )
    for name in value:
        if (
            not isinstance(name, str)
            or not 0 < len(name) <= _MAX_TYPE_NAME
            or not name.isprintable()
        ):
            raise ValueError(f"the exceptions ('x') hold {_brief(name)}, expected a type name")
    return tuple(value)


def _raised_types(execution: Execution) -> tuple[str, ...] | None:
    """The type names of the exceptions `execution`'s ``error`` failure raised, in raise
    order; None for a run whose first failure is not an ``error``."""
    failure = execution.failure
    if failure is None or failure.kind != "error":
        return None
    return tuple(leaf.type_name for leaf in error_leaves(execution.sim))[:MAX_RAISED] or None


def raised_otherwise(decoded: DecodedToken, execution: Execution) -> str | None:
    """Whether a replay that reproduced `decoded`'s failure kind and step raised other
    exceptions than the run that made the token (an ``assert`` become a ``KeyError``):
    one clause saying so, or None (the same types, or none recorded)."""
    if decoded.exceptions is None:
        return None
    got = _raised_types(execution)
    if got == decoded.exceptions:
        return None
    return (
        f"recorded an error at step {decoded.step} raising {', '.join(decoded.exceptions)}, "
        f"the replay raised {', '.join(got or ('nothing',))} there"
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with each key once; a key written twice would let the header say
    two things, of which the decoder silently kept the last."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the header writes the field {json.dumps(key)[:40]} twice")
        seen[key] = value
    return seen


#: Every field a header may have (`encode_token` writes them; the first seven always).
_FIELDS: Final = ("s", "p", "o", "m", "k", "t", "v", "a", "i", "f", "g", "c", "x")


def _kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _text(header: dict[str, Any], key: str, what: str, *, optional: bool = False) -> Any:
    value = header.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        expected = "a non-empty string" + (" or null" if optional else "")
        raise ValueError(f"{what} ({key!r}) is {_brief(value)}, expected {expected}")
    return value


def _known(header: dict[str, Any], key: str, what: str, names: Sequence[str]) -> Any:
    """An optional field that names one of `names` (a name this odp_async does not know
    would be shown, or compared, as if it meant something)."""
    value = _text(header, key, what, optional=True)
    if value is not None and value not in names:
        raise ValueError(
            f"{what} ({key!r}) is {json.dumps(value)[:60]}, which this odp_async does not know "
            f"(it knows {', '.join(names)}, or null)"
        )
    return value


def _count(
    header: dict[str, Any], key: str, what: str, low: int, high: int, *, optional: bool = False
) -> Any:
    value = header.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} ({key!r}) is {_brief(value)}, expected an int in {low}..{high}")
    return value


def _scalar(value: object) -> bool:
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -_MAX_INT <= value < _MAX_INT
    return isinstance(value, float) and math.isfinite(value)


def _options(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"the options ('o') are {_brief(value)}, expected an object")
    for key, v in value.items():
        if not _scalar(v):
            raise ValueError(
                f"option {key!r} is {_brief(v)}, expected a boolean, a number or a string"
            )
    return dict(value)


def _params(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"the parameters ('a') are {_brief(value)}, expected an object")
    for key, v in value.items():
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_PARAM:
            raise ValueError(
                f"parameter {key!r} is {_brief(v)}, expected an int in 1..{MAX_PARAM}"
            )
    return dict(value)


def _args(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"the arguments ('g') are {_brief(value)}, expected an array")
    stack: list[object] = list(value)
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, int) and not isinstance(item, bool):
            if item.bit_length() > MAX_ARG_INT_BITS:
                raise ValueError(
                    f"an argument holds {_brief(item)}, out of range (at most "
                    f"{MAX_ARG_INT_BITS} bits)"
                )
        elif item is not None and not _scalar(item):
            raise ValueError(f"an argument holds {_brief(item)}, out of range")
    return value


def _brief(value: object) -> str:
    """A JSON value for a message: its kind, and the value itself when it is short."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    text = json.dumps(value) if _kind(value) != "number" or isinstance(value, int) else repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{text} (a JSON {_kind(value)})"


def _own_protocol_error(error: ScenarioFileError, protocol: object) -> InvalidArgument:
    """`error`, told as the problem of the token's own protocol (the one entry of the
    file's ``scenario.protocols`` a replay imports) when it is about that entry:
    ``the token's protocol 'mod:Cls' (scenario.protocols[6] of f.toml) cannot be loaded:
    ...``; any other problem of the file as it is."""
    key = error.key or ""
    if not (key.startswith("scenario.protocols[") and error.value == protocol):
        return error
    reason = str(error).removeprefix(f"{error.path}: {key}: ")
    return InvalidArgument(
        f"the token's protocol {protocol!r} ({key} of {error.path}) cannot be loaded: {reason}"
    )


def replay_token(
    token: str | DecodedToken,
    *,
    trace: bool = False,
    scenario_file: str | os.PathLike[str] | None = None,
) -> Execution:
    """Re-run a token's schedule; `ReplayMismatch` unless it reproduces the same failure
    (kind, step, and for an ``error`` the recorded exception types), `InvalidArgument`
    for a malformed token or a bad value of a keyword.

    A scenario-file token replays the text it carries, or, given `scenario_file`, that
    file, which must still hold the same content (`ReplayMismatch` naming the file and
    its first changed line otherwise).
    """
    from .. import __version__

    if not isinstance(token, (str, DecodedToken)):
        raise InvalidArgument(f"token must be a str (a replay token), got {show(token)}")
    require_bool("trace", trace)
    require_path("scenario_file", scenario_file)
    decoded = decode_token(token) if isinstance(token, str) else token
    target = decoded.target(scenario_file=scenario_file)
    chooser = ReplayChooser(decoded.schedule)
    try:
        with marking_ctrl_c():  # a program's own KeyboardInterrupt replays as its error
            execution = target.run(chooser, max_steps=decoded.max_steps, trace=trace)
    except ReplayMismatch as e:
        hint = "" if _CHANGED in str(e) else f": {_changed(decoded)}"
        raise ReplayMismatch(f"{e}{hint}{_version_note(decoded.version, __version__)}") from None
    failure = execution.failure
    got = (failure.kind, failure.step) if failure else (None, None)
    if got != (decoded.kind, decoded.step):
        expected = f"{decoded.kind} at step {decoded.step}" if decoded.kind else "no failure"
        found = f"{got[0]} at step {got[1]}" if got[0] else "no failure"
        raise ReplayMismatch(
            f"the token for {target.label} recorded {expected}, the replay gave {found}: "
            f"{_changed(decoded)}{_version_note(decoded.version, __version__)}"
        )
    otherwise = raised_otherwise(decoded, execution)
    if otherwise is not None:
        raise ReplayMismatch(
            f"the token for {target.label} {otherwise}: "
            f"{_changed(decoded)}{_version_note(decoded.version, __version__)}"
        )
    return execution


#: What the chooser's own mismatch messages already say of the cause.
_CHANGED: Final = "no longer matches the recording"


def _changed(decoded: DecodedToken) -> str:
    """The likely cause of a mismatch, one clause: a file token replays the very text it
    carries, so there only the code can have changed."""
    if decoded.file is not None:
        return (
            "the code under test (a protocol, a subscriber, odp_async) probably changed "
            "since the token was made"
        )
    return "the code or the scenario probably changed since the token was made"


def _version_note(recorded: str, running: str) -> str:
    if recorded == running:
        return ""
    return f" (the token was made by odp_async {recorded}; this is {running})"


def _short(token: str) -> str:
    return repr(token if len(token) <= 40 else token[:37] + "...")
