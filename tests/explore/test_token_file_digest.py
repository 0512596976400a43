"""A token carries a scenario file's text and its sha256; one edited without the other
(by hand or by a tool that re-makes the checksum) is refused when read, exit 2 with one
line, instead of replaying the edited text or comparing files against a wrong digest
(new-user trial: a sha256 of 'zz' was accepted)."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

from odp_async.cli import ExitCode
from tests.explore.test_token_version import cli, rewrite

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "registration-race.toml"


def _found_token(tmp_path: Path) -> str:
    """The replay token of the example file's race under odp2014 (it carries the file)."""
    found = cli(
        tmp_path, "explore", str(EXAMPLE), "-p", "odp2014", "--chooser", "random", "--json"
    )
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    return str(json.loads(found.stdout)["failure"]["replay_token"])


def test_a_file_token_whose_text_and_digest_disagree_is_refused(tmp_path: Path) -> None:
    token = _found_token(tmp_path)
    assert cli(tmp_path, "replay", token).returncode == ExitCode.VIOLATION  # intact: replays
    name, digest, text = _header_file(token)
    for f in ([name, "zz", text], [name, digest, text + "\n# edited\n"]):
        bad = cli(tmp_path, "replay", rewrite(token, f=f))
        assert bad.returncode == ExitCode.USAGE, bad.stderr
        assert bad.stdout == ""
        [line] = bad.stderr.splitlines()
        assert line.endswith(
            f"the text of scenario file {name!r} does not hash to the sha256 beside it"
        ), line


def _header_file(token: str) -> list[str]:
    payload = token.split(".")[1]
    blob = zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    header = json.loads(blob.partition(b"\0")[0])
    return list(header["f"])


def test_a_header_number_of_too_many_digits_is_refused_by_its_size(tmp_path: Path) -> None:
    """A step bound of 5,000 digits: refused with the number's size, not with Python's
    advice to raise its own integer-conversion limit (new-user trial)."""
    token = _found_token(tmp_path)
    payload = token.split(".")[1]
    blob = zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw, _, packed = blob.partition(b"\0")
    raw = raw.replace(b'"m":', b'"m":' + b"9" * 5000 + b',"x":', 1)
    body = base64.urlsafe_b64encode(zlib.compress(raw + b"\0" + packed)).decode().rstrip("=")
    bad = cli(tmp_path, "replay", f"{token.split('.')[0]}.{body}.{zlib.crc32(body.encode()):08x}")
    assert bad.returncode == ExitCode.USAGE, bad.stderr
    [line] = bad.stderr.splitlines()
    assert line.endswith("a number of 5000 digits (at most 1300)"), line
