"""Benchmark DPOR: schedules to the first bug on SCTBench-style programs, and memory per path.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dpor.py           # full run
    .venv/bin/python benchmarks/bench_dpor.py --quick   # smoke run, small budgets

Two tables, measured in one run:

1. ``schedules to the first bug``: every program of `odp_async.scenarios.sctbench`
   (``classic:<name>``; ``--quick``: the small ones), for each contender, with budget C
   schedules (``--budget``):

   - ``dpor``: ``explore(name, chooser="dpor")``, one deterministic count (the programs
     keep every shared value in a `SharedCell` or a primitive and say so,
     ``Scenario.noted_only``: a step that declares nothing, a task's first step
     included, is exactly its noted accesses);
   - ``dpor-noted``: the same search with ``DporChooser(noted_only=True)``, the chooser's
     own form of that promise, driven in the runner's loop (equal to ``dpor`` here);
   - ``dfs``: ``explore(name, chooser="dfs")`` (iterative preemption bounding to 3,
     sleep sets and symmetry), one deterministic count;
   - ``random``, ``pct``: ``explore(name, chooser=..., seed=s)``, median over seeds
     0..S-1 (``--seeds``);
   - ``frontrun``: PyPI ``frontrun``'s DPOR (its defaults: ``preemption_bound=2``;
     ``reproduce_on_failure=0``, ``max_executions=C``) on the same program written as
     asyncio tasks (``await asyncio.sleep(0)`` before every shared access, as its README
     writes them; threads given as its worker list, so none is created at a scheduling
     point; the bug checked by the invariant), capped at ``FRONTRUN_SECONDS`` of wall
     time (``>n (time)``: no failure in the n executions it ran by then).  Programs it
     has no version of show ``-``; above ``FRONTRUN_MAX_WORKERS`` workers, ``skipped``.

   Each of our searches (one chooser, one seed, one program) is capped at ``--cap``
   seconds of wall time (`OURS_SECONDS`; ``explore(..., time=cap)``): dfs's
   ``schedules`` budget counts the schedules it checks, not the runs it abandons (sleep
   sets, probes), and on ``twostage_50`` those grow about as N^3 (over 10 minutes for
   1,000 schedules), so a capped search shows ``>n (time)`` (no failure in the n
   schedules it checked by then), as frontrun's column does.

   A cell reads ``n`` (schedules to the first failure), ``>C`` (none within the budget:
   a miss), ``>n (time)`` (none within the wall-clock cap), or ``WRONG`` (a failure of
   another verdict than the program's, or a failure on a program without a bug); a
   median over seeds is ``>C`` or ``>n (time)`` when it is a miss (``(time)`` if any
   seed's search hit the cap, n the fewest schedules one of them checked).  ``time`` is
   the wall time of the whole row.
2. ``memory per path``: a program of two tasks with ``n / 2`` steps each, every step
   writing one shared variable (so every step conflicts with the other task's), for n in
   100, 400, 1,600 steps per schedule: 40 schedules of ``dfs`` (iterative bounding, as the
   explorer runs it) and of ``dpor``; peak traced memory (`tracemalloc`) and wall time per
   schedule.  Linear growth: the peak per step stays flat as n grows.

Targets (printed, never asserted): dpor needs no more schedules than frontrun's DPOR on
every program; no WRONG cell.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import load

from odp_async.explore.dfs import PrunedExecution
from odp_async.explore.dpor import DporChooser
from odp_async.explore.runner import explore
from odp_async.explore.target import Target
from odp_async.scenarios import Verdict
from odp_async.scenarios.sctbench import SCTBENCH

try:
    import frontrun
except ImportError:  # optional peer: its column shows "not installed"
    frontrun = None

#: Wall-clock cap of one frontrun call (its ``total_timeout``): its DPOR runs about 2
#: executions/s on twostage_20 on a shared 2-core VM.
FRONTRUN_SECONDS = 60.0
#: Above this many workers frontrun is not run: its ``total_timeout`` is not honoured
#: within an execution, and twostage_50 ran for 7 minutes without an answer.
FRONTRUN_MAX_WORKERS = 21
#: Wall-clock cap of one of our searches (one chooser, one seed, one program), seconds:
#: ``--cap``.  dfs on twostage_50 needs far longer (its abandoned runs grow about as N^3).
OURS_SECONDS = 180.0

QUICK = [
    "account",
    "lazy01",
    "deadlock01",
    "carter01",
    "circular_buffer",
    "stack",
    "twostage",
    "wronglock",
    "reorder_3",
    "reorder_5",
]


# --- frontrun's versions (asyncio tasks, a yield before each shared access) ----------------


class _State:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)
        self.bad = False


def _fr_account() -> tuple[Callable[[], Any], list[Any]]:
    def setup() -> _State:
        return _State(m=asyncio.Lock(), balance=1, dd=False, wd=False)

    async def deposit(s: _State) -> None:
        async with s.m:
            await asyncio.sleep(0)
            s.balance += 2
            s.dd = True

    async def withdraw(s: _State) -> None:
        async with s.m:
            await asyncio.sleep(0)
            s.balance -= 4
            s.wd = True

    async def check(s: _State) -> None:
        await asyncio.sleep(0)
        async with s.m:
            if s.dd and s.wd and s.balance != (1 - 2) - 4:
                s.bad = True

    return setup, [check, deposit, withdraw]


def _fr_lazy01() -> tuple[Callable[[], Any], list[Any]]:
    def setup() -> _State:
        return _State(m=asyncio.Lock(), data=0)

    def adder(k: int) -> Any:
        async def add(s: _State) -> None:
            await asyncio.sleep(0)
            async with s.m:
                s.data += k

        return add

    async def check(s: _State) -> None:
        await asyncio.sleep(0)
        async with s.m:
            if s.data >= 3:
                s.bad = True

    return setup, [check, adder(1), adder(2)]


def _fr_deadlock01() -> tuple[Callable[[], Any], list[Any]]:
    def setup() -> _State:
        return _State(a=asyncio.Lock(), b=asyncio.Lock())

    async def t1(s: _State) -> None:
        async with s.a:
            await asyncio.sleep(0)
            async with s.b:
                pass

    async def t2(s: _State) -> None:
        async with s.b:
            await asyncio.sleep(0)
            async with s.a:
                pass

    return setup, [t1, t2]


def _fr_stack() -> tuple[Callable[[], Any], list[Any]]:
    def setup() -> _State:
        return _State(m=asyncio.Lock(), items=[], flag=False)

    async def pusher(s: _State) -> None:
        for i in range(2):
            await asyncio.sleep(0)
            async with s.m:
                s.items.append(i)
                s.flag = True

    async def popper(s: _State) -> None:
        for _ in range(2):
            await asyncio.sleep(0)
            async with s.m:
                if s.flag:
                    if not s.items:
                        s.bad = True
                    else:
                        s.items.pop()

    return setup, [pusher, popper]


def _fr_twostage(writers: int) -> tuple[Callable[[], Any], list[Any]]:
    def setup() -> _State:
        return _State(m1=asyncio.Lock(), m2=asyncio.Lock(), d1=0, d2=0)

    async def writer(s: _State) -> None:
        await asyncio.sleep(0)
        async with s.m1:
            s.d1 = 1
        await asyncio.sleep(0)
        async with s.m2:
            s.d2 = s.d1 + 1

    async def reader(s: _State) -> None:
        await asyncio.sleep(0)
        async with s.m1:
            t1 = s.d1
        if t1 == 0:
            return
        await asyncio.sleep(0)
        async with s.m2:
            t2 = s.d2
        if t2 != t1 + 1:
            s.bad = True

    return setup, [*([writer] * writers), reader]


def _fr_wronglock() -> tuple[Callable[[], Any], list[Any]]:
    def setup() -> _State:
        return _State(right=asyncio.Lock(), wrong=asyncio.Lock(), value=0)

    async def func_a(s: _State) -> None:
        await asyncio.sleep(0)
        async with s.right:
            x = s.value
        await asyncio.sleep(0)
        async with s.right:
            now = s.value
            s.value = now + 1
            if now != x:
                s.bad = True

    async def func_b(s: _State) -> None:
        await asyncio.sleep(0)
        async with s.wrong:
            s.value += 1

    return setup, [func_a, func_b, func_b]


def _fr_reorder(n: int) -> tuple[Callable[[], Any], list[Any]]:
    def setup() -> _State:
        return _State(a=0, b=0)

    async def setter(s: _State) -> None:
        await asyncio.sleep(0)
        s.a = 1
        await asyncio.sleep(0)
        s.b = -1

    async def checker(s: _State) -> None:
        await asyncio.sleep(0)
        a = s.a
        await asyncio.sleep(0)
        b = s.b
        if (a, b) not in ((0, 0), (1, -1)):
            s.bad = True

    return setup, [*([setter] * (n - 1)), checker]


def _frontrun_programs() -> dict[str, tuple[Callable[[], Any], list[Any]]]:
    programs = {
        "account": _fr_account(),
        "lazy01": _fr_lazy01(),
        "deadlock01": _fr_deadlock01(),
        "stack": _fr_stack(),
        "twostage": _fr_twostage(1),
        "wronglock": _fr_wronglock(),
    }
    for n in (10, 20, 50, 100):
        programs[f"twostage_{n}"] = _fr_twostage(n)
    for n in (3, 5, 10, 20):
        programs[f"reorder_{n}"] = _fr_reorder(n)
    return programs


def frontrun_count(name: str, budget: int) -> str:
    if frontrun is None:
        return "not installed"
    programs = _frontrun_programs()
    if name not in programs:
        return "-"
    setup, workers = programs[name]
    if len(workers) > FRONTRUN_MAX_WORKERS:
        return "skipped"

    async def go() -> Any:
        return await frontrun.explore(
            setup=setup,
            workers=workers,
            invariant=lambda s: not s.bad,
            reproduce_on_failure=0,
            max_executions=budget,
            deadlock_timeout=0.05,
            timeout_per_run=2.0,
            total_timeout=FRONTRUN_SECONDS,
        )

    result = asyncio.run(go())
    if result.property_holds is False:
        return str(result.num_explored)
    if result.num_explored < budget:
        return f">{result.num_explored} (time)"
    return f">{budget}"


# --- ours --------------------------------------------------------------------------------


def _cell(
    name: str,
    failure_index: int | None,
    verdict: Verdict,
    budget: int,
    timed_out: int | None = None,
) -> str:
    """One cell; `timed_out` is the schedules checked when the cap stopped the search."""
    expected = SCTBENCH[name].expected_for("-")
    if failure_index is None:
        if timed_out is not None:
            return f">{timed_out} (time)"
        return f">{budget}" if expected != Verdict.CLEAN else "clean"
    if verdict != expected:
        return "WRONG"
    return str(failure_index)


def ours(name: str, chooser: str, budget: int, cap: float, seed: int = 0) -> str:
    r = explore(
        f"classic:{name}", chooser=chooser, schedules=budget, seed=seed, shrink=False, time=cap
    )
    # a failure of index 0 is a probe run's (pct): no schedule within the budget failed
    index = r.failure.index if r.failure and r.failure.index else None
    timed_out = r.schedules if r.out_of_time and index is None else None
    return _cell(name, index, r.verdict, budget, timed_out)


def dpor_noted(name: str, budget: int, cap: float) -> str:
    target = Target.resolve(f"classic:{name}", None, None)
    chooser = DporChooser(noted_only=True)
    ran = 0
    t0 = time.monotonic()
    while ran < budget and chooser.has_more:
        if time.monotonic() - t0 >= cap:
            return _cell(name, None, Verdict.CLEAN, budget, timed_out=ran)
        try:
            execution = target.run(chooser, max_steps=50_000)
        except PrunedExecution:
            continue
        ran += 1
        if execution.is_failure:
            return _cell(name, ran, execution.verdict, budget)
    return _cell(name, None, Verdict.CLEAN, budget)


def median_cell(cells: list[str], budget: int) -> str:
    if any(c == "WRONG" for c in cells):
        return "WRONG"
    values = [int(c) if c.isdigit() else budget + 1 for c in cells]
    m = statistics.median(values)
    if m <= budget:
        return f"{m:g}"
    timed = [int(c.split()[0][1:]) for c in cells if c.endswith("(time)")]
    return f">{min(timed)} (time)" if timed else f">{budget}"


def sctbench_table(names: list[str], budget: int, seeds: int, cap: float) -> list[str]:
    heads = ["program", "dpor", "dpor-noted", "dfs", "random", "pct", "frontrun", "met", "time"]
    lines = [heads]
    for name in names:
        t0 = time.perf_counter()
        row = [
            name,
            ours(name, "dpor", budget, cap),
            dpor_noted(name, budget, cap),
            ours(name, "dfs", budget, cap),
            median_cell([ours(name, "random", budget, cap, s) for s in range(seeds)], budget),
            median_cell([ours(name, "pct", budget, cap, s) for s in range(seeds)], budget),
            frontrun_count(name, budget),
        ]
        d, f = row[1], row[6]
        if f.isdigit():
            met = "yes" if d.isdigit() and int(d) <= int(f) else "NO"
        elif f.startswith(">"):
            met = "yes"
        else:
            met = "n/a"
        row += [met, f"{time.perf_counter() - t0:.1f}s"]
        lines.append(row)
        print("  ".join(row), flush=True)
    return lines


# --- memory per path -------------------------------------------------------------------------


def memory_row(kind: str, steps: int, schedules: int) -> list[str]:
    from bench_dpor_memory import search  # the same program and search loop

    tracemalloc.start()
    t0 = time.perf_counter()
    ran = search(kind, steps, schedules)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return [
        kind,
        str(steps),
        str(ran),
        f"{peak / 2**20:.1f}",
        f"{peak / steps / 1024:.2f}",
        f"{elapsed / max(ran, 1) * 1e3:.1f}",
    ]


def memory_table(sizes: list[int], schedules: int) -> list[str]:
    lines = [["chooser", "steps", "ran", "peak MiB", "peak KiB/step", "ms/schedule"]]
    for kind in ("dfs", "dpor"):
        for n in sizes:
            row = memory_row(kind, n, schedules)
            lines.append(row)
            print("  ".join(row), flush=True)
    return lines


def render(title: str, lines: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    out = [f"== {title}"]
    for r in lines:
        out.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--programs", nargs="*", default=None, help="names (default: all)")
    parser.add_argument(
        "--cap",
        type=float,
        default=OURS_SECONDS,
        help="wall-clock seconds for one of our searches (default: %(default)s)",
    )
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args()
    budget = args.budget or (200 if args.quick else 2_000)
    seeds = args.seeds or (3 if args.quick else 5)
    names = QUICK if args.quick else [n for n in SCTBENCH if not n.endswith("_fixed")]
    if args.programs:
        names = args.programs
    sizes = [100, 400] if args.quick else [100, 400, 1600]
    schedules = 10 if args.quick else 40
    version = "not installed"
    if frontrun is not None:
        import importlib.metadata

        version = importlib.metadata.version("frontrun")
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"{started}: python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {load()}; "
        f"budget {budget} schedules, seeds 0..{seeds - 1}, cap {args.cap:g} s per search "
        f"(frontrun {FRONTRUN_SECONDS:g} s), frontrun {version}",
        flush=True,
    )
    if args.cap <= 0:
        parser.error(f"--cap must be > 0 seconds, got {args.cap:g}")
    first = sctbench_table(names, budget, seeds, args.cap)
    second = memory_table(sizes, schedules)
    print()
    print(render(f"schedules to the first bug (budget {budget})", first))
    print()
    print(render(f"memory per path ({schedules} schedules each)", second))
    print(f"\nload {load()} at the end", flush=True)
    if args.json:
        import json

        tables = [
            {"title": title, "rows": [dict(zip(lines[0], r, strict=True)) for r in lines[1:]]}
            for title, lines in (
                ("schedules to the first bug", first),
                ("memory per path", second),
            )
        ]
        for row in tables[0]["rows"]:  # the target, for run_all.py: dpor <= frontrun's DPOR
            if row["met"] in ("yes", "NO"):
                d = row["dpor"]
                row.update(
                    name=row["program"],
                    value=int(d) if d.isdigit() else budget + 1,
                    unit=f"schedules (frontrun {row['frontrun']})",
                    target="<=frontrun",
                )
                row["met"] = row["met"] == "yes"
        Path(args.json).write_text(
            json.dumps({"script": "bench_dpor.py", "tables": tables}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
