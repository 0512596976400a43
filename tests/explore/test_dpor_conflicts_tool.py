"""`tools/dpor_conflicts.py`: the backtrack entries of a DPOR search, by resource."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_it_names_the_conflicting_fields_of_a_cell() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "dpor_conflicts.py"),
            "--budget",
            "20",
            "fault-vs-munmap/kvm-seq",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    lines = out.splitlines()
    assert lines[0].startswith("fault-vs-munmap/kvm-seq: no violation in 20 schedules")
    rows = [re.fullmatch(r" *(\d+)  (.+) (WW|WR|RW)", line) for line in lines[2:]]
    assert rows, lines
    assert all(rows), lines
    assert any(r is not None and r[2] == "Mutex 'mmu_lock'" for r in rows), lines


def test_runs_tells_what_each_entry_led_to() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "dpor_conflicts.py"),
            "--budget",
            "60",
            "--runs",
            "fault-vs-munmap/kvm-seq",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    lines = out.splitlines()
    assert "runs: 36 traces, 0 blocked, 0 entries queued" in lines, lines
    at = lines.index("entries  traces  blocked  owners of the racing resources")
    rows = [re.fullmatch(r" *(\d+) +(\d+) +(\d+)  (.+)", line) for line in lines[at + 1 : -1]]
    assert rows, lines
    assert all(rows), lines
    # Every run but the first came from an entry: 35 entries, 35 traces and none blocked
    # (the gate edge: a gate's opening happens before the waits it lets through).
    assert sum(int(r[1]) for r in rows if r) == 35
    assert sum(int(r[2]) for r in rows if r) == 35
    assert sum(int(r[3]) for r in rows if r) == 0
    assert lines[-1] == "queued by preemptions: "
