"""A scenario file saved with a UTF-8 byte-order mark (as Windows editors write one) is
read as the same file without it: it was refused as ``TOML syntax error: Invalid
statement`` at line 1, column 1.  A token made from it carries the text without the
mark and a digest of that text, so it replays in a fresh process, and on the file
with or without the mark (one content)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.explore.refs import ScenarioText
from odp_async.explore.tokens import decode_token
from odp_async.scenarios.files import ScenarioFileError, read_scenario
from tests.test_cli import run_cli, subprocess_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BOM = codecs.BOM_UTF8


def _with_bom(tmp_path: Path, example: str) -> Path:
    path = tmp_path / example
    path.write_bytes(BOM + (EXAMPLES / example).read_bytes())
    return path


def test_a_file_with_a_bom_is_the_file_without_it(tmp_path: Path) -> None:
    path = _with_bom(tmp_path, "implicit-odp.toml")
    plain = read_scenario(EXAMPLES / "implicit-odp.toml")
    read = read_scenario(path)
    assert (read.scenario.name, read.protocols) == (plain.scenario.name, plain.protocols)
    assert read.scenario.description == plain.scenario.description
    text, _ = ScenarioText.read(path)
    plain_text, _ = ScenarioText.read(EXAMPLES / "implicit-odp.toml")
    assert text.text == plain_text.text
    assert not text.text.startswith("\ufeff")
    assert text.sha256 == plain_text.sha256  # one content
    assert text.is_intact()


def test_a_bad_byte_after_a_bom_is_counted_from_the_files_start(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(BOM + b"# x\xff\n")
    with pytest.raises(ScenarioFileError, match=r"not UTF-8 text \(byte 6\)"):
        read_scenario(path)


def test_show_and_explore_a_file_with_a_bom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _with_bom(tmp_path, "implicit-odp.toml")
    code, out, err = run_cli(capsys, "show", str(path))
    assert code == ExitCode.OK, err
    assert "implicit-odp" in out
    code, out, err = run_cli(capsys, "explore", str(path), "-p", "odp2014", "--schedules", "20")
    assert code == ExitCode.OK, err
    assert "implicit-odp/odp2014: clean" in out


def test_a_token_of_a_file_with_a_bom_replays_in_a_fresh_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _with_bom(tmp_path, "registration-race.toml")
    code, out, err = run_cli(capsys, "explore", str(path), "-p", "odp2014", "--json")
    assert code == ExitCode.VIOLATION, err
    token = json.loads(out)["failure"]["replay_token"]
    carried = decode_token(token).file
    assert carried is not None
    assert carried.is_intact()
    assert not carried.text.startswith("\ufeff")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    replayed = subprocess_cli("replay", token, cwd=elsewhere)  # the text the token carries
    assert replayed.returncode == ExitCode.VIOLATION, replayed.stderr
    assert "stale-translation" in replayed.stdout
    plain = elsewhere / "registration-race.toml"
    plain.write_bytes((EXAMPLES / "registration-race.toml").read_bytes())
    for file in (path, plain):  # with the mark or without: the content the token carries
        replayed = subprocess_cli("replay", token, "--scenario-file", str(file), cwd=elsewhere)
        assert replayed.returncode == ExitCode.VIOLATION, (file, replayed.stderr)
