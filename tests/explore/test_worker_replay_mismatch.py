"""A failure found in a worker process whose replay in the parent passes is a one-line
`NondeterminismError` (exit 2 from the CLI), never an internal error: trial 13 got an
``AssertionError`` traceback (exit 3) from ``--chooser dpor --jobs 2``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_MODULE = """
import multiprocessing

from odp_async import checkpoint, task_group


async def fails_in_workers():
    async def step():
        await checkpoint("a")

    async with task_group() as tg:
        tg.start_soon(step)
        tg.start_soon(step)
    assert multiprocessing.current_process().name == "MainProcess", "in a worker"
"""


def test_a_worker_failure_the_parent_cannot_replay_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "workerflaky.py").write_text(USER_MODULE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = ["explore", "workerflaky:fails_in_workers", "--chooser", "dpor", "--jobs", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("exploring ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("odp-async: error: a run of fails_in_workers failed in a worker")
    assert "Traceback" not in proc.stderr
