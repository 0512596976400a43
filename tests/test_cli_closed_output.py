"""A closed standard output (``odp-async ... | head -1``) exits 141 (128 + SIGPIPE), not 1
(a violation) and not 120 (a failed exit-time flush), with no traceback (new-user trial,
item 3).  A fresh process whose stdout is a pipe with no reader from the start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from odp_async.cli import EPILOG_MAIN, ExitCode


def _with_stdout_closed(*argv: str) -> tuple[int, str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader, ever: the first write that reaches the pipe is EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "odp_async.cli", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("list",),  # all of it buffered: the EPIPE comes at the final flush
        ("explore", "registration-race", "-p", "naive", "--seed", "1"),  # finds: exit 1 else
        ("explore", "classic:lost-update", "--json", "--seed", "1"),
    ],
)
def test_a_closed_stdout_exits_141_quietly(argv: tuple[str, ...]) -> None:
    code, err = _with_stdout_closed(*argv)
    assert code == ExitCode.CLOSED_OUTPUT == 141, err
    assert "141 standard output closed" in EPILOG_MAIN
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
    assert "Exception ignored" not in err


def test_output_written_before_the_reader_exits_is_not_cut_short() -> None:
    """The README: a report that fits the pipe's buffer, written while the reader is
    still there (it reads nothing, then exits, as ``head -1`` may), is complete: the
    command's own exit code (1: a violation), not 141 (new-user trial 20c)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "odp_async.cli", "explore", "registration-race", "-p", "naive"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        code = proc.wait(timeout=300)  # reads nothing until the command exited
        out = proc.stdout.read()
    finally:
        proc.stdout.close()
    assert code == ExitCode.VIOLATION, code
    assert 0 < len(out) < 65536
