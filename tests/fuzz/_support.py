"""Helpers of the fuzz tests: re-encoding a token's header, TOML text from plain values,
and the check every CLI outcome must pass."""

from __future__ import annotations

import base64
import json
import math
import zlib
from typing import Any

from odp_async.cli import ExitCode


def token_parts(token: str) -> tuple[str, bytes, bytes]:
    """A token's version, header JSON text and packed schedule."""
    version, payload, _ = token.split(".")
    blob = zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    header, _, packed = blob.partition(b"\0")
    return version, header, packed


def reencode(version: str, header: bytes | str, packed: bytes) -> str:
    """A token of `header` (JSON text, any, even invalid) and `packed` with a valid
    checksum: what a token edited by hand, or by a tool, looks like."""
    raw = header.encode() if isinstance(header, str) else header
    payload = base64.urlsafe_b64encode(zlib.compress(raw + b"\0" + packed, 9)).rstrip(b"=")
    return f"{version}.{payload.decode()}.{zlib.crc32(payload):08x}"


def with_header(token: str, change: dict[str, Any], drop: tuple[str, ...] = ()) -> str:
    """`token` with some header fields replaced (`change`) or removed (`drop`)."""
    version, header, packed = token_parts(token)
    fields = json.loads(header)
    fields.update(change)
    for key in drop:
        fields.pop(key, None)
    return reencode(version, json.dumps(fields), packed)


def toml_value(value: Any) -> str:
    """`value` as TOML (inline tables and arrays: enough for any document)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(value)


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items())


#: Lines a command may print on stderr besides its error line (progress, notes).
INFO_PREFIXES = ("exploring ", "odp-async: note:")


def check_outcome(code: int, err: str, allowed: set[int]) -> None:
    """The bar for any input: an expected exit code, never 3 (internal), never a
    traceback; a usage error (exit 2) is one line on stderr, naming the problem (a TOML
    syntax error may quote its source line on a second line)."""
    assert "Traceback" not in err, err
    assert code != ExitCode.INTERNAL, err
    assert code in allowed, (code, err)
    if code == ExitCode.USAGE:
        lines = [line for line in err.splitlines() if not line.startswith(INFO_PREFIXES)]
        if len(lines) == 2 and "TOML syntax error" in lines[0]:
            assert lines[1].startswith("    "), err
            lines = lines[:1]
        assert len(lines) == 1, err
        assert lines[0].startswith("odp-async: error: "), err
