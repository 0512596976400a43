"""Trial 21c f5: a ``--jobs 2 --resume`` portfolio run stopped by Ctrl-C or ``--time``
said "interrupted after 260 schedules; continue it with --resume sig.log" while the log
held 130: this process runs the portfolio's dpor slots ahead of the worker chunks, and
those are never taken from a log (the DPOR search runs them again, to the same results).
The message now says how many the log holds, and a resumed run takes exactly that many
from it.  Run as a user does: ``odp-async`` in a fresh process, Ctrl-C to its group."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

EXPLORE = [sys.executable, "-m", "odp_async.cli", "explore", "registration-race", "-p"]
EXPLORE += ["kvm-seq", "--schedules", "100000", "--jobs", "2"]


def test_an_interrupted_parallel_portfolio_says_what_its_log_holds(tmp_path: Path) -> None:
    log = tmp_path / "sig.log"
    proc = subprocess.Popen(
        [*EXPLORE, "--resume", str(log)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
    )
    try:
        # wait (polling, no fixed delay) until worker chunks are being recorded
        while not log.exists() or len(log.read_text().splitlines()) < 4:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    line = next(x for x in err.splitlines() if x.startswith("odp-async: interrupted after "))
    found = re.search(
        r"interrupted after (\d+) schedules; continue it with --resume \S+ "
        r"\(\S+ holds (\d+) of these (\d+) schedules; the other (\d+), the portfolio's "
        r"dpor slots among them, run again when resumed\)",
        line,
    )
    assert found is not None, line
    counted, held, again, rest = map(int, found.groups())
    assert counted == again == held + rest
    assert held < counted

    resumed = subprocess.run(
        [*EXPLORE, "--resume", str(log), "--time", "1", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=280,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["per_worker"]["resumed"] == held
