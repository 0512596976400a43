"""A matrix cell of your own protocol with no expectation still fails when the protocol
raised: ``error`` is a crash, not a verdict to report and accept (trial 40a, f3:
``matrix --scenario FILE -p mymod:HookRaises`` showed ``error (no expectation)``, then
``1/1 cells as expected``, exit 0, where ``explore`` exits 1)."""

from __future__ import annotations

import json
from pathlib import Path

from odp_async.cli import ExitCode
from tests._usermod import cli_in

USER_MODULE = """
from typing import Any, ClassVar

from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.tracked import tracked


@tracked
class HookRaises(KvmSeq):
    name: ClassVar[str] = "u-hook-raises"
    summary: ClassVar[str] = "kvm-seq whose after_end raises"

    async def after_end(self, inv: Any) -> None:
        raise KeyError("after_end")


@tracked
class Fine(KvmSeq):
    name: ClassVar[str] = "u-fine"
    summary: ClassVar[str] = "kvm-seq under another name"
"""


def test_an_error_cell_with_no_expectation_is_a_mismatch(tmp_path: Path) -> None:
    (tmp_path / "errprotos.py").write_text(USER_MODULE)
    argv = ("matrix", "--scenario", "registration-race", "--budget", "30", "--jobs", "1")
    done = cli_in(tmp_path, *argv, "-p", "errprotos:HookRaises", "-p", "errprotos:Fine")
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    # neither cell had an expectation: the line says so, and what each found
    assert "1/2 cells as expected (2 with no expectation: 1 clean, 1 error) in " in done.stdout
    # what raised is told, not only in a replay (second new-user trial, 2026-12-06)
    note = "odp-async: note: registration-race/errprotos:HookRaises: error (step "
    (line,) = [x for x in done.stderr.splitlines() if x.startswith(note)]
    assert "KeyError: 'after_end'" in line, line
    shown = cli_in(tmp_path, *argv, "-p", "errprotos:HookRaises", "-p", "errprotos:Fine", "--json")
    cells = {c["protocol"]: c for c in json.loads(shown.stdout)["cells"]}
    assert cells["errprotos:HookRaises"]["found"] == "error"
    assert cells["errprotos:HookRaises"]["expected"] is None
    assert cells["errprotos:HookRaises"]["matches"] is False
    assert cells["errprotos:Fine"]["matches"] is True
    fine = cli_in(tmp_path, *argv, "-p", "errprotos:Fine")
    assert fine.returncode == ExitCode.OK, fine.stdout + fine.stderr
