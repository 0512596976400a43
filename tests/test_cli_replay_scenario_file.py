"""`odp-async replay TOKEN --scenario-file PATH` replays on that file and refuses it once
edited (ReplayMismatch, exit 4) (issue 9 trial, defect 5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from odp_async.cli import ExitCode, main
from odp_async.explore import explore

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_with_scenario_file_refuses_an_edited_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.toml"
    shutil.copy(ROOT / "examples" / "registration-race.toml", path)
    result = explore(str(path), protocol="odp2014", schedules=300, shrink=False)
    assert result.failure is not None
    assert result.failure.token is not None
    token = result.failure.token
    code, out, err = run_cli(capsys, "replay", token, "--scenario-file", str(path))
    assert code == ExitCode.VIOLATION, err  # the same file: the failure again
    edited = path.read_text().replace("[[actor]]", "# an edit\n[[actor]]", 1)
    path.write_text(edited)  # a comment only: still the content the token does not carry
    code, out, err = run_cli(capsys, "replay", token, "--scenario-file", str(path))
    assert code == ExitCode.REPLAY_MISMATCH, (out, err)
    assert "mine.toml" in err
    assert err.count("\n") >= 1
    code, out, err = run_cli(capsys, "replay", token)  # the text it carries still replays
    assert code == ExitCode.VIOLATION, err


def test_scenario_file_with_a_builtin_token_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = explore("registration-race", protocol="odp2014", schedules=300, shrink=False)
    assert result.failure is not None
    assert result.failure.token is not None
    path = tmp_path / "mine.toml"
    shutil.copy(ROOT / "examples" / "registration-race.toml", path)
    code, _out, err = run_cli(capsys, "replay", result.failure.token, "--scenario-file", str(path))
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1
    assert "--scenario-file" in err
