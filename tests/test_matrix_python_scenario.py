"""A `Scenario` of your own that runs the model is a matrix scenario, as a file is:
``matrix --scenario mymod:SCENARIO`` runs it under every built-in protocol (or those
given) against the ``expected`` it declares (trial 40c, f3: it was refused as "a program
with no protocol", and its suggested command failed; a Python scenario's expectations
had no command to check them).  The module lives in ``tmp_path``, run in fresh processes."""

from __future__ import annotations

import json
from pathlib import Path

from odp_async.cli import ExitCode
from tests._usermod import cli_in

SCENARIOS = """
from odp_async import task_group
from odp_async.scenarios import Scenario, Verdict

P = 0x1000


async def _body(w):
    await w.mm.mmap(0, 16 * P)
    for page in range(16):
        await w.mm.cpu_fault(page * P, write=True)
    b = await w.ctx.register_mr(0, 16 * P, name="B")

    async def fault():
        await w.ctx.device_fault(b, 4 * P, write=True)

    async def munmap():
        await w.mm.munmap(0, 16 * P)

    async with task_group() as tg:
        tg.start_soon(fault, name="fault")
        tg.start_soon(munmap, name="munmap")


OVERLAP = Scenario(
    "overlap", "a fault against a munmap", _body, ("fault", "munmap"),
    expected={"naive": Verdict.FOUND},
)


async def program():
    pass
"""


def test_a_python_scenario_is_a_matrix_scenario(tmp_path: Path) -> None:
    (tmp_path / "pyscen.py").write_text(SCENARIOS)
    argv = ("matrix", "--scenario", "pyscen:OVERLAP", "-p", "naive", "-p", "kvm-seq")
    for jobs in ("1", "2"):
        done = cli_in(tmp_path, *argv, "--budget", "300", "--jobs", jobs, "--json")
        assert done.returncode == ExitCode.OK, done.stdout + done.stderr
        cells = {c["protocol"]: c for c in json.loads(done.stdout)["cells"]}
        assert cells["naive"]["expected"] == "found"
        assert cells["naive"]["found"] == "found"
        assert cells["kvm-seq"]["expected"] == "clean"
        assert cells["kvm-seq"]["matches"] is True
        assert cells["naive"]["scenario"] == "pyscen:OVERLAP"
    token = cells["naive"]["token"]
    replayed = cli_in(tmp_path, "replay", token)
    assert replayed.returncode == ExitCode.VIOLATION, replayed.stdout + replayed.stderr


def test_a_program_with_no_protocol_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "pyscen2.py").write_text(SCENARIOS)
    done = cli_in(tmp_path, "matrix", "--scenario", "pyscen2:program", "--budget", "5")
    assert done.returncode == ExitCode.USAGE
    assert "'pyscen2:program' is a program with no protocol" in done.stderr
    missing = cli_in(tmp_path, "matrix", "--scenario", "pyscen2:NOPE", "--budget", "5")
    assert missing.returncode == ExitCode.USAGE
    assert "has no 'NOPE'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_explore_without_a_protocol_points_at_the_matrix(tmp_path: Path) -> None:
    (tmp_path / "pyscen3.py").write_text(SCENARIOS)
    done = cli_in(tmp_path, "explore", "pyscen3:OVERLAP")
    assert done.returncode == ExitCode.USAGE
    assert "odp-async matrix --scenario pyscen3:OVERLAP" in done.stderr
