"""`tools/dpor_lock_upper_bound.py`: DPOR with locks left out of the footprints, an
UNSOUND estimate of what a lock-aware reduction could save (and why it is not a feature)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TOOL = str(ROOT / "tools" / "dpor_lock_upper_bound.py")


def _run(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, TOOL, *args], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return out.splitlines()


def test_dropping_the_locks_loses_behaviours_the_sound_search_keeps() -> None:
    # The tool itself asserts that the sound DPOR reaches the unreduced search's outcomes.
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in _run("--programs")[2:]}
    assert rows["abba-deadlock"] == ["2", "20", "4", "1", "deadlock |"]
    assert rows["disjoint-sections-then-read"][4] == "((1, 2), ((2,), (0,))) |"
    assert rows["update-inside"] == ["1", "24", "4", "1", "- |"]


def test_it_counts_the_traces_left_on_a_cell() -> None:
    lines = _run("fault-vs-munmap/kvm-seq")
    # 36 traces with mmu_lock and the umem mutexes in the footprints (the README's table).
    assert lines[2].startswith("| fault-vs-munmap/kvm-seq | complete: 13 traces, no violation |")
