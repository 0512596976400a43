"""DPOR on the built-in race scenarios: what it claims per cell (the README's table).

    python tools/dpor_model_claims.py [--budget 20000] [--time 240] [--progress S] [CELL ...]

CELL is ``scenario/protocol``; without one, every row of `CELLS`.  Each cell runs
``explore(scenario, protocol, chooser="dpor", schedules=budget, time=time)`` in this
process and prints a Markdown row: the cell, its claim, and the seconds it took (the time
varies with the machine; the claim does not, unless the time budget cut the search).
With ``--progress S``, every S seconds a line on stderr says how far the search got:
schedules run, traces, sleep-set-pruned executions, and the entries still queued with the
fewest preemptions among them (how far a search cut by the clock was from completing; it
wraps a private method of `odp_async.explore.dpor.DporChooser` to see its queue).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from odp_async.explore import ProgressUpdate, dpor, explore

CORRECT = ("interval-seq", "kvm-seq", "range-list", "odp2014-ctx")
RACES = (
    "registration-race",
    "stray-end-corruption",
    "stray-end-munmap",
    "fault-vs-munmap",
    "exit-during-faults",
    "dereg-during-notifier",
    "mprotect-downgrade",
    "migration-during-fault",
    "truncate-during-registration",
    "thp-split-during-fault",
    "ctx-dereg-during-end",
)
#: The bugs DPOR must find, then every correct protocol on every race scenario.
CELLS = (
    "stray-end-corruption/odp2014",
    "registration-race/odp2014",
    "truncate-during-registration/odp2014",
    "ctx-dereg-during-end/odp2014-ctx",
    *(
        f"{s}/{p}"
        for s in RACES
        for p in CORRECT
        if (s, p) != ("ctx-dereg-during-end", "odp2014-ctx")
    ),
)


def _watch(cell: str, every: float) -> Any:
    """A progress callback printing the search's queue every `every` seconds."""
    seen: list[Any] = []
    advance = dpor.DporChooser._advance

    def spy(self: Any) -> bool:
        if not seen or seen[-1] is not self:
            seen.append(self)
        return advance(self)

    dpor.DporChooser._advance = spy  # type: ignore[method-assign]
    last = [0.0]

    def progress(update: ProgressUpdate) -> None:
        if update.elapsed - last[0] < every or not seen:
            return
        last[0] = update.elapsed
        chooser = seen[-1]
        queue = chooser._queue
        fewest = queue[0][0] if queue else None
        print(
            f"{cell}: {update.done} schedules in {update.elapsed:.0f} s, "
            f"{chooser.traces} traces, {chooser.executions_pruned} pruned, "
            f"{len(queue)} entries queued (fewest preemptions {fewest})",
            file=sys.stderr,
            flush=True,
        )

    return progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=20_000)
    parser.add_argument("--time", type=float, default=240.0)
    parser.add_argument("--progress", type=float, default=None, metavar="S")
    parser.add_argument("cells", nargs="*", default=list(CELLS))
    args = parser.parse_args()
    print("| cell | claim | s |")
    print("|---|---|---|")
    for cell in args.cells:
        scenario, protocol = cell.split("/")
        start = time.perf_counter()
        watch = None if args.progress is None else _watch(cell, args.progress)
        result = explore(
            scenario,
            protocol,
            chooser="dpor",
            schedules=args.budget,
            time=args.time,
            progress=watch,
        )
        print(f"| {cell} | {result.claim} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
