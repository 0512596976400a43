"""Inputs a new user's trial (20c) found accepted, crashing or shown wrong: a ``--resume``
log naming a failing schedule that does not fail (f1), a log whose lines overlap or hold
fields of the wrong type or range (f2), the overlapping log the runner itself wrote
when a resumed run moved its ``--start`` (f2), a token holding bytes that are not UTF-8
(f3), a token header naming a chooser or a violation kind this odp_async does not know
(f4), a replay option shaping an output not asked for (f6).  Each is exit 2 and one line
naming the value, through `main(argv)` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from odp_async.check import VIOLATION_KINDS
from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from odp_async.explore.config import CHOOSERS
from odp_async.explore.portfolio import MEMBERS
from odp_async.explore.runlog import chunk_line
from odp_async.explore.tokens import decode_token

from ._support import check_outcome, with_header

pytestmark = pytest.mark.timeout(120)

EXPLORE = ["explore", "classic:reorder_10", "--chooser", "random"]


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Exit 2 with one error line (after the ``exploring`` line, when the error comes
    once the run started) holding every needle."""
    code = main(argv)
    _out, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.USAGE})
    for needle in needles:
        assert needle in err, err
    return err


def header_of_a_real_log(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """The header line this odp_async writes for `EXPLORE` (so only the chunk lines a
    test writes are under test)."""
    assert main([*EXPLORE, "--schedules", "1", "--resume", str(path)]) == ExitCode.OK
    capsys.readouterr()
    return path.read_text().splitlines()[0]


def chunk(**change: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"first": 0, "last": 5, "steps": 10, "failing": [], "worker": "main"}
    line.update(change)
    return line


def write_log(path: Path, header: str, *lines: dict[str, Any] | str) -> None:
    """The header, then each line: a str as it is, a dict as the runner writes it (with
    its checksum, `chunk_line`), so the field under test is what is refused."""
    text = [line if isinstance(line, str) else chunk_line(line).rstrip("\n") for line in lines]
    path.write_text("\n".join([header, *text]) + "\n")


# --- f1: a recorded failing schedule that does not fail --------------------------------


def test_a_recorded_failure_that_does_not_fail_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "f1.log"
    header = header_of_a_real_log(capsys, log)
    write_log(log, header, chunk(last=3), chunk(first=3, last=8, failing=[5]))
    usage_error(
        capsys,
        [*EXPLORE, "--schedules", "300", "--resume", str(log)],
        f"{log} line 3 records schedule 5 as failing, but it does not fail when run again",
    )


# --- f2: every field of every line -----------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        ([chunk(first=0.5)], "line 2 records first 0.5: not an int in 0..2**64-1"),
        ([chunk(first=True)], "line 2 records first true: not an int"),
        ([chunk(first="0")], 'line 2 records first "0": not an int'),
        ([chunk(last=2**64 + 1)], "line 2 records last 18446744073709551617: not an int"),
        ([chunk(first=5)], "line 2 records last 5: not an int in 6..2**64"),
        ([chunk(steps=-10)], "line 2 records steps -10: not an int in 0..2**94"),
        ([chunk(steps=1.0)], "line 2 records steps 1.0"),
        ([chunk(unfinished=6)], "line 2 records unfinished 6: not an int in 0..5"),
        ([chunk(unfinished=False)], "line 2 records unfinished false"),
        ([chunk(failing=[3, 3])], "line 2 records failing [3, 3]: not in ascending order"),
        ([chunk(failing=[4, 2])], "line 2 records failing [4, 2]: not in ascending order"),
        ([chunk(failing=[True])], "line 2 records failing [true]: not a list of schedule"),
        (
            [chunk(failing=[0])],
            "line 2 records failing [0]: not a list of schedule indices in 1..5",
        ),
        ([chunk(failing="3")], 'line 2 records failing "3"'),
        ([chunk(worker=7)], "line 2 records worker 7: not a printable string"),
        ([chunk(worker="")], 'line 2 records worker "": not a printable string'),
        ([chunk(worker="a\0b")], "line 2 records worker"),
        ([chunk(worker="w" * 1001)], "line 2 records worker"),
        ([chunk(extra=1)], 'line 2 is not a run log line: it has an unknown field "extra"'),
        (
            [{"first": 0, "last": 5, "steps": 1, "failing": []}],
            "line 2 is not a run log line: it has no 'worker'",
        ),
        (
            ['{"first": 0, "first": 1, "last": 5, "steps": 1, "failing": [], "worker": "m"}'],
            'line 2 writes the field "first" twice',
        ),
        (
            [chunk(first=0, last=100), chunk(first=50, last=150)],
            "line 3 records schedules 50..149, overlapping line 2's 0..99",
        ),
        (
            [chunk(first=50, last=60), chunk(first=0, last=10), chunk(first=5, last=51)],
            "line 4 records schedules 5..50, overlapping line",
        ),
        ([chunk(), chunk()], "line 3 records schedules 0..4, overlapping line 2's 0..4"),
    ],
)
def test_a_log_line_is_checked_field_by_field(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    lines: list[dict[str, Any] | str],
    needle: str,
) -> None:
    log = tmp_path / "f2.log"
    header = header_of_a_real_log(capsys, log)
    write_log(log, header, *lines)
    before = log.read_text()
    usage_error(capsys, [*EXPLORE, "--schedules", "3000", "--resume", str(log)], f"{log} {needle}")
    assert log.read_text() == before  # refused: not rewritten


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"seed": False}, "its seed is False, this run's is 0"),
        ({"extra": 1}, 'its header has a field "extra" this run does not'),
    ],
)
def test_a_header_is_checked_field_by_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    log = tmp_path / "f2.log"
    header = json.loads(header_of_a_real_log(capsys, log))
    header.update(change)
    write_log(log, json.dumps(header))
    usage_error(capsys, [*EXPLORE, "--schedules", "30", "--resume", str(log)], needle)


