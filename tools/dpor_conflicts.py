"""Which accesses make DPOR explore more on a cell: the backtrack entries, by resource.

    python tools/dpor_conflicts.py [--budget 500] [--top 30] CELL

CELL is ``scenario/protocol``.  Runs ``explore(scenario, protocol, chooser="dpor",
schedules=budget)`` and counts, for every backtrack entry a reversed race added, each
resource the two racing steps conflict on, with the kind of the conflict (``WW``: both
write it; ``WR``: the earlier step writes, the later reads; ``RW``: the other way), and
``<unknown>`` for a race with a step whose footprint is unknown.  A resource is shown as
``Class.field`` (the owner's class and the field or key), a primitive as its class and
name, and a tracked container as the ``file:line`` that built it.  A diagnostic: it wraps
private methods of `odp_async.explore.dpor.DporChooser` and `odp_async.tracked`'s
containers for the run; the counts depend on the budget (the search's order is fixed).
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Hashable
from typing import Any

from odp_async import tracked as tracked_module
from odp_async.explore import dfs, dpor, explore


def _built_where() -> dict[int, str]:
    """Wrap the tracked containers' constructors: id -> the ``file:line`` that built it."""
    where: dict[int, str] = {}
    keep: list[object] = []  # alive for the run: ids are not reused
    for cls in (tracked_module.TrackedList, tracked_module.TrackedDict, tracked_module.TrackedSet):
        original = cls.__init__

        def init(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            frame = sys._getframe(1)
            while frame.f_back is not None and (
                "tracked.py" in frame.f_code.co_filename or "attr" in frame.f_code.co_filename
            ):
                frame = frame.f_back
            where[id(self)] = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"
            keep.append(self)
            _original(self, *args, **kwargs)

        cls.__init__ = init  # type: ignore[method-assign]
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("cell")
    args = parser.parse_args()
    scenario, protocol = args.cell.split("/")

    where = _built_where()
    names: dict[Hashable, str] = {}
    key = dfs._SystematicChooser._key

    def named_key(self: Any, resource: Hashable, ordinal: int) -> Hashable:
        k = key(self, resource, ordinal)
        if type(resource) is tracked_module.FieldOf and id(resource.owner) in where:
            names[k] = f"{where[id(resource.owner)]}.{resource.part!r}"
        return k

    def show(k: Any) -> str:
        if k in names:
            return names[k]
        if type(k) is tuple and k[0] == "<field>":
            part = k[2][1] if type(k[2]) is tuple and k[2][0] == "<value>" else k[2]
            return f"{k[3][0]}.{part}"
        if type(k) is tuple and k[0] == "<obj>":
            return f"{k[2][0]} {k[2][1]!r}"
        return repr(k)

    counts: collections.Counter[str] = collections.Counter()
    racing: list[frozenset[str] | None] = [None]
    reverse, push = dpor.DporChooser._reverse, dpor.DporChooser._push

    def counted_reverse(self: Any, i: int, j: int, events: Any, *rest: Any) -> None:
        a, b = events[i][2], events[j][2]
        if a is None or b is None:
            racing[0] = frozenset(("<unknown>",))
        else:
            both = (a.writes & (b.writes | b.reads)) | (b.writes & a.reads)
            racing[0] = frozenset(
                f"{show(r)} {'W' if r in a.writes else 'R'}{'W' if r in b.writes else 'R'}"
                for r in both
            )
        try:
            reverse(self, i, j, events, *rest)
        finally:
            racing[0] = None

    def counted_push(self: Any, *rest: Any) -> None:
        for r in racing[0] or ():
            counts[r] += 1
        push(self, *rest)

    dfs._SystematicChooser._key = named_key  # type: ignore[method-assign]
    dpor.DporChooser._reverse = counted_reverse  # type: ignore[method-assign]
    dpor.DporChooser._push = counted_push  # type: ignore[method-assign]
    result = explore(scenario, protocol, chooser="dpor", schedules=args.budget)
    print(f"{args.cell}: {result.claim}")
    print("entries  resource  conflict")
    for resource, n in counts.most_common(args.top):
        print(f"{n:7d}  {resource}")


if __name__ == "__main__":
    main()
