"""Trial d f8: ``explore mod:prog --chooser random --schedules 400 --jobs 2`` ran every
schedule in this process (below `SERIAL_BELOW` schedules worker processes are not
started) and said nothing, while the README promises a note when ``--jobs`` is not what
runs.  A note now says why no worker process started, and ``--json`` says it in
``serial``; the results are those of ``--jobs 1``.  Run as a user does: their own
module, ``odp-async`` in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.explore import ExploreConfig
from odp_async.explore.runner import SERIAL_BELOW, serial_why
from odp_async.explore.target import Target
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

NOTE = (
    "odp-async: note: --jobs 2 starts no worker process: 40 schedules run in this process "
    f"(worker processes start from {SERIAL_BELOW} schedules)"
)


def _explore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    name = module_name("serial", tmp_path)
    (tmp_path / f"{name}.py").write_text(USER)
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:prog", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("chooser", ["random", "pct", "portfolio"])
def test_jobs_that_start_no_worker_say_so(tmp_path: Path, chooser: str) -> None:
    args = ["--chooser", chooser, "--schedules", "40", "--json"]
    parallel = _explore(tmp_path, *args, "--jobs", "2")
    assert parallel.returncode == ExitCode.OK, parallel.stderr
    assert NOTE in parallel.stderr.splitlines()
    data = json.loads(parallel.stdout)
    assert data["executor"] == "this process"
    assert data["serial"] == NOTE.split(": ", 3)[3]
    serial = _explore(tmp_path, *args)
    assert "note" not in serial.stderr
    alone = json.loads(serial.stdout)
    assert alone["serial"] is None
    for key in ("schedules", "steps", "failing", "claim", "per_worker"):
        assert data[key] == alone[key], key


def test_the_note_follows_the_cap_note(tmp_path: Path) -> None:
    done = _explore(tmp_path, "--chooser", "random", "--schedules", "40", "--jobs", "9999")
    assert done.returncode == ExitCode.OK, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("odp-async: note: --jobs 9999 capped to 2 (")
    assert lines[1] == NOTE


def test_serial_why_is_none_when_workers_run() -> None:
    target = Target.resolve("classic:lost-update")
    assert serial_why(target, ExploreConfig(jobs=2, schedules=SERIAL_BELOW)) is None
    assert serial_why(target, ExploreConfig(jobs=1, schedules=10)) is None
    assert serial_why(target, ExploreConfig(chooser="dpor", jobs=2, schedules=10)) is None
    assert serial_why(target, ExploreConfig(jobs=2, schedules=10)) == (
        f"10 schedules run in this process (worker processes start from {SERIAL_BELOW} schedules)"
    )
