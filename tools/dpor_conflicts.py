"""Which accesses make DPOR explore more on a cell: the backtrack entries, by resource.

    python tools/dpor_conflicts.py [--budget 500] [--top 30] [--runs] CELL

CELL is ``scenario/protocol``.  Runs ``explore(scenario, protocol, chooser="dpor",
schedules=budget)`` and counts, for every backtrack entry a reversed race added, each
resource the two racing steps conflict on, with the kind of the conflict (``WW``: both
write it; ``WR``: the earlier step writes, the later reads; ``RW``: the other way), and
``<unknown>`` for a race with a step whose footprint is unknown; ``U`` marks a
commutative update (`odp_async.tracked.TrackedBag`), which conflicts with a read or a
write, never with another update.  A resource is shown as
``Class.field`` (the owner's class and the field or key), a primitive as its class and
name, and a tracked container as the ``file:line`` that built it.  A diagnostic: it wraps
private methods of `odp_async.explore.dpor.DporChooser` and `odp_async.tracked`'s
containers for the run; the counts depend on the budget (the search's order is fixed).

With ``--runs``, a second table: the entries by the set of resources of the race that
queued each (owners only, sorted), and what the runs they led to were (``traces``: ran
to the end; ``blocked``: sleep-set blocked), then the entries still queued by their
preemptions.  An entry queued by a race with the run's end or a join (a step whose
footprint is unknown) shows as ``<unknown>``.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Callable, Hashable
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


def install_names() -> Callable[[Hashable], str]:
    """Wrap the systematic choosers' resource keys so that a tracked container's are named
    by the ``file:line`` that built it; returns how a key is shown (``Class.field``, a
    primitive's class and name, or ``file:line.key``)."""
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

    dfs._SystematicChooser._key = named_key  # type: ignore[method-assign]
    return show


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--runs", action="store_true", help="what each entry's run was")
    parser.add_argument("cell")
    args = parser.parse_args()
    scenario, protocol = args.cell.split("/")

    show = install_names()
    counts: collections.Counter[str] = collections.Counter()
    racing: list[frozenset[str] | None] = [None]
    reverse, push = dpor.DporChooser._reverse, dpor.DporChooser._push

    def counted_reverse(self: Any, i: int, j: int, events: Any, *rest: Any) -> None:
        a, b = events[i][2], events[j][2]
        if a is None or b is None:
            racing[0] = frozenset(("<unknown>",))
        else:
            both = (
                (a.writes & (b.writes | b.reads | b.updates))
                | (b.writes & (a.reads | a.updates))
                | (a.updates & b.reads)
                | (b.updates & a.reads)
            )

            def kind(fp: Any, r: Any) -> str:
                return "W" if r in fp.writes else "U" if r in fp.updates else "R"

            racing[0] = frozenset(f"{show(r)} {kind(a, r)}{kind(b, r)}" for r in both)
        try:
            reverse(self, i, j, events, *rest)
        finally:
            racing[0] = None

    # --runs: the owners of the racing resources of each queued entry, and its run.
    queued_by: dict[tuple[int, int], str] = {}
    runs: collections.defaultdict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    running: list[str | None] = [None]
    choosers: list[Any] = []
    advance, new_execution = dpor.DporChooser._advance, dpor.DporChooser.new_execution

    def counted_push(self: Any, node: Any, option: int, cost: int) -> None:
        for r in racing[0] or ():
            counts[r] += 1
        owners = sorted({r.rsplit(" ", 1)[0].split(".")[0] for r in racing[0] or ()})
        kind = " + ".join(owners) or "<other>"
        queued_by[(id(node), option)] = kind
        runs[kind][0] += 1
        push(self, node, option, cost)

    def counted_advance(self: Any) -> bool:
        more = advance(self)
        node = self._path[-1] if more and self._path else None
        if node is not None and not node.is_draw:
            running[0] = queued_by.pop((id(node), node.options[node.chosen]), "<draw>")
        else:
            running[0] = "<draw>" if more else None
        return bool(more)

    def counted_new_execution(self: Any) -> None:
        if not choosers or choosers[-1] is not self:
            choosers.append(self)
        if self._started and running[0] is not None:
            runs[running[0]][2 if self._aborted else 1] += 1
            running[0] = None
        new_execution(self)

    dpor.DporChooser._reverse = counted_reverse  # type: ignore[method-assign]
    dpor.DporChooser._push = counted_push  # type: ignore[method-assign]
    if args.runs:
        dpor.DporChooser._advance = counted_advance  # type: ignore[method-assign]
        dpor.DporChooser.new_execution = counted_new_execution  # type: ignore[method-assign]
    result = explore(scenario, protocol, chooser="dpor", schedules=args.budget)
    print(f"{args.cell}: {result.claim}")
    print("entries  resource  conflict")
    for resource, n in counts.most_common(args.top):
        print(f"{n:7d}  {resource}")
    if args.runs and choosers:
        chooser = choosers[-1]
        if running[0] is not None:  # the last run
            runs[running[0]][2 if chooser._aborted else 1] += 1
        print(
            f"runs: {chooser.traces} traces, {chooser.executions_pruned} blocked, "
            f"{len(chooser._queue)} entries queued"
        )
        print("entries  traces  blocked  owners of the racing resources")
        for kind, (n, traces, blocked) in sorted(runs.items(), key=lambda kv: -kv[1][0])[
            : args.top
        ]:
            print(f"{n:7d}  {traces:6d}  {blocked:7d}  {kind}")
        by_cost = collections.Counter(entry[0] for entry in chooser._queue)
        print("queued by preemptions:", ", ".join(f"{c}: {n}" for c, n in sorted(by_cost.items())))


if __name__ == "__main__":
    main()
