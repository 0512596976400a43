"""Benchmark parallel DPOR: ``explore(..., chooser="dpor", jobs=N)`` against ``jobs=1``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dpor_parallel.py           # full run (minutes)
    .venv/bin/python benchmarks/bench_dpor_parallel.py --quick   # smoke run, small cells

For each cell (`CELLS`: built-in model cells that DPOR completes in a few seconds of CPU,
and a classic program searched whole, ``stop_on_first=False``), the whole DPOR search
(budget `BUDGET` schedules, never reached) runs with ``jobs=1`` (the serial search, in
this process), ``jobs=2`` (`odp_async.explore.dpor_parallel`: subtrees with their sleep
sets, on a process pool, its start included) and ``jobs=`` the machine's cpu count when
that is above 2; each ``--repeats`` times (3; the jobs counts alternate within a repeat),
the garbage collector on, after one untimed search of 5 traces (imports, caches).
Printed per cell and jobs count: the traces explored, the claim, the median wall time,
the median CPU time of this process and its finished children (the pool's workers, once
it closed), and ``jobs1/jobsN``, the median of the per-repeat ratios of wall times
(above 1: faster than the serial search) with its range.

The bench checks what the split search promises, not its speed: every jobs count claims
what ``jobs=1`` claims (complete, the same number of traces, the same number of failing
ones; for a clean cell the same claim text).  A cell where they differ is printed as
``MISMATCH`` and the script exits 1.  The header gives the cpu count and the load
average, and says when the machine is busy (load average above its cpu count): the
ratios then measure the sharing as much as the search.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report, load

from odp_async.explore.runner import ExploreResult, explore

#: (scenario, protocol or None, stop_on_first): DPOR completes each in 3-15 s of CPU on
#: this 2-core VM (225 to 1,454 traces; reorder_5: 12,640 traces, 2,848 failing).
CELLS: tuple[tuple[str, str | None, bool], ...] = (
    ("stray-end-munmap", "interval-seq", True),
    ("exit-during-faults", "kvm-seq", True),
    ("registration-race", "kvm-seq", True),
    ("classic:reorder_5", None, False),
)
#: ``--quick``: cells of a few traces.
QUICK_CELLS: tuple[tuple[str, str | None, bool], ...] = (
    ("registration-count", "interval-seq", True),
    ("classic:reorder_3", None, False),
)
#: Schedules budget of every search: far above what the cells need, so each completes.
BUDGET = 100_000


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(scenario: str, protocol: str | None, stop: bool, jobs: int) -> dict[str, Any]:
    """One whole search: its claim and its wall and CPU seconds."""
    gc.collect()
    c0, k0, w0 = time.process_time(), _children_cpu(), time.perf_counter()
    r: ExploreResult = explore(
        scenario,
        protocol,
        chooser="dpor",
        schedules=BUDGET,
        jobs=jobs,
        stop_on_first=stop,
        shrink=False,
    )
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0 + _children_cpu() - k0
    return {
        "traces": r.schedules,
        "complete": r.complete,
        "failing": len(r.failing),
        "claim": r.claim,
        "wall": wall,
        "cpu": cpu,
    }


def agrees(serial: dict[str, Any], other: dict[str, Any]) -> bool:
    """The split search claims what the serial one does: complete, the same traces and
    failing traces, and (no failure) the same claim text.  A failing search's text names
    its first failing schedule, whose index may differ (the traces' order past the head)."""
    keys = ("complete", "traces", "failing")
    if any(serial[k] != other[k] for k in keys):
        return False
    return serial["failing"] > 0 or serial["claim"] == other["claim"]


def label(scenario: str, protocol: str | None) -> str:
    return scenario if protocol is None else f"{scenario}/{protocol}"


def main() -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cells, one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="default: 3 (quick: 1)")
    parser.add_argument("--note", default="", help="a remark for the header (what ran beside)")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args()
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    cells = QUICK_CELLS if args.quick else CELLS
    cpus = os.cpu_count() or 1
    counts = [1, 2] + ([cpus] if cpus > 2 else [])
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    start_load = load()
    busy = ""
    try:
        if os.getloadavg()[0] > cpus:
            busy = (
                f"; the machine is busy (load above its {cpus} cpus): the ratios measure "
                "the sharing as much as the search"
            )
    except OSError:
        pass
    print(
        f"{started}: python {sys.version.split()[0]}, {cpus} cpus, load {start_load}{busy}; "
        f"chooser dpor, jobs {', '.join(map(str, counts))}, median of {repeats}, gc on"
        + (f"; {args.note}" if args.note else ""),
        flush=True,
    )
    report = Report("bench_dpor_parallel.py")
    rows: list[dict[str, Any]] = []
    mismatches: list[str] = []
    head = (
        f"{'cell':<36}{'jobs':>5}{'traces':>8}{'failing':>8}{'wall s':>9}{'cpu s':>8}"
        f"{'jobs1/jobsN':>13}{'range':>12}  claim"
    )
    lines = ["== dpor, jobs=1 against jobs=N (wall seconds, median)", head]
    for scenario, protocol, stop in cells:
        name = label(scenario, protocol)
        runs: dict[int, list[dict[str, Any]]] = {j: [] for j in counts}
        # Untimed: the imports and caches a first search of the cell fills.
        explore(scenario, protocol, chooser="dpor", schedules=5, shrink=False)
        for _ in range(repeats):
            for j in counts:
                runs[j].append(run_once(scenario, protocol, stop, j))
        serial = runs[1][0]
        for j in counts:
            first = runs[j][0]
            same = all(agrees(serial, r) for r in runs[j])
            wall = statistics.median(r["wall"] for r in runs[j])
            cpu = statistics.median(r["cpu"] for r in runs[j])
            ratios = [a["wall"] / b["wall"] for a, b in zip(runs[1], runs[j], strict=True)]
            ratio = statistics.median(ratios)
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            claim = first["claim"] if same else "MISMATCH: " + first["claim"]
            if not same:
                mismatches.append(f"{name} jobs={j}")
            line = (
                f"{name:<36}{j:>5}{first['traces']:>8}{first['failing']:>8}{wall:>9.2f}"
                f"{cpu:>8.2f}{ratio:>13.2f}{spread:>12}  {claim}"
            )
            lines.append(line)
            print(line, flush=True)
            rows.append(
                {
                    "name": f"{name} jobs={j}",
                    "jobs": j,
                    "traces": first["traces"],
                    "failing": first["failing"],
                    "complete": first["complete"],
                    "claim": first["claim"],
                    "agrees": same,
                    "wall": wall,
                    "cpu": cpu,
                    "ratio": ratio,
                    "ratio_min": min(ratios),
                    "ratio_max": max(ratios),
                }
            )
    report.add("dpor, jobs=1 against jobs=N", rows)
    print()
    print("\n".join(lines))
    print(f"\nload {load()} at the end", flush=True)
    report.write(args.json)
    if mismatches:
        print(f"MISMATCH: the claims differ from jobs=1 on {', '.join(mismatches)}", flush=True)
        return 1
    print("every jobs count claims what jobs=1 claims", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
