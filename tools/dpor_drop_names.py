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
A diagnostic: it wraps private methods of `odp_async.explore.dfs` and
`odp_async.explore.dpor` for the run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpor_conflicts import _built_where

from odp_async import tracked as tracked_module
from odp_async.explore import dfs, dpor, explore


def main(argv: list[str]) -> None:
    prefixes = tuple(p for p in argv[0].split(",") if p)
    seconds = float(argv[1])
    where = _built_where()
    names: dict[Hashable, str] = {}
    kept: dict[Hashable, bool] = {}
    key, stable_keys = dfs._SystematicChooser._key, dpor.DporChooser._stable_keys

    def named_key(self: Any, resource: Hashable, ordinal: int) -> Hashable:
        k = key(self, resource, ordinal)
        if type(resource) is tracked_module.FieldOf and id(resource.owner) in where:
            names[k] = f"{where[id(resource.owner)]}.{resource.part!r}"
        return k

    def show(k: Any) -> str:  # as tools/dpor_conflicts.py shows a resource
        if k in names:
            return names[k]
        if type(k) is tuple and k[0] == "<field>":
            part = k[2][1] if type(k[2]) is tuple and k[2][0] == "<value>" else k[2]
            return f"{k[3][0]}.{part}"
        if type(k) is tuple and k[0] == "<obj>":
            return f"{k[2][0]} {k[2][1]!r}"
        return repr(k)

    def keep(k: Hashable) -> bool:
        answer = kept.get(k)
        if answer is None:
            answer = kept[k] = not show(k).startswith(prefixes)
        return answer

    def kept_keys(self: Any, fp: Any, ordinal: int, updates: Any = None) -> Any:
        reads, writes = stable_keys(self, fp, ordinal, updates)
        if updates is not None:
            left = {k for k in updates if keep(k)}
            updates.clear()
            updates.update(left)
        return frozenset(filter(keep, reads)), frozenset(filter(keep, writes))

    dfs._SystematicChooser._key = named_key  # type: ignore[method-assign]
    dpor.DporChooser._stable_keys = kept_keys  # type: ignore[method-assign]
    print(f"| cell | claim with {', '.join(prefixes)} dropped (UNSOUND) | s |")
    print("|---|---|---|")
    for cell in argv[2:]:
        scenario, protocol = cell.split("/")
        start = time.perf_counter()
        result = explore(scenario, protocol, chooser="dpor", schedules=400_000, time=seconds)
        print(f"| {cell} | {result.claim} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
