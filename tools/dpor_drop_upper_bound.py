"""UNSOUND experiment: DPOR with whole classes of primitives, and chosen containers,
left out of every footprint.

    python tools/dpor_drop_upper_bound.py CLASSES WHERE SECONDS CELL ...

``CLASSES``: primitive classes whose keys are dropped, comma-separated
(``Mutex,RegionMutex,Completion``: every lock and every completion and gate); ``WHERE``:
tracked containers whose entries are dropped, by the ``file:line`` that built them
(``mm.py:929,mm.py:1217``; empty for none; as `tools/dpor_conflicts.py` names them);
``SECONDS``: each cell's time budget (400,000 schedules at most).  Prints one Markdown row
per cell.  What it counts is what footprints that never order those accesses could at best
reach: an upper bound on what refining them (a lock-aware reduction, gate edges,
commutative updates) can give, never a claim.  **Its verdicts are not to be trusted.**
A diagnostic, like `tools/dpor_lock_upper_bound.py`: it wraps private methods of
`odp_async.explore.dfs` and `odp_async.explore.dpor` for the run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpor_conflicts import _built_where

from odp_async import tracked as tracked_module
from odp_async.explore import dfs, dpor, explore


def main(argv: list[str]) -> None:
    classes = {c for c in argv[0].split(",") if c}
    places = tuple(w for w in argv[1].split(",") if w)
    seconds = float(argv[2])
    where = _built_where()
    dropped: set[Hashable] = set()
    key = dfs._SystematicChooser._key

    def named_key(self: Any, resource: Hashable, ordinal: int) -> Hashable:
        k = key(self, resource, ordinal)
        if type(resource) is tracked_module.FieldOf and where.get(id(resource.owner)) in places:
            dropped.add(k)
        return k

    def keep(k: Hashable) -> bool:
        if k in dropped:
            return False
        if type(k) is tuple and len(k) == 3 and k[0] == "<obj>" and type(k[2]) is tuple:
            return k[2][0] not in classes
        return True

    dfs._SystematicChooser._key = named_key  # type: ignore[method-assign]
    run_without(keep, "those accesses", argv[3:], seconds)


def run_without(
    keep: Callable[[Hashable], bool], what: str, cells: list[str], seconds: float
) -> None:
    """Run DPOR on each ``scenario/protocol`` of `cells` (``seconds`` each, 400,000
    schedules at most) with the resource keys `keep` refuses left out of every footprint,
    printing one Markdown row per cell (`what` names what was dropped in the header)."""
    stable_keys = dpor.DporChooser._stable_keys

    def kept_keys(self: Any, fp: Any, ordinal: int, updates: Any = None) -> Any:
        reads, writes = stable_keys(self, fp, ordinal, updates)
        if updates is not None:
            kept = {k for k in updates if keep(k)}
            updates.clear()
            updates.update(kept)
        return frozenset(filter(keep, reads)), frozenset(filter(keep, writes))

    dpor.DporChooser._stable_keys = kept_keys  # type: ignore[method-assign]
    print(f"| cell | claim with {what} dropped (UNSOUND) | s |")
    print("|---|---|---|")
    for cell in cells:
        scenario, protocol = cell.split("/")
        start = time.perf_counter()
        result = explore(scenario, protocol, chooser="dpor", schedules=400_000, time=seconds)
        print(f"| {cell} | {result.claim} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
