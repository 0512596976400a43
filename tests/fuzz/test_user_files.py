"""A file the user names that is not a regular UTF-8 file (trial 19c, f1 and f2): a FIFO,
a device, a log that is not UTF-8 or not a log at all.  Each gives exit 2 and one line
naming the path, never a hang (a FIFO opened for reading waits for a writer) and never a
traceback; the library's readers and writers behind the commands say the same."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async._user_files import UnreadableFile, open_output, read_bytes, read_text
from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from odp_async.explore.runlog import RunLog
from odp_async.scenarios.files import ScenarioFileError, read_scenario

from ._support import check_outcome

# A hang is the bug: the timeout turns it into a failure (the thread method can stop a
# test blocked in open()).
pytestmark = pytest.mark.timeout(60, method="thread")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def token() -> str:
    result = explore("registration-race", "naive", schedules=200)
    assert result.failure is not None
    assert result.failure.shrunk_token is not None
    return result.failure.shrunk_token


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "f1.toml"
    os.mkfifo(path)
    return path


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.USAGE})
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


RESUME = ["explore", "classic:lost-update", "--chooser", "random", "--schedules", "5"]


def test_a_fifo_as_a_scenario_file(capsys: pytest.CaptureFixture[str], fifo: Path) -> None:
    for command in (["explore", str(fifo), "--schedules", "1"], ["show", str(fifo)]):
        usage_error(capsys, command, str(fifo), "not a regular file (a FIFO)")
    with pytest.raises(ScenarioFileError, match="not a regular file"):
        read_scenario(fifo)
    usage_error(capsys, ["matrix", "--scenario", str(fifo)], str(fifo), "a FIFO")


def test_a_fifo_as_a_resume_log(capsys: pytest.CaptureFixture[str], fifo: Path) -> None:
    usage_error(capsys, [*RESUME, "--resume", str(fifo)], f"--resume {fifo}", "a FIFO")
    with pytest.raises(InvalidArgument, match="a FIFO"):
        explore("classic:lost-update", chooser="random", schedules=5, resume=fifo)


def test_a_fifo_as_the_scenario_file_of_a_replay(
    capsys: pytest.CaptureFixture[str], fifo: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mine.toml"
    shutil.copy(ROOT / "examples" / "registration-race.toml", path)
    result = explore(str(path), protocol="odp2014", schedules=300, shrink=False)
    assert result.failure is not None
    assert result.failure.token is not None
    argv = ["replay", result.failure.token, "--scenario-file", str(fifo)]
    usage_error(capsys, argv, str(fifo), "a FIFO")


@pytest.mark.parametrize("option", ["--png", "--svg", "--html", "--trace"])
def test_a_fifo_nobody_reads_as_a_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, token: str, option: str
) -> None:
    suffix = {"--png": ".png", "--svg": ".svg", "--html": ".html", "--trace": ".json"}
    fifo = tmp_path / f"report{suffix[option]}"  # a name of the format the option writes
    os.mkfifo(fifo)
    code = main(["replay", token, option, str(fifo)])
    _out, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.USAGE})
    assert err.count("\n") == 1, err
    assert str(fifo) in err, err
    assert "a FIFO that nobody reads" in err, err


def test_a_fifo_with_a_reader_gets_the_report(fifo: Path) -> None:
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, without waiting
    try:
        with open_output(fifo) as f:
            f.write("report\n")
        assert os.read(reader, 100) == b"report\n"
    finally:
        os.close(reader)


def test_a_device_is_refused_to_read_and_null_accepted_to_write(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match=r"/dev/null: not a regular file \(a character"):
        read_bytes("/dev/null")
    with open_output("/dev/null") as f:
        f.write("x")
    with pytest.raises(UnreadableFile, match="is a directory"):
        read_bytes(tmp_path)
    with pytest.raises(UnreadableFile, match="null byte"):
        read_bytes("a\0b")


def test_the_command_refuses_a_fifo_in_a_fresh_process(fifo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", str(fifo), "--schedules", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "a FIFO" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe\n", "not UTF-8 text (byte 0)"),
        (b'{"format": "odp_async run log 1"}\n\xff\n', "not UTF-8 text (byte 34)"),
        (b"Name:\tpython\nState:\tR\n", "line 1 is not a run log line"),
    ],
)
def test_a_resume_log_that_is_not_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, needle: str
) -> None:
    log = tmp_path / "f2.log"
    log.write_bytes(content)
    usage_error(capsys, [*RESUME, "--resume", str(log)], f"--resume {log}", needle)
    with pytest.raises(InvalidArgument, match=re.escape(needle)):
        explore("classic:lost-update", chooser="random", schedules=5, resume=log)
    assert log.read_bytes() == content  # refused: not rewritten


def test_a_proc_file_as_a_resume_log_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc")
    usage_error(capsys, [*RESUME, "--resume", "/proc/self/status"], "/proc/self/status")


def test_an_unwritable_log_is_named(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anything")
    log = tmp_path / "ro.log"
    log.write_text("")
    log.chmod(0o444)
    with pytest.raises(UnreadableFile, match=f"{log}: cannot write it: Permission denied"):
        RunLog.open(log, {"seed": 0})


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"ok\n\xc3")
    with pytest.raises(UnreadableFile, match=r"x.txt: not UTF-8 text \(byte 3\)"):
        read_text(path)
