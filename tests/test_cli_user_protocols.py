"""A user protocol (``module:Class``) named in a scenario file, and under ``matrix -p``
(issue 9 trial, defects 2 and 3).  The protocol lives in a module in ``tmp_path``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from odp_async.cli import ExitCode, main
from tests._usermod import forget, write_user_module

ROOT = Path(__file__).resolve().parent.parent

USER_MODULE = """
from typing import ClassVar

from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.odp.protocols.naive import Naive


class Sloppy(Naive):
    name: ClassVar[str] = "sloppy"
    summary: ClassVar[str] = "naive under another name"


class Careful(IntervalSeq):
    name: ClassVar[str] = "careful"
    summary: ClassVar[str] = "interval-seq under another name"
"""


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = write_user_module(tmp_path, USER_MODULE, "userfileproto", monkeypatch)
    yield name
    forget(name)


def _scenario_file(tmp_path: Path, protocols: list[str], expected: dict[str, str]) -> str:
    """The registration race (examples/), naming `protocols`, expecting `expected`."""
    text = (ROOT / "examples" / "registration-race.toml").read_text()
    text = text.split("[expected]")[0]
    listed = ", ".join(json.dumps(p) for p in protocols)
    text = text.replace("[scenario]\n", f"[scenario]\nprotocols = [{listed}]\n", 1)
    text += "[expected]\n" + "".join(
        f"{json.dumps(p)} = {json.dumps(v)}\n" for p, v in expected.items()
    )
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return str(path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_scenario_file_names_a_user_protocol_with_its_expectation(
    usermod: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{usermod}:Sloppy"
    path = _scenario_file(tmp_path, ["odp2014", ref], {"odp2014": "found", ref: "found"})
    code, out, err = run_cli(capsys, "show", path)
    assert code == ExitCode.OK, err
    assert any(line.split() == [ref, "found"] for line in out.splitlines()), out
    code, out, err = run_cli(
        capsys, "matrix", "--scenario", path, "--budget", "300", "--jobs", "1"
    )
    assert code == ExitCode.OK, out + err
    assert "2/2 cells as expected" in out
    code, out, err = run_cli(capsys, "explore", path, "--schedules", "300")
    assert code in (ExitCode.OK, ExitCode.VIOLATION), err
    assert "2/2 protocols as expected" in out
    # each row says what it established, as the matrix does (trial 40a: a clean row did
    # not say whether it was complete or the budget ran out)
    assert "claim" in out
    assert out.count("violation at schedule") >= 2, out


def test_a_scenario_file_naming_a_missing_user_protocol_is_a_one_line_error(
    usermod: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scenario_file(tmp_path, ["odp2014", f"{usermod}:Missing"], {})
    code, out, err = run_cli(capsys, "show", path)
    assert code == ExitCode.USAGE
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Missing" in err
    assert "scenario.protocols[1]" in err


def test_matrix_of_a_user_protocol_over_builtins_has_no_expectation(
    usermod: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over built-in scenarios a user protocol has no expectation: cells report what was
    found, never a mismatch; the exit code is 0 even where a violation is found."""
    argv = ["matrix", "-p", f"{usermod}:Sloppy", "--budget", "300", "--jobs", "1"]
    argv += ["--scenario", "registration-race", "--scenario", "registration-count"]
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == ExitCode.OK, err
    data = json.loads(out)
    assert data["matches"] is True
    assert {c["expected"] for c in data["cells"]} == {None}
    assert "found" in {c["found"] for c in data["cells"]}  # still reported
    code, out, err = run_cli(capsys, *argv)
    assert code == ExitCode.OK, err
    assert "found (no expectation)" in out


def test_a_user_protocol_keeps_the_expectation_of_a_file_naming_it(
    usermod: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-p module:Class` on a file naming the protocol: the file's expectation applies, and
    missing it is a mismatch (exit 1)."""
    ref = f"{usermod}:Careful"
    path = _scenario_file(tmp_path, ["odp2014", ref], {"odp2014": "found", ref: "found"})
    argv = ["matrix", "--scenario", path, "-p", ref, "--budget", "50", "--jobs", "1", "--json"]
    code, out, err = run_cli(capsys, *argv)
    assert code == ExitCode.VIOLATION, err
    (cell,) = json.loads(out)["cells"]
    assert (cell["expected"], cell["found"], cell["matches"]) == ("found", "clean", False)
