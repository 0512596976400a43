"""Replay tokens: a failing schedule as compact, versioned text that any process can replay.

Contract
    A token is ``odp1.<payload>.<crc>``: version 1, then the zlib-compressed, base64url
    text of a small JSON header (scenario source, its parameters, protocol, options, step
    bound, the violation kind and step it reproduces, the odp_async version that made it)
    and the
    schedule (the chooser's answers, varint-packed), then a CRC-32 of the payload.

    `decode_token` refuses anything else with `InvalidArgument` naming what is wrong: an
    unknown version, a truncated or edited token (CRC), a payload that does not unpack.
    `replay_token` re-runs the exact schedule and raises `ReplayMismatch` if the run does
    not reproduce the recorded violation kind at the recorded step: a token never
    silently diverges.

See also
    `odp_async.explore.runner` (prints a token with every failure).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Sequence
from typing import Any

import attrs

from .._runtime.choosers import ReplayChooser
from ..errors import InvalidArgument, ReplayMismatch
from .target import Execution, Target

__all__ = ["TOKEN_VERSION", "DecodedToken", "decode_token", "encode_token", "replay_token"]

TOKEN_VERSION = 1
_PREFIX = f"odp{TOKEN_VERSION}"


@attrs.frozen
class DecodedToken:
    source: str
    protocol: str | None
    options: dict[str, Any]
    max_steps: int
    kind: str | None
    step: int | None
    version: str
    schedule: tuple[int, ...]
    params: dict[str, int] = attrs.field(factory=dict)

    def target(self) -> Target:
        return Target.resolve(self.source, self.protocol, self.options, self.params)


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
            continue
        values.append(v)
        v = shift = 0
    if shift:
        raise InvalidArgument("malformed token: the schedule ends in the middle of a number")
    return tuple(values)


def encode_token(
    target: Target, schedule: Sequence[int], execution: Execution, max_steps: int
) -> str:
    """The token replaying `schedule` on `target` to `execution`'s first violation."""
    from .. import __version__

    if target.source is None:
        raise InvalidArgument(
            f"scenario {target.scenario.name!r} was given as an object, not by name or file, "
            "so no other process could find it: register it by name to get a token"
        )
    failure = execution.failure
    header = {
        "s": target.source,
        "p": target.protocol,
        "o": dict(target.options),
        "m": max_steps,
        "k": failure.kind if failure else None,
        "t": failure.step if failure else None,
        "v": __version__,
        "a": dict(target.params),
    }
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode() + b"\0"
    payload = base64.urlsafe_b64encode(zlib.compress(raw + _pack(schedule), 9)).rstrip(b"=")
    text = payload.decode()
    return f"{_PREFIX}.{text}.{zlib.crc32(payload):08x}"


def decode_token(token: str) -> DecodedToken:
    """Unpack a token, or raise `InvalidArgument` saying what is wrong with it."""
    if not isinstance(token, str):
        raise InvalidArgument(f"a token is a str, got {type(token).__name__}")
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].startswith("odp"):
        raise InvalidArgument(
            f"malformed token {_short(token)}: expected 'odp{TOKEN_VERSION}.<payload>.<crc>'"
        )
    version, payload, crc = parts
    if version != _PREFIX:
        raise InvalidArgument(
            f"token version {version!r} is not supported (this odp_async reads {_PREFIX!r})"
        )
    if f"{zlib.crc32(payload.encode()):08x}" != crc:
        raise InvalidArgument(
            f"token {_short(token)} fails its checksum: it was truncated or edited"
        )
    try:
        blob = zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        raw, _, packed = blob.partition(b"\0")
        header = json.loads(raw)
        decoded = DecodedToken(
            source=header["s"],
            protocol=header["p"],
            options=dict(header["o"]),
            max_steps=int(header["m"]),
            kind=header["k"],
            step=header["t"],
            version=str(header["v"]),
            schedule=_unpack(packed),
            params={str(k): int(v) for k, v in header.get("a", {}).items()},
        )
    except (binascii.Error, zlib.error, ValueError, KeyError, TypeError) as e:
        raise InvalidArgument(f"malformed token {_short(token)}: {e}") from None
    return decoded


def replay_token(token: str | DecodedToken, *, trace: bool = False) -> Execution:
    """Re-run a token's schedule; `ReplayMismatch` unless it reproduces the same failure."""
    from .. import __version__

    decoded = decode_token(token) if isinstance(token, str) else token
    target = decoded.target()
    chooser = ReplayChooser(decoded.schedule)
    try:
        execution = target.run(chooser, max_steps=decoded.max_steps, trace=trace)
    except ReplayMismatch as e:
        raise ReplayMismatch(f"{e}{_version_note(decoded.version, __version__)}") from None
    failure = execution.failure
    got = (failure.kind, failure.step) if failure else (None, None)
    if got != (decoded.kind, decoded.step) or not chooser.is_exhausted:
        expected = f"{decoded.kind} at step {decoded.step}" if decoded.kind else "no failure"
        found = f"{got[0]} at step {got[1]}" if got[0] else "no failure"
        raise ReplayMismatch(
            f"the token for {target.label} recorded {expected}, the replay gave {found}"
            f"{_version_note(decoded.version, __version__)}"
        )
    return execution


def _version_note(recorded: str, running: str) -> str:
    if recorded == running:
        return ""
    return f" (the token was made by odp_async {recorded}; this is {running})"


def _short(token: str) -> str:
    return repr(token if len(token) <= 40 else token[:37] + "...")
