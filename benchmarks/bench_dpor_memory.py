"""Benchmark: memory and time of dfs and DPOR per schedule, at 100, 400 and 1,600 steps.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dpor_memory.py           # full run
    .venv/bin/python benchmarks/bench_dpor_memory.py --quick   # smoke run

The program: two tasks of ``n / 2`` steps each, every step writing one shared variable
(``checkpoint(Footprint.write("x"))``), so every step conflicts with the other task's
and every node of the search tree has an alternative.  For each chooser (``dfs``:
iterative preemption bounding to 3 without symmetry, as the explorer runs it; ``dpor``:
`DporChooser()`) and each n in 100, 400, 1,600, one repeat runs S schedules (pruned ones
not counted) twice: once timed (CPU clock, the garbage collector on, `_common.clocked`),
once under `tracemalloc` for the peak of traced memory.  Figures are medians over the
repeats, per step of a schedule: CPU ns per step, and peak bytes per step.

Linear growth per schedule means both stay flat as n grows: the ratio of the 1,600-step
figure to the 100-step one (paired per repeat) is near 1 (a quadratic search, copying
the path per alternative, gives about 16).  Targets: each ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report, Row, clocked, load, table

from odp_async._runtime import checkpoint, sim, task_group
from odp_async._runtime.footprint import Footprint
from odp_async.explore.dfs import DfsChooser, PrunedExecution
from odp_async.explore.dpor import DporChooser

KINDS = ("dfs", "dpor")


def long_program(steps: int) -> Callable[[], Any]:
    """Two tasks, every step of each writing the same "x": `steps` steps in all."""

    async def body() -> None:
        async def worker() -> None:
            for _ in range(steps // 2):
                await checkpoint(Footprint.write("x"))

        async with task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(worker)

    return body


def make_chooser(kind: str) -> Any:
    if kind == "dfs":
        return DfsChooser(3, iterative=True, symmetry=False)
    return DporChooser()


def search(kind: str, steps: int, schedules: int) -> int:
    """Run `schedules` schedules of the `steps`-step program; how many ran."""
    program = long_program(steps)
    chooser = make_chooser(kind)
    ran = 0
    while ran < schedules and chooser.has_more:
        try:
            sim.run(program, chooser=chooser, max_steps=10 * steps + 100)
        except PrunedExecution:
            continue
        ran += 1
    return ran


def peak(kind: str, steps: int, schedules: int) -> int:
    tracemalloc.start()
    try:
        search(kind, steps, schedules)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args()
    sizes = (100, 400) if args.quick else (100, 400, 1600)
    schedules = 5 if args.quick else 20
    repeats = 1 if args.quick else 3
    report = Report("bench_dpor_memory.py")
    names = [f"{kind} {n} steps" for kind in KINDS for n in sizes]
    time_cpu: dict[str, list[float]] = {name: [] for name in names}
    time_wall: dict[str, list[float]] = {name: [] for name in names}
    mem: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for kind in KINDS:
            for n in sizes:
                name = f"{kind} {n} steps"
                cpu, wall, ran = clocked(lambda k=kind, n=n: search(k, n, schedules))
                time_cpu[name].append(cpu / (ran * n) * 1e9)
                time_wall[name].append(wall / (ran * n) * 1e9)
                mem[name].append(peak(kind, n, schedules) / n)
    largest = sizes[-1]
    rows: list[Row] = []
    for kind in KINDS:
        for n in sizes:
            peer = f"{kind} {sizes[0]} steps" if n != sizes[0] else None
            target = ("<=", 1.5) if n == largest and peer is not None else None
            rows.append((f"{kind} {n} steps", peer, target))
    print(
        f"{schedules} schedules per figure, {repeats} repeats, gc on, load {load()}",
        flush=True,
    )
    title = f"time per step of a schedule (dfs and dpor, {schedules} schedules)"
    for line in table(title, rows, time_cpu, time_wall, unit="ns/step", report=report):
        print(line, flush=True)
    print()
    title = f"peak memory per step of a schedule (tracemalloc, {schedules} schedules)"
    for line in table(title, rows, mem, mem, unit="B/step", report=report):
        print(line, flush=True)
    report.write(args.json)


if __name__ == "__main__":
    main()
