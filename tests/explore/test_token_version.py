"""A token's format is its prefix: ``odp2`` (and ``odp1``) are read, any other is
refused (exit 2, one line).  The odp_async version in its header is a record: a token
made by another version replays when it reproduces, and names that version when not."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from tests._usermod import pythonpath_env, write_user_module

PROGRAM = """
from odp_async import checkpoint, task_group


async def lost_update():
    box = {"n": 0}

    async def bump():
        n = box["n"]
        await checkpoint("read")
        box["n"] = n + 1

    async with task_group() as tg:
        tg.start_soon(bump, name="b1")
        tg.start_soon(bump, name="b2")
    assert box["n"] == 2, box
"""


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        timeout=300,
        check=False,
    )


def rewrite(token: str, prefix: str | None = None, **fields: object) -> str:
    """`token` with header fields replaced (and its checksum made right again)."""
    version, payload, _ = token.split(".")
    blob = zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw, _, packed = blob.partition(b"\0")
    header = {**json.loads(raw), **fields}
    text = base64.urlsafe_b64encode(zlib.compress(json.dumps(header).encode() + b"\0" + packed))
    body = text.decode().rstrip("=")
    return f"{prefix or version}.{body}.{zlib.crc32(body.encode()):08x}"


def test_the_prefix_is_checked_and_the_recorded_version_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, PROGRAM, "tokver", monkeypatch)
    found = cli(tmp_path, "explore", f"{name}:lost_update", "--chooser", "random", "--json")
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    token = json.loads(found.stdout)["failure"]["replay_token"]

    newer = cli(tmp_path, "replay", rewrite(token, v="99.0"))  # reproduces: replays
    assert newer.returncode == ExitCode.VIOLATION, newer.stderr
    assert "assert" in newer.stdout.lower() or "error" in newer.stdout

    diverged = cli(tmp_path, "replay", rewrite(token, v="99.0", t=1))
    assert diverged.returncode == ExitCode.REPLAY_MISMATCH, diverged.stderr
    assert "the token was made by odp_async 99.0" in diverged.stderr

    unknown = cli(tmp_path, "replay", rewrite(token, prefix="odp3"))
    assert unknown.returncode == ExitCode.USAGE
    assert unknown.stderr.count("\n") == 1, unknown.stderr
    assert "token version 'odp3' is not supported" in unknown.stderr
