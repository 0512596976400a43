"""Every input issue 15 (part 2) lists, answered with exit 2 and one line on stderr
(in process, through `main(argv)`), a few of them through the installed command in a
fresh process, and the library checks behind them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore import ExploreConfig, decode_token, explore
from odp_async.scenarios.files import ScenarioFileError, read_scenario

from ._support import check_outcome, reencode, token_parts, with_header

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def token() -> str:
    result = explore("registration-race", "naive", schedules=200)
    assert result.failure is not None
    assert result.failure.shrunk_token is not None
    return result.failure.shrunk_token


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.USAGE})
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def deep_arrays(tmp_path: Path) -> Path:
    path = tmp_path / "deep-arrays.toml"
    path.write_text("x = " + "[" * 1000 + "]" * 1000 + "\n")
    return path


def deep_tables(tmp_path: Path) -> Path:
    path = tmp_path / "deep-tables.toml"
    path.write_text("x = " + "{a = " * 400 + "1" + "}" * 400 + "\n")
    return path


@pytest.mark.parametrize("make", [deep_arrays, deep_tables])
@pytest.mark.parametrize("command", ["show", "explore"])
def test_a_deeply_nested_scenario_file(
    make: object, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    usage_error(capsys, [command, str(path)], "nested too deep")
    with pytest.raises(ScenarioFileError, match="nested too deep"):
        read_scenario(path)


def test_a_scenario_file_nested_deeper_than_the_format_needs(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 30 + "]" * 30 + "\n")  # parses, but 31 levels
    with pytest.raises(ScenarioFileError, match="nested 31 deep"):
        read_scenario(path)


def test_an_integer_python_will_not_convert(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("x = " + "1" * 5000 + "\n")
    with pytest.raises(ScenarioFileError) as info:
        read_scenario(path)
    # Python's own message advises a call of its API (sys.set_int_max_str_digits)
    assert str(info.value).endswith(": TOML integer of more than 4300 digits"), info.value


def test_a_null_byte_in_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(capsys, ["show", "\x00.toml"], "null byte")
    with pytest.raises(ScenarioFileError, match="null byte"):
        read_scenario("\x00.toml")


def test_a_control_character_in_a_message_is_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    usage_error(capsys, ["show", str(tmp_path / "a\nb.toml")], "a\\nb.toml", "no such")
    bad = tmp_path / "nul.toml"
    bad.write_text('x = "\x00"\n')
    code = main(["show", str(bad)])
    _, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.USAGE})  # the TOML syntax error quotes its line
    assert err.splitlines()[1] == '    x = "\\x00"', err


@pytest.mark.parametrize("command", ["replay", "shrink"])
def test_a_token_whose_step_bound_is_1e400(
    command: str, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    version, header, packed = token_parts(token)
    fields = json.loads(header)
    raw = json.dumps({**fields, "m": "@"}).replace('"@"', "1e400")
    usage_error(capsys, [command, reencode(version, raw, packed)], "the step bound ('m') is inf")


@pytest.mark.parametrize("params", ["x", [1], 3, None, True, {"n": 0}, {"n": 10**7}, {"n": "1"}])
@pytest.mark.parametrize("command", ["replay", "shrink"])
def test_a_token_whose_parameters_are_not_a_table_of_ints(
    command: str, params: object, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    usage_error(capsys, [command, with_header(token, {"a": params})], "malformed token")
    with pytest.raises(InvalidArgument, match="param"):
        decode_token(with_header(token, {"a": params}))


@pytest.mark.parametrize("command", ["replay", "shrink"])
def test_a_token_whose_json_nests_100000_deep(
    command: str, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    version, _, packed = token_parts(token)
    deep = reencode(version, "[" * 100_000 + "]" * 100_000, packed)
    assert len(deep) < 400  # it compresses to almost nothing
    usage_error(capsys, [command, deep], "nests 100000 deep")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"m": 0}, "the step bound ('m') is 0"),
        ({"m": True}, "the step bound ('m') is true"),
        ({"m": 10**10}, "expected an int in 1..1000000000"),
        ({"t": -1}, "the violation step ('t')"),
        ({"s": 5}, "the source ('s')"),
        ({"o": []}, "the options ('o')"),
        ({"o": {"clamp": [1]}}, "option 'clamp'"),
        ({"g": {}}, "the arguments ('g')"),
        ({"g": [2**4097]}, "an argument holds"),  # past MAX_ARG_INT_BITS
        ({"g": [[1e400]]}, "an argument holds"),
        ({"f": "x"}, "the scenario file entry"),
    ],
)
def test_every_header_field_is_checked(token: str, change: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidArgument, match="malformed token") as caught:
        decode_token(with_header(token, change))
    assert needle in str(caught.value)


def test_a_token_missing_a_field_or_with_a_huge_schedule_entry(token: str) -> None:
    with pytest.raises(InvalidArgument, match="no field 'm'"):
        decode_token(with_header(token, {}, drop=("m",)))
    version, header, _ = token_parts(token)
    with pytest.raises(InvalidArgument, match="schedule entry"):
        decode_token(reencode(version, header, b"\xff" * 10 + b"\x01"))


def test_a_token_that_inflates_without_bound(token: str) -> None:
    version, header, packed = token_parts(token)
    bomb = reencode(version, header, packed + b"\0" * (17 * 1024 * 1024))
    with pytest.raises(InvalidArgument, match="inflates to more than"):
        decode_token(bomb)


@pytest.mark.parametrize("timeout", ["inf", "1e300", "1e20", "nan", "-1", "0", "86401"])
def test_run_timeouts_out_of_range(timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(
        capsys,
        ["run", "classic:lost-update", "--timeout", timeout],
        "--timeout must be a positive number of seconds (at most 86400)",
    )


@pytest.mark.parametrize("every", ["inf", "nan", "-1", "1e300"])
def test_progress_intervals_out_of_range(every: str, capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(
        capsys,
        ["explore", "classic:lost-update", "--progress-every", every],
        "--progress-every must be a number of seconds >= 0",
    )


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--schedules", "1000000001", "--schedules must be at most 1000000000"),
        ("--max-steps", "99999999999999999999", "--max-steps must be at most 1000000000"),
        ("--depth", "1001", "--depth must be at most 1000"),
        ("--preemptions", "1001", "--preemptions must be at most 1000"),
        ("--max-preemptions", "1001", "--max-preemptions must be at most 1000"),
        ("--seed", str(2**64), "--seed must be an int of at most 64 bits"),
        ("--start", str(2**64), "--start must be an int of at most 64 bits"),
        ("--start", "-1", "--start must be a non-negative int"),
        ("--jobs", "0", "--jobs must be at least 1"),
    ],
)
def test_budgets_out_of_range(
    flag: str, value: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    usage_error(capsys, ["explore", "classic:lost-update", flag, value], needle)


def test_library_budgets_are_bounded() -> None:
    with pytest.raises(InvalidArgument, match="jobs must be at most 1024"):
        ExploreConfig(jobs=100_000)
    with pytest.raises(InvalidArgument, match="got an int of 333 bits"):
        ExploreConfig(seed=10**100)
    with pytest.raises(InvalidArgument, match="start must be an int of at most 64 bits"):
        ExploreConfig(start=2**64)
    # documented as valid: a negative seed, any index below 2**64 (one schedule from it)
    assert ExploreConfig(seed=-5, start=2**64 - 1, schedules=1).start == 2**64 - 1


@pytest.mark.parametrize("jobs", ["99999999999999999999", "100000"])
def test_explore_jobs_are_capped(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "classic:lost-update", "--schedules", "2", "--jobs", jobs])
    _, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.OK, ExitCode.VIOLATION})
    assert f"odp-async: note: --jobs {jobs} capped to " in err, err


@pytest.mark.parametrize("jobs", ["99999999999999999999", "100000"])
def test_matrix_jobs_are_capped(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["matrix", "--scenario", "registration-race", "-p", "naive", "--budget", "100"]
    code = main([*argv, "--jobs", jobs])
    _, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.OK})
    assert f"--jobs {jobs} capped to 1 (the work: 1 cells)" in err, err


def test_replay_width_out_of_range(token: str, capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(capsys, ["replay", token, "--text", "--width", "10" * 20], "--width must be in")


# --- the installed command, in a fresh process --------------------------------------------------


def odp_async(*argv: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("odp-async")
    return subprocess.run(
        [str(command), *argv], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_command_answers_exit_2_in_one_line(tmp_path: Path, token: str) -> None:
    version, header, packed = token_parts(token)
    raw = json.dumps({**json.loads(header), "m": "@"}).replace('"@"', "1e400")
    cases = [
        ["show", str(deep_arrays(tmp_path))],
        ["show", str(deep_tables(tmp_path))],
        ["replay", reencode(version, raw, packed)],
        ["shrink", reencode(version, "[" * 100_000 + "]" * 100_000, packed)],
        ["replay", with_header(token, {"a": "x"})],
        ["run", "classic:lost-update", "--timeout", "inf"],
        ["explore", "classic:lost-update", "--seed", "1" * 5000],
    ]
    for argv in cases:
        proc = odp_async(*argv)
        assert proc.returncode == ExitCode.USAGE, (argv, proc.stderr)
        assert proc.stderr.count("\n") == 1, (argv, proc.stderr)
        assert proc.stderr.startswith("odp-async: error: "), (argv, proc.stderr)


def test_the_command_caps_matrix_jobs() -> None:
    proc = odp_async(
        "matrix",
        "--scenario",
        "registration-race",
        "-p",
        "naive",
        "--budget",
        "100",
        "--jobs",
        "100000",
    )
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "capped to 1" in proc.stderr
