"""`tools/dpor_drop_names.py`: DPOR with the resources whose names start with given
prefixes left out of every footprint, an UNSOUND upper bound on what refining them could
save (the README's diagnosis of the three open stray-end-corruption cells)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TOOL = str(ROOT / "tools" / "dpor_drop_names.py")


def _row(prefixes: str, cell: str) -> str:
    out = subprocess.run(
        [sys.executable, TOOL, prefixes, "120", cell],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    header, _, row = out.splitlines()
    assert "(UNSOUND)" in header
    return row


def test_dropping_nothing_is_the_sound_count() -> None:
    # 36 traces: the README's table and tests/explore/test_dpor_model_claims.py.
    row = _row("", "fault-vs-munmap/kvm-seq")
    assert row.startswith("| fault-vs-munmap/kvm-seq | complete: 36 traces, no violation |")


def test_dropping_a_lock_by_its_name_counts_fewer_traces() -> None:
    row = _row("Mutex 'mmu_lock'", "fault-vs-munmap/kvm-seq")
    assert row.startswith("| fault-vs-munmap/kvm-seq | complete: 17 traces, no violation |")


def test_dropping_a_class_of_primitives_shares_the_runner() -> None:
    # tools/dpor_drop_upper_bound.py, whose row printer the names tool reuses.
    tool = str(ROOT / "tools" / "dpor_drop_upper_bound.py")
    out = subprocess.run(
        [sys.executable, tool, "Mutex", "", "120", "fault-vs-munmap/kvm-seq"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.splitlines()
    assert "(UNSOUND)" in out[0]
    assert out[2].startswith("| fault-vs-munmap/kvm-seq | complete: 17 traces, no violation |")