def schedules(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_a_resumed_run_with_another_start_records_each_schedule_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The runner wrote ``[35, 67)`` and then, resumed at ``--start 50``, ``[50, 67)``
    again: a third run over ``[0, 150)`` counted 167 schedules for 150."""
    log = ["--resume", str(tmp_path / "run.log")]
    schedules(capsys, [*EXPLORE, "--schedules", "100", *log])
    schedules(capsys, [*EXPLORE, "--start", "50", "--schedules", "100", *log])
    whole = schedules(capsys, [*EXPLORE, "--schedules", "150", *log])
    assert (whole["schedules"], whole["per_worker"]) == (150, {"resumed": 150})
    fresh = schedules(capsys, [*EXPLORE, "--schedules", "150"])
    assert whole["steps"] == fresh["steps"]


# --- f3: a token with bytes that are not UTF-8 ------------------------------------------


@pytest.mark.parametrize("command", ["replay", "shrink"])
def test_a_token_with_bytes_that_are_not_utf8_in_a_fresh_process(command: str) -> None:
    """The shell passes the bytes; Python hands them over as lone surrogates."""
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", command, b"odp2.\xff\xfe.1234"],
        capture_output=True,
        timeout=60,
    )
    err = proc.stderr.decode(errors="backslashreplace")
    check_outcome(proc.returncode, err, {ExitCode.USAGE})
    assert "malformed token 'odp2.\\udcff\\udcfe.1234': character 6" in err, err


@pytest.mark.parametrize(
    "token", ["odp2.\udcff.0", "\udcffodp2.a.b", "odp2.é.00000000", "odp1.a\u00a0b.c"]
)
def test_a_token_that_is_not_ascii_is_malformed(
    capsys: pytest.CaptureFixture[str], token: str
) -> None:
    usage_error(capsys, ["replay", token], "malformed token", "is not ASCII")
    with pytest.raises(InvalidArgument, match="is not ASCII; a token is ASCII"):
        decode_token(token)


# --- f4: a token header's names are names this odp_async knows ---------------------------


@pytest.fixture(scope="module")
def tokens_by_chooser() -> dict[str, tuple[str, str | None]]:
    """Each chooser's token of a failure, with its `found_by` as the run showed it."""
    out = {}
    for chooser in CHOOSERS:
        result = explore("classic:lost-update", chooser=chooser, schedules=200, shrink=False)
        assert result.failure is not None
        assert result.failure.token is not None
        out[chooser] = (result.failure.token, result.failure.found_by)
    return out


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"c": "bogus"}, "the chooser that found it ('c') is \"bogus\", which this odp_async"),
        ({"c": "portfolio"}, "('c') is \"portfolio\""),  # a run names its member, never it
        ({"k": "bogus"}, "the violation kind ('k') is \"bogus\", which this odp_async does not"),
        ({"k": "Deadlock"}, "('k') is \"Deadlock\""),
    ],
)
def test_a_token_naming_an_unknown_chooser_or_kind(
    capsys: pytest.CaptureFixture[str],
    tokens_by_chooser: dict[str, tuple[str, str | None]],
    change: dict[str, Any],
    needle: str,
) -> None:
    token, _ = tokens_by_chooser["random"]
    usage_error(capsys, ["replay", with_header(token, change)], "malformed token", needle)


