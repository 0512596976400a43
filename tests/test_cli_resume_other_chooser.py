"""Trial d f10: ``explore --resume`` of a log another chooser wrote was refused with a
field of that chooser's header ("its header has a field "stream" this run does not", or
"k"), not the chooser.  The one-line error now names the log's chooser and this run's,
and how to resume it.  Run as a user does: their own module, ``odp-async`` in a fresh
process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from tests._usermod import module_name

USER = """
import odp_async as oa


async def worker(name):
    for _ in range(2):
        await oa.checkpoint(name)


async def prog():
    async with oa.task_group() as tg:
        tg.start_soon(worker, "a", name="a")
        tg.start_soon(worker, "b", name="b")
"""


def _explore(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:prog", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("wrote", "resumed"),
    [("random", "pct"), ("portfolio", "random"), ("pct", "portfolio"), ("random", "portfolio")],
)
def test_a_log_of_another_chooser_is_refused_naming_both(
    tmp_path: Path, wrote: str, resumed: str
) -> None:
    name = module_name("resumed", tmp_path)
    (tmp_path / f"{name}.py").write_text(USER)
    log = tmp_path / "run.log"
    first = _explore(tmp_path, name, "--chooser", wrote, "--schedules", "5", "--resume", str(log))
    assert first.returncode == ExitCode.OK, first.stderr
    again = _explore(
        tmp_path, name, "--chooser", resumed, "--schedules", "5", "--resume", str(log)
    )
    assert again.returncode == ExitCode.USAGE
    error = again.stderr.strip().splitlines()[-1]
    assert error == (
        f"odp-async: error: {log} is the log of a {wrote} run, and this run's chooser is "
        f"{resumed}: resume it with --chooser {wrote}, or give this run another log file"
    )
    assert "Traceback" not in again.stderr
    assert again.stdout == ""
