"""DPOR on the built-in race scenarios: what it claims per cell (the README's table).

    python tools/dpor_model_claims.py [--budget 20000] [--time 240] [CELL ...]

CELL is ``scenario/protocol``; without one, every row of `CELLS`.  Each cell runs
``explore(scenario, protocol, chooser="dpor", schedules=budget, time=time)`` in this
process and prints a Markdown row: the cell, its claim, and the seconds it took (the time
varies with the machine; the claim does not, unless the time budget cut the search).
"""

from __future__ import annotations

import argparse
import time

from odp_async.explore import explore

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=20_000)
    parser.add_argument("--time", type=float, default=240.0)
    parser.add_argument("cells", nargs="*", default=list(CELLS))
    args = parser.parse_args()
    print("| cell | claim | s |")
    print("|---|---|---|")
    for cell in args.cells:
        scenario, protocol = cell.split("/")
        start = time.perf_counter()
        result = explore(scenario, protocol, chooser="dpor", schedules=args.budget, time=args.time)
        print(f"| {cell} | {result.claim} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
