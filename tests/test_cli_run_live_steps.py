"""A live run numbers no steps: ``odp-async run`` says so, never "step 0" (which the
README keeps for a violation the setup recorded) (trial 19b, finding f3).  A user's
protocol that gives up every fault (a ``spurious-fault-failure`` on every run, whatever
the interleaving), from a module in tmp_path, the CLI in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.check import Violation
from odp_async.cli import ExitCode
from tests._usermod import pythonpath_env

USER_MODULE = """
from typing import ClassVar

from odp_async.odp.protocols.base import FaultAborted
from odp_async.odp.protocols.odp2014 import Odp2014


class GivesUp(Odp2014):
    name: ClassVar[str] = "gives-up"
    summary: ClassVar[str] = "BUG: aborts every fault"

    async def fault_begin(self, umem, rng):
        raise FaultAborted("gave up")
"""

SCENARIO = """
[scenario]
name = "live-steps"
protocols = ["livestepsproto:GivesUp"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "register", mr = "A", start = 0x0, pages = 4 },
]

[[actor]]
name = "fault"
ops = [{ op = "fault", mr = "A", address = 0x1000 }]
"""


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
    )


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_a_live_runs_violations_carry_no_step_number(tmp_path: Path, backend: str) -> None:
    (tmp_path / "livestepsproto.py").write_text(USER_MODULE)
    (tmp_path / "live.toml").write_text(SCENARIO)
    done = cli(tmp_path, "run", "live.toml", "--backend", backend)
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "spurious-fault-failure" in line]
    assert lines, done.stdout
    for line in lines:
        assert "(live run, fault):" in line, line
        assert "(step " not in line, line
    done = cli(tmp_path, "run", "live.toml", "--backend", backend, "--json")
    data = json.loads(done.stdout)
    assert data["violations"], data
    assert {v["step"] for v in data["violations"]} == {None}


def test_a_sim_violation_still_names_its_step() -> None:
    v = Violation("starvation", 7, ("fault",), (), "retried")
    assert v.describe() == "starvation (step 7, fault): retried"
    live = Violation("starvation", None, ("fault",), (), "retried")
    assert live.describe() == "starvation (live run, fault): retried"
    with pytest.raises(ValueError, match="no step"):
        _ = live.sim_step
