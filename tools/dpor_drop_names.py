"""UNSOUND experiment: DPOR with the resources whose names start with given prefixes left
out of every footprint.

    python tools/dpor_drop_names.py PREFIXES SECONDS CELL ...

``PREFIXES``: comma-separated beginnings of resource names as `tools/dpor_conflicts.py`
shows them (``SimTask.<progress>`` a task's progress, ``_Pending.`` every field of the
pending faults, ``Mutex 'mmu_lock'`` a primitive, ``mm.py:1003`` a tracked container by
the ``file:line`` that built it); ``SECONDS``: each cell's time budget (400,000 schedules
at most).  Prints one Markdown row per cell.  Where `tools/dpor_drop_upper_bound.py`
drops whole classes of primitives and containers, this drops any field too (the
liveness rule's reads of a task's progress, one protocol's counter).  What it counts is
what footprints that never order those accesses could at best reach: an upper bound on
what refining them could give, never a claim.  **Its verdicts are not to be trusted.**
A diagnostic: through `dpor_conflicts.install_names` and
`dpor_drop_upper_bound.run_without` it wraps private methods of `odp_async.explore.dfs` and
`odp_async.explore.dpor` for the run.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpor_conflicts import install_names
from dpor_drop_upper_bound import run_without


def main(argv: list[str]) -> None:
    prefixes = tuple(p for p in argv[0].split(",") if p)
    show = install_names()
    kept: dict[Hashable, bool] = {}

    def keep(k: Hashable) -> bool:
        answer = kept.get(k)
        if answer is None:
            answer = kept[k] = not show(k).startswith(prefixes)
        return answer

    run_without(keep, ", ".join(prefixes), argv[2:], float(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