def test_every_token_a_run_makes_still_decodes(
    tokens_by_chooser: dict[str, tuple[str, str | None]],
) -> None:
    for chooser, (token, found_by) in tokens_by_chooser.items():
        decoded = decode_token(token)
        assert decoded.found_by == found_by, chooser
        assert decoded.kind in VIOLATION_KINDS
    token, _ = tokens_by_chooser["random"]
    for name in [*MEMBERS, "random", "pct", "dfs", "dpor"]:  # what `found_by` holds
        assert decode_token(with_header(token, {"c": name})).found_by == name
    for kind in VIOLATION_KINDS:
        assert decode_token(with_header(token, {"k": kind})).kind == kind
    assert decode_token(with_header(token, {}, drop=("c",))).found_by is None


# --- f6: a replay option that shapes an output not asked for ---------------------------


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--picture-width", "1000"], "--picture-width 1000 sets the pixels of --png or --svg"),
        (["--picture-width", "1000", "--text"], "--picture-width 1000 sets the pixels"),
        (["--picture-width", "1000", "--html", "{tmp}/r.html"], "--picture-width 1000"),
        (["--width", "100"], "--width 100 sets the columns of --text or the pixels of"),
        (["--width", "900", "--trace", "{tmp}/t.json"], "--width 900 sets the columns"),
        (["--text", "--json"], "--text prints the timeline, and --json prints the result"),
    ],
)
def test_a_replay_option_shaping_no_output_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tokens_by_chooser: dict[str, tuple[str, str | None]],
    options: list[str],
    needle: str,
) -> None:
    token, _ = tokens_by_chooser["random"]
    argv = ["replay", token, *(o.format(tmp=tmp_path) for o in options)]
    usage_error(capsys, argv, needle)
    assert not list(tmp_path.iterdir())  # refused before writing anything


def test_replay_options_with_the_output_they_shape(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tokens_by_chooser: dict[str, tuple[str, str | None]],
) -> None:
    token, _ = tokens_by_chooser["random"]
    svg = str(tmp_path / "r.svg")
    for options in (
        ["--svg", svg, "--picture-width", "1000"],
        ["--png", str(tmp_path / "r.png"), "--width", "900"],
        ["--text", "--width", "100"],
        ["--text", "--width", "100", "--svg", svg, "--picture-width", "700"],
    ):
        assert main(["replay", token, *options]) == ExitCode.VIOLATION, options
    assert 'width="700"' in Path(svg).read_text()
    capsys.readouterr()


# --- names in a scenario file: one printable line, bounded ------------------------------

SCENARIO = """\
[scenario]
name = {scenario}
protocols = ["odp2014"]
[setup]
files = [{{ name = {file}, pages = 4 }}]
ops = [
    {{ op = "mmap", start = 0, pages = 4 }},
    {{ op = "register", mr = {mr}, start = 0, pages = 4 }},
]

[[actor]]
name = {actor}
ops = [{{ op = "madvise", start = 0, pages = 1 }}]
"""

NAMES = {"scenario": '"x"', "file": '"f"', "mr": '"A"', "actor": '"a"'}


def test_the_scenario_file_of_these_tests_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(SCENARIO.format(**NAMES))
    assert main(["explore", str(path), "--schedules", "2"]) == ExitCode.OK, capsys.readouterr()


@pytest.mark.parametrize(
    ("key", "where", "value", "needle"),
    [
        ("actor", "actor[0].name", '"a\\u0000b"', "printable string (a name), got 'a\\x00b'"),
        ("actor", "actor[0].name", '"a\\nb"', "got 'a\\nb'"),
        ("actor", "actor[0].name", '"' + "a" * 100_000 + '"', "at most 256 characters, got one"),
        ("scenario", "scenario.name", '"' + "n" * 5000 + '"', "got one of 5000: 'nnn"),
        ("file", "setup.files[0].name", '"f\\tg"', "got 'f\\tg'"),
        ("mr", "setup.ops[1].mr", '"A\\u001bB"', "got 'A\\x1bB'"),
    ],
)
def test_a_name_in_a_scenario_file_is_one_printable_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    key: str,
    where: str,
    value: str,
    needle: str,
) -> None:
    path = tmp_path / "names.toml"
    path.write_text(SCENARIO.format(**{**NAMES, key: value}))
    err = usage_error(capsys, ["explore", str(path), "--schedules", "2"], f"{where}: ", needle)
    assert len(err) < 400, err
