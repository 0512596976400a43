"""A token's checksum covers its prefix: a token whose ``odp2`` was edited to ``odp1`` (or
back) fails it, one line, exit 2.  Tokens made before it did (a CRC of the payload
alone) still decode, with what they always replayed; under ``odp1`` only when their
header holds no field version 1 never wrote (else the prefix was edited)."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import InvalidArgument
from odp_async.explore import tokens
from odp_async.explore.target import Target
from odp_async.explore.tokens import decode_token, encode_token
from odp_async.sim import RandomChooser
from tests._usermod import lost_update_source, pythonpath_env, write_user_module

#: Printed by ``odp-async explore fault-vs-munmap -p naive --chooser random --seed 3``
#: before the checksum covered the prefix (its CRC is of the payload alone).
MADE_BEFORE = (
    "odp2.eNoli8sKhDAUQ6ufknUrHYYB6d9cfIBMH2Kv3Yj_bsCskpPkgiBct8WEgEPyXBIs_gxVJS5OyWoU3U"
    "omTwg_T1mU97VzmGVrC8tKv8oZ1bXq0pmT7KSK8B0tGks_fAaP2_S9MaZ79QCZoSGx.eefb2fe8"
)


def _edited(token: str, prefix: str) -> str:
    return prefix + token[token.index(".") :]


def _legacy(token: str) -> str:
    """`token` with the checksum it would have had before it covered the prefix."""
    prefix, payload, _ = token.split(".")
    return f"{prefix}.{payload}.{zlib.crc32(payload.encode()):08x}"


def _made(prefix: str, found_by: str | None) -> str:
    target = Target.resolve("fault-vs-munmap", "naive")
    execution = next(
        e
        for e in (target.run(RandomChooser(s), max_steps=20_000) for s in range(50))
        if e.is_failure
    )
    old, tokens._PREFIX = tokens._PREFIX, prefix  # type: ignore[misc]
    try:
        return encode_token(target, execution.sim.schedule, execution, 20_000, found_by=found_by)
    finally:
        tokens._PREFIX = old  # type: ignore[misc]


@pytest.mark.parametrize(("made", "edited"), [("odp2", "odp1"), ("odp1", "odp2")])
def test_an_edited_prefix_fails_the_checksum(made: str, edited: str) -> None:
    token = _made(made, None)
    assert decode_token(token).source == "fault-vs-munmap"
    with pytest.raises(InvalidArgument, match="fails its checksum: it was truncated or edited"):
        decode_token(_edited(token, edited))


def test_a_token_made_before_still_decodes_and_its_prefix_edit_is_caught() -> None:
    decoded = decode_token(MADE_BEFORE)
    assert (decoded.source, decoded.protocol, decoded.found_by) == (
        "fault-vs-munmap",
        "naive",
        "random",
    )
    # it carries a field version 1 never wrote ("c"): under odp1 it was edited
    with pytest.raises(InvalidArgument, match="fails its checksum"):
        decode_token(_edited(MADE_BEFORE, "odp1"))


def test_an_old_version_1_token_still_decodes_under_either_prefix() -> None:
    old = _legacy(_made("odp1", None))
    # what either prefix reads is the same target, schedule and failure
    assert decode_token(old) == decode_token(_edited(old, "odp2"))
    with pytest.raises(InvalidArgument, match="fails its checksum"):
        decode_token(old[:-1] + ("0" if old[-1] != "0" else "1"))


def test_the_cli_refuses_a_user_token_with_an_edited_prefix_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, lost_update_source("a", "b"), "prefixcrc", monkeypatch)

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "odp_async.cli", *argv],
            capture_output=True,
            text=True,
            env=pythonpath_env(tmp_path),
            timeout=300,
        )

    found = cli("explore", f"{name}:lost_update", "--chooser", "random", "--json")
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    token = json.loads(found.stdout)["failure"]["replay_token"]
    assert cli("replay", token).returncode == ExitCode.VIOLATION
    edited = cli("replay", _edited(token, "odp1"))
    assert edited.returncode == ExitCode.USAGE
    assert edited.stdout == ""
    assert edited.stderr.count("\n") == 1, edited.stderr
    assert "fails its checksum: it was truncated or edited" in edited.stderr
