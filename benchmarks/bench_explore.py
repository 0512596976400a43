"""Benchmark the explorer: throughput, schedules to the first bug, and frontrun side by side.

Run from the repository root::

    .venv/bin/python benchmarks/bench_explore.py           # full run, ~1 min on a 2-core VM
    .venv/bin/python benchmarks/bench_explore.py --quick   # smoke run, a few seconds

Four tables, all measured in one run:

1. ``explorer throughput``: ``explore("registration-race", protocol, chooser="random",
   schedules=B, seed=0, stop_on_first=False, shrink=False)`` with ``jobs=1`` and
   ``jobs=2``; schedules/s and steps/s over the schedules that ran (``ran`` column), wall
   time of the `explore` call.  ``odp2014`` has the bug; ``odp2014-ctx`` is clean on the
   same scenario, so it always runs the whole budget (a fixed-count jobs ratio even when
   the explorer stops early; a note is printed when it does).
2. ``sim step``: the sim's checkpoint step (two tasks each ``await checkpoint("x")`` n
   times under one ``sim.run``, a random choice at every step) and the explorer's step
   (the 20-step program below, run by ``explore``, all per-schedule costs included),
   each next to a bare ``coro.send`` round-robin step (the floor; see bench_sim.py).
   Then the fixed cost of a schedule: the intercept of explore's CPU time per schedule
   against its steps, through the 20-step program and the same program with 200 steps
   (paired per repeat), so that the program's own work per step is not counted as fixed;
   and, for comparison, the 20-step program's time beyond its steps priced at the sim
   checkpoint step.  With ``--steps-only``, these tables and the 20-step program's
   schedules per second alone.
3. ``schedules to the first bug``, for every (scenario, protocol) cell of
   `odp_async.scenarios.BUILTIN` whose expected verdict is not clean (``--quick``: three
   cells): random and pct, median over seeds 0..S-1 (``stop_on_first=True,
   shrink=False``, budget C each); dfs, the single deterministic count of iterative
   bounding from 0 to 4 preemptions (budget C), with the bound it was found at.  A run
   counts when it ends with a failure of the expected verdict; met = all of them did.
4. ``ours vs frontrun`` (PyPI ``frontrun``, the one Python explorer that drives asyncio
   tasks), on the same small programs: ours from `odp_async.scenarios.classic`
   (``lost-update``, ``lock-order``, ``two-preemptions``) and a 20-step program (two tasks
   of 10 checkpoints each, a declared footprint per step); frontrun's written as its
   README says (asyncio tasks, ``await asyncio.sleep(0)`` as the scheduling point,
   ``frontrun.explore(setup=, workers=, invariant=)``).

   - schedules/s: ours ``explore(..., chooser="random", schedules=N)`` on the 20-step
     program against ``frontrun.explore(strategy="random", max_attempts=N, seed=0)``;
     on lost-update, which fails early, ours runs the explorer's per-schedule path
     (``Target.run(RandomChooser(derive_seed(0, i)))`` for i < N, what ``explore`` does
     for each schedule) and frontrun gets ``invariant=lambda s: True`` so that neither
     stops; and ours ``chooser="dfs"`` (``max_preemptions=10``) against frontrun's DPOR
     (``stop_on_first=False, max_executions=M, preemption_bound=None``) on the 20-step
     program.  Time is the wall time of the call (frontrun's measured inside its event
     loop).
   - schedules to the first bug: our dfs (reduction on, iterative bounding to 4) against
     frontrun's DPOR (its defaults: ``preemption_bound=2``, ``stop_on_first=True``;
     ``reproduce_on_failure=0``), one deterministic count each; our random against its
     random, median over seeds 0..S-1.

   Differences the programs cannot hide: in asyncio, acquiring a free lock does not
   yield, so frontrun's ABBA program awaits ``asyncio.sleep(0)`` while holding its first
   lock (without it, its random strategy never sees the deadlock: no failure in 5 seeds
   x 500 schedules); our `Mutex` acquire is always a checkpoint.  Frontrun's random
   strategy detects a deadlock by wall-clock timeout, so for that program it runs with
   ``deadlock_timeout=0.02, timeout_per_run=0.1`` (its defaults are 5 s; seeds 0..19 give
   the same counts with ``timeout_per_run=1.0``).

Targets (from the issues): the sim step at most 2.5x the bare step; the fixed cost of a
schedule at most 8 us; ours random on the 20-step program at least 40,000 schedules/s on
one core (GC on) and at least 10x frontrun's random on the same program; our dfs no more
schedules to the first bug than frontrun's DPOR; every built-in cell found with its
expected verdict within the budget.

Statistics (see ``_common.py``): the garbage collector stays on, as users run.
Throughput figures are medians of ``--repeats`` samples of CPU time (``process_time``;
wall time beside), except the jobs table, on the wall clock (its workers are other
processes); the contenders interleaved within every repeat (order rotated by one per
repeat) after a warm-up pass; a ratio is the median of the per-repeat ratios (paired
samples), with their range, not the ratio of the medians shown.  Schedule counts are
deterministic (one run each).  The load average is printed before and after: the
machine is shared, and a busy core shows first in the jobs=2 ratio.  Targets are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import gc
import importlib.metadata
import os
import statistics
import sys
import types
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Report, clocked, now, since

from odp_async._runtime import checkpoint, sim, task_group
from odp_async._runtime.choosers import RandomChooser
from odp_async._runtime.footprint import Footprint
from odp_async.explore.config import derive_seed
from odp_async.explore.runner import ExploreResult, explore
from odp_async.explore.target import Target
from odp_async.scenarios import BUILTIN, Scenario, Verdict

try:
    import frontrun
except ImportError:  # the peer is optional: its rows are skipped, and the output says so
    frontrun = None

# A timed run: (CPU seconds, schedules, steps, wall seconds); steps is 0 where the
# contender cannot tell.
Sample = tuple[float, int, int, float]
# (op, bound, on): on "ratio" or "value"
Target_ = tuple[str, float, str]
Row = tuple[str, str | None, Target_ | None]

REG = "registration-race"
DFS_MAX_PREEMPTIONS = 4
STEPS_PER_TASK = 10
LONG_STEPS_PER_TASK = 100


def timed(fn: Callable[[], tuple[int, int]]) -> Sample:
    """One call with the collector on: (CPU s, schedules, steps, wall s)."""
    cpu, wall, (schedules, steps) = clocked(fn)
    return cpu, schedules, steps, wall


def ran(result: ExploreResult) -> tuple[int, int]:
    return result.schedules, result.steps


LONG_NAME = "explore step, 200-step program"


def fixed_cost(short: Sample, long_: Sample) -> float:
    """us per schedule: the intercept of the CPU time per schedule against the steps per
    schedule, through the two programs' points (the same program at two lengths)."""
    t_short, t_long = short[0] / short[1], long_[0] / long_[1]
    n_short, n_long = short[2] / short[1], long_[2] / long_[1]
    per_step = (t_long - t_short) / (n_long - n_short)
    return (t_short - n_short * per_step) * 1e6


# --- programs: ours ----------------------------------------------------------------------


async def twenty_steps(per_task: int = STEPS_PER_TASK) -> int:
    """Two tasks, 10 checkpoints each, each step a declared write of ``x`` (no bug)."""
    state = {"x": 0}

    async def worker() -> None:
        for _ in range(per_task):
            await checkpoint(Footprint.write("x"))
            state["x"] += 1

    async with task_group() as tg:
        tg.start_soon(worker, name="w1")
        tg.start_soon(worker, name="w2")
    assert state["x"] == 2 * per_task
    return state["x"]


_WRITE_X = Footprint.write("x")


async def twenty_steps_hoisted() -> int:
    """`twenty_steps` with its footprint built once, outside the loop."""
    state = {"x": 0}

    async def worker() -> None:
        for _ in range(STEPS_PER_TASK):
            await checkpoint(_WRITE_X)
            state["x"] += 1

    async with task_group() as tg:
        tg.start_soon(worker, name="w1")
        tg.start_soon(worker, name="w2")
    assert state["x"] == 2 * STEPS_PER_TASK
    return state["x"]


TWENTY = Scenario(
    "twenty-steps",
    "two tasks of 10 declared-footprint checkpoints each",
    twenty_steps,
    ("w1", "w2"),
    needs_world=False,
)
#: The same program with 10x the steps: with it, a schedule's cost splits into a part per
#: step and a fixed part (the intercept), each measured on the same program.
LONG = Scenario(
    "two-hundred-steps",
    "two tasks of 100 declared-footprint checkpoints each",
    functools.partial(twenty_steps, LONG_STEPS_PER_TASK),
    ("w1", "w2"),
    needs_world=False,
)
TWENTY_HOISTED = Scenario(
    "twenty-steps-hoisted",
    "twenty-steps with its footprint built once",
    twenty_steps_hoisted,
    ("w1", "w2"),
    needs_world=False,
)


# --- programs: frontrun's (asyncio, as its README writes them) ----------------------------


class FrCounter:
    def __init__(self) -> None:
        self.x = 0


async def fr_increment(state: FrCounter) -> None:
    await asyncio.sleep(0)
    value = state.x
    await asyncio.sleep(0)
    state.x = value + 1


async def fr_twenty(state: FrCounter) -> None:
    for _ in range(STEPS_PER_TASK):
        await asyncio.sleep(0)
        state.x += 1


class FrLocks:
    def __init__(self) -> None:
        # Built inside frontrun's setup(), i.e. after it patched asyncio.Lock.
        self.a = asyncio.Lock()
        self.b = asyncio.Lock()


async def fr_forward(state: FrLocks) -> None:
    async with state.a:
        await asyncio.sleep(0)  # asyncio's free-lock acquire does not yield
        async with state.b:
            pass


async def fr_backward(state: FrLocks) -> None:
    async with state.b:
        await asyncio.sleep(0)
        async with state.a:
            pass


class FrSeen:
    def __init__(self) -> None:
        self.x = 0
        self.seen: list[int] = []


async def fr_writer(state: FrSeen) -> None:
    await asyncio.sleep(0)
    state.x = 1
    await asyncio.sleep(0)
    state.x = 2


async def fr_reader(state: FrSeen) -> None:
    await asyncio.sleep(0)
    state.seen.append(state.x)
    await asyncio.sleep(0)
    state.seen.append(state.x)


# name -> (ours, frontrun setup, frontrun workers, invariant, extra frontrun random kwargs)
PROGRAMS: dict[str, tuple[str, Callable[[], Any], list[Any], Callable[[Any], bool], dict]] = {
    "lost-update": (
        "classic:lost-update",
        FrCounter,
        [fr_increment, fr_increment],
        lambda s: s.x == 2,
        {},
    ),
    "lock-order": (
        "classic:lock-order",
        FrLocks,
        [fr_forward, fr_backward],
        lambda s: True,
        {"deadlock_timeout": 0.02, "timeout_per_run": 0.1},
    ),
    "two-preemptions": (
        "classic:two-preemptions",
        FrSeen,
        [fr_writer, fr_reader],
        lambda s: s.seen != [1, 2],
        {},
    ),
}


def fr_explore(**kwargs: Any) -> tuple[float, float, Any]:
    """One `frontrun.explore` call in a fresh event loop: (CPU s, wall s inside the loop,
    result)."""

    async def go() -> tuple[float, float, Any]:
        start = now()
        result = await frontrun.explore(**kwargs)
        cpu, wall = since(start)
        return cpu, wall, result

    return asyncio.run(go())


def fr_timed(**kwargs: Any) -> Sample:
    gc.collect()
    cpu, wall, result = fr_explore(**kwargs)
    if result.property_holds is not True and kwargs.get("stop_on_first", True):
        raise RuntimeError(f"frontrun throughput run did not pass: {result.explanation}")
    return cpu, result.num_explored, 0, wall


# --- floors ------------------------------------------------------------------------------


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    yield


async def _bare_worker(n: int) -> None:
    for _ in range(n):
        await _yield_once()


def _bare_round_robin(n: int) -> tuple[int, int]:
    coros = [_bare_worker(n), _bare_worker(n)]
    steps = 0
    while coros:
        for c in list(coros):
            steps += 1
            try:
                c.send(None)
            except StopIteration:
                coros.remove(c)
    return 1, steps


async def _checkpoints(n: int) -> None:
    for _ in range(n):
        await checkpoint("x")


async def _two_checkpointers(n: int) -> None:
    async with task_group() as tg:
        tg.start_soon(_checkpoints, n)
        tg.start_soon(_checkpoints, n)


def _sim_run(n: int) -> tuple[int, int]:
    result = sim.run(_two_checkpointers, n, seed=1, max_steps=10 * n + 100)
    if not result.is_ok:
        raise RuntimeError(f"sim run did not finish: {result.outcome}")
    return 1, result.steps


# --- measuring ---------------------------------------------------------------------------


def measure(contenders: dict[str, Callable[[], Sample]], repeats: int) -> dict[str, list[Sample]]:
    """Samples per contender, interleaved across repeats (order rotated), after a warm-up."""
    names = list(contenders)
    for name in names:
        contenders[name]()
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(contenders[name]())
    return samples


def per_second(samples: list[Sample]) -> list[float]:
    return [s[1] / s[0] for s in samples]


def per_wall_second(samples: list[Sample]) -> list[float]:
    return [s[1] / s[3] for s in samples]


def steps_per_second(samples: list[Sample]) -> list[float]:
    return [s[2] / s[0] for s in samples]


def ns_per_step(samples: list[Sample]) -> list[float]:
    return [s[0] / s[2] * 1e9 for s in samples]


# --- printing ----------------------------------------------------------------------------


def is_met(x: float, op: str, bound: float) -> bool:
    return x <= bound if op == "<=" else x < bound if op == "<" else x >= bound


def render(title: str, header: list[str], lines: list[list[str]], left: set[int]) -> list[str]:
    """Columns aligned; the columns in `left` flush left, the others right."""
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = [f"== {title}"]
    for row in [header, *lines]:
        cells = [
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


def target_cells(target: Target_ | None, value: float, ratio: float | None) -> list[str]:
    if target is None:
        return ["-", "-"]
    op, bound, on = target
    x = value if on == "value" else ratio
    text = f"{op}{bound:g}"
    if x is None:
        return [text, "n/a"]
    return [text, "yes" if is_met(x, op, bound) else "NO"]


def rate_table(
    title: str,
    unit: str,
    rows: list[Row],
    values: dict[str, list[float]],
    *,
    extra: dict[str, list[str]] | None = None,
    extra_heads: list[str] | None = None,
    decimals: int = 0,
    report: Report | None = None,
) -> list[str]:
    """One line per row: median value, peer's median, paired-median ratio (with its range
    across repeats), target, met.  A row without a peer shows the range of its values."""
    extra_heads = extra_heads or []
    header = ["name", unit, *extra_heads, "peer", f"peer {unit}", "ratio", "range"]
    header += ["target", "met"]
    lines = []
    data: list[dict[str, Any]] = []
    for name, peer, target in rows:
        ours = statistics.median(values[name])
        cells = [name, f"{ours:.{decimals}f}", *(extra or {}).get(name, [])]
        row: dict[str, Any] = {"name": name, "value": ours, "unit": unit}
        ratio: float | None = None
        if peer is None and len(values[name]) > 1:  # no ratio: the values' spread
            low, high = min(values[name]), max(values[name])
            cells += ["-", "-", "-", f"{low:.{decimals}f}-{high:.{decimals}f}"]
            row.update(value_min=low, value_max=high)
        elif peer is None or peer not in values:
            cells += ["-" if peer is None else f"{peer} (not run)", "-", "-", "-"]
        else:
            ratios = [a / b for a, b in zip(values[name], values[peer], strict=True)]
            ratio = statistics.median(ratios)
            peer_median = statistics.median(values[peer])
            cells += [peer, f"{peer_median:.{decimals}f}", f"{ratio:.2f}"]
            cells.append(f"{min(ratios):.2f}-{max(ratios):.2f}")
            row.update(peer=peer, ratio=ratio, ratio_min=min(ratios), ratio_max=max(ratios))
        met = target_cells(target, ours, ratio)
        cells += met
        if target is not None:
            row.update(target=met[0], met=met[1] == "yes")
        lines.append(cells)
        data.append(row)
    if report is not None:
        report.add(title, data)
    left = {0, 1 + len(extra_heads) + 1}
    return render(title, header, lines, left)


def fmt_count(x: float, cap: int) -> str:
    if x > cap:
        return f"> {cap}"
    return f"{x:.0f}" if x == int(x) else f"{x:.1f}"


# --- 1. and 2.: throughput and the step cost ---------------------------------------------


def explore_sample(scenario: str | Scenario, protocol: str | None, **fields: Any) -> Sample:
    """One timed `explore` call: (seconds, schedules run, steps run)."""
    return timed(lambda: ran(explore(scenario, protocol, shrink=False, **fields)))


def throughput_tables(
    budget: int, sim_n: int, twenty_n: int, repeats: int, report: Report, *, jobs: bool = True
) -> list[str]:
    contenders: dict[str, Callable[[], Sample]] = {
        f"{REG}/{protocol} jobs={n}": functools.partial(
            explore_sample,
            REG,
            protocol,
            chooser="random",
            schedules=budget,
            seed=0,
            stop_on_first=False,
            jobs=n,
        )
        for protocol in ("odp2014", "odp2014-ctx")
        for n in (1, 2)
        if jobs
    }
    contenders["bare send step"] = lambda: timed(lambda: _bare_round_robin(sim_n))
    contenders["sim checkpoint step"] = lambda: timed(lambda: _sim_run(sim_n))
    contenders["explore step, 20-step program"] = functools.partial(
        explore_sample, TWENTY, None, chooser="random", schedules=twenty_n, stop_on_first=False
    )
    contenders[LONG_NAME] = functools.partial(
        explore_sample,
        LONG,
        None,
        chooser="random",
        schedules=max(1, twenty_n // 5),
        stop_on_first=False,
    )
    samples = measure(contenders, repeats)

    # Wall clock here: with jobs=2 the schedules run in worker processes.
    rates = {name: per_wall_second(s) for name, s in samples.items()}
    extra = {
        name: [
            f"{statistics.median(s[2] / s[3] for s in samples[name]):.0f}",
            f"{statistics.median(s[1] for s in samples[name]):.0f}",
        ]
        for name in samples
        if name.startswith(REG)
    }
    rows: list[Row] = []
    for protocol in ("odp2014", "odp2014-ctx"):
        one, two = f"{REG}/{protocol} jobs=1", f"{REG}/{protocol} jobs=2"
        rows += [(one, None, None), (two, one, None)]
    out = (
        []
        if not jobs
        else rate_table(
            f"explorer throughput: {REG}, chooser=random, budget {budget} schedules, "
            f"stop_on_first=False, {repeats} repeats; wall clock (jobs=2 runs in workers)",
            "sched/s",
            rows,
            rates,
            extra=extra,
            extra_heads=["steps/s", "ran"],
            report=report,
        )
    )
    short = sorted({s[1] for name in extra for s in samples[name] if s[1] < budget})
    if short:
        out.append(
            f"note: explore() ran {', '.join(map(str, short))} of {budget} schedules in some "
            "of these runs although stop_on_first=False: the runner returns at the first "
            "failing schedule whatever stop_on_first says (per chunk with jobs=2), so those "
            "rates are over the schedules that ran; odp2014-ctx (clean) runs the budget"
        )

    step_rows: list[Row] = [
        ("sim checkpoint step", "bare send step", ("<=", 2.5, "ratio")),
        ("explore step, 20-step program", "bare send step", None),
        ("bare send step", None, None),
    ]
    ns = {name: ns_per_step(samples[name]) for name, _, _ in step_rows}
    per_schedule = statistics.median(s[2] / s[1] for s in samples["explore step, 20-step program"])
    walls = {name: [s[3] / s[2] * 1e9 for s in samples[name]] for name, _, _ in step_rows}
    out.append("")
    out += rate_table(
        f"sim step: two tasks x {sim_n} checkpoints; explore: {twenty_n} schedules of "
        f"{per_schedule:.0f} steps; {repeats} repeats; CPU clock",
        "ns/step",
        step_rows,
        ns,
        extra={name: [f"{statistics.median(walls[name]):.0f}"] for name in walls},
        extra_heads=["wall"],
        report=report,
    )
    twenty = "explore step, 20-step program"
    if not jobs:  # --steps-only: the 20-step program's rate, from these same samples
        out.append("")
        out += rate_table(
            f"schedules per second: the 20-step program, {twenty_n} schedules, random, "
            f"one process; {repeats} repeats; CPU clock (wall beside; range: of the "
            "repeats' values)",
            "sched/s",
            [(twenty, None, (">=", 40000.0, "value"))],
            {twenty: per_second(samples[twenty])},
            extra={twenty: [f"{statistics.median(per_wall_second(samples[twenty])):.0f}"]},
            extra_heads=["wall"],
            report=report,
        )
    # The fixed cost of a schedule: the intercept of its cost against its steps, from the
    # same program at two lengths (paired per repeat); the program's own work per step
    # (its footprint, its counter) lands in the per-step slope, not in the fixed cost.
    fixed = [
        fixed_cost(short, long_)
        for short, long_ in zip(samples[twenty], samples[LONG_NAME], strict=True)
    ]
    # The previous measure: explore's CPU time per schedule minus its steps priced at the
    # sim checkpoint step of the same repeat (the program's per-step work counts as fixed).
    beyond = [
        (e[0] / e[1] - (e[2] / e[1]) * (c[0] / c[2])) * 1e6
        for e, c in zip(samples[twenty], samples["sim checkpoint step"], strict=True)
    ]
    per_step = [
        (b[0] / b[1] - a[0] / a[1]) / (b[2] / b[1] - a[2] / a[1]) * 1e9
        for a, b in zip(samples[twenty], samples[LONG_NAME], strict=True)
    ]
    out.append("")
    out += rate_table(
        "fixed cost per schedule: the intercept of explore's CPU time per schedule against "
        f"its steps, the 20-step program vs the same with {2 * LONG_STEPS_PER_TASK} steps "
        f"(paired per repeat; its slope: {statistics.median(per_step):.0f} ns per step); "
        "below it, the 20-step program's time beyond its steps priced at the sim "
        "checkpoint step (the program's per-step work counted as fixed); range: of the "
        "repeats' values",
        "us/schedule",
        [
            ("fixed cost per schedule", None, ("<=", 8.0, "value")),
            ("beyond the sim checkpoint steps", None, None),
        ],
        {"fixed cost per schedule": fixed, "beyond the sim checkpoint steps": beyond},
        decimals=1,
        report=report,
    )
    return out


# --- 3. schedules to the first bug on the built-ins --------------------------------------


def first_bug(result: ExploreResult, expected: Verdict) -> int | None:
    """The 1-based schedule of the first failure, if it has the expected verdict (None
    for one of index 0: a probe run's, no schedule within the budget failed)."""
    if result.failure is None or result.failure.index == 0 or result.verdict is not expected:
        return None
    return result.failure.index


def first_bug_table(
    cells: list[tuple[str, str, Verdict]], seeds: int, cap: int, report: Report | None = None
) -> list[str]:
    lines = []
    data: list[dict[str, Any]] = []
    for scenario, protocol, expected in cells:
        counts: dict[str, list[int | None]] = {}
        for chooser in ("random", "pct"):
            counts[chooser] = [
                first_bug(
                    explore(
                        scenario,
                        protocol,
                        chooser=chooser,
                        seed=seed,
                        schedules=cap,
                        stop_on_first=True,
                        shrink=False,
                    ),
                    expected,
                )
                for seed in range(seeds)
            ]
        dfs = explore(
            scenario,
            protocol,
            chooser="dfs",
            max_preemptions=DFS_MAX_PREEMPTIONS,
            schedules=cap,
            stop_on_first=True,
            shrink=False,
        )
        dfs_count = first_bug(dfs, expected)
        runs = [*counts["random"], *counts["pct"], dfs_count]
        found = sum(c is not None for c in runs)
        medians = [
            fmt_count(statistics.median(cap + 1 if c is None else c for c in counts[ch]), cap)
            for ch in ("random", "pct")
        ]
        lines.append(
            [
                f"{scenario}/{protocol}",
                *medians,
                f"> {cap}" if dfs_count is None else str(dfs_count),
                "-" if dfs_count is None else str(dfs.bound),
                f"{found}/{len(runs)}",
                str(expected),
                "= expected",
                "yes" if found == len(runs) else "NO",
            ]
        )
        data.append(
            {
                "name": f"{scenario}/{protocol}",
                "value": found,
                "unit": f"runs of {len(runs)} finding it",
                "target": f"={len(runs)}",
                "met": found == len(runs),
            }
        )
    header = [
        "cell",
        "random",
        "pct",
        "dfs",
        "bound",
        "found",
        "expected",
        "target",
        "met",
    ]
    title = (
        f"schedules to the first bug: random and pct median over seeds 0..{seeds - 1}, "
        f"dfs iterative bounding 0..{DFS_MAX_PREEMPTIONS} preemptions; budget {cap} each"
    )
    if report is not None:
        report.add(title, data)
    return render(title, header, lines, {0, 6})


# --- 4. ours vs frontrun -----------------------------------------------------------------


def lost_update_schedules(n: int) -> tuple[int, int]:
    """The explorer's per-schedule path for n schedules of classic lost-update, no stop."""
    target = Target.resolve("classic:lost-update")
    steps = 0
    for i in range(n):
        steps += target.run(RandomChooser(derive_seed(0, i)), max_steps=50_000).sim.steps
    return n, steps


def versus_throughput(n: int, m: int, repeats: int, report: Report) -> list[str]:
    random_n = {"chooser": "random", "schedules": n, "stop_on_first": False}
    contenders: dict[str, Callable[[], Sample]] = {
        "ours random 20-step": functools.partial(explore_sample, TWENTY, None, **random_n),
        "ours random 20-step, hoisted footprint": functools.partial(
            explore_sample, TWENTY_HOISTED, None, **random_n
        ),
        "ours random lost-update": lambda: timed(lambda: lost_update_schedules(n)),
        "ours dfs 20-step": functools.partial(
            explore_sample,
            TWENTY,
            None,
            chooser="dfs",
            max_preemptions=10,
            schedules=m,
            stop_on_first=False,
        ),
    }
    if frontrun is not None:
        contenders["frontrun random 20-step"] = lambda: fr_timed(
            setup=FrCounter,
            workers=[fr_twenty, fr_twenty],
            invariant=lambda s: s.x == 2 * STEPS_PER_TASK,
            strategy="random",
            max_attempts=n,
            seed=0,
        )
        contenders["frontrun random lost-update"] = lambda: fr_timed(
            setup=FrCounter,
            workers=[fr_increment, fr_increment],
            invariant=lambda s: True,
            strategy="random",
            max_attempts=n,
            seed=0,
        )
        contenders["frontrun dpor 20-step"] = lambda: fr_timed(
            setup=FrCounter,
            workers=[fr_twenty, fr_twenty],
            invariant=lambda s: s.x == 2 * STEPS_PER_TASK,
            stop_on_first=False,
            max_executions=m,
            preemption_bound=None,
            reproduce_on_failure=0,
        )
    samples = measure(contenders, repeats)
    for name, ss in samples.items():
        want = m if "dfs" in name or "dpor" in name else n
        if any(s[1] != want for s in ss):
            print(f"note: {name} explored {[s[1] for s in ss]} schedules, not {want}")
    rates = {name: per_second(s) for name, s in samples.items()}
    rows: list[Row] = [
        ("ours random 20-step", None, (">=", 40000.0, "value")),
        ("ours random 20-step vs frontrun", "frontrun random 20-step", (">=", 10.0, "ratio")),
        ("ours random 20-step, hoisted footprint", "ours random 20-step", None),
        ("ours random lost-update", "frontrun random lost-update", None),
        ("ours dfs 20-step", "frontrun dpor 20-step", None),
    ]
    rates["ours random 20-step vs frontrun"] = rates["ours random 20-step"]
    if frontrun is not None:
        rows += [(name, None, None) for name in contenders if name.startswith("frontrun")]
    return rate_table(
        f"schedules per second, ours vs {peer_label()}: random {n} schedules, dfs/dpor {m}; "
        f"one process; {repeats} repeats; CPU clock (wall beside)",
        "sched/s",
        rows,
        rates,
        extra={
            name: [f"{statistics.median(per_wall_second(samples[name])):.0f}"] for name in samples
        }
        | {
            "ours random 20-step vs frontrun": [
                f"{statistics.median(per_wall_second(samples['ours random 20-step'])):.0f}"
            ]
        },
        extra_heads=["wall"],
        report=report,
    )


def versus_first_bug(seeds: int, cap: int, report: Report | None = None) -> list[str]:
    lines = []
    data: list[dict[str, Any]] = []
    for name, (ours, setup, workers, invariant, fr_random) in PROGRAMS.items():
        dfs = explore(
            ours,
            None,
            chooser="dfs",
            max_preemptions=DFS_MAX_PREEMPTIONS,
            schedules=cap,
            shrink=False,
        )
        plain = explore(
            ours,
            None,
            chooser="dfs",
            max_preemptions=DFS_MAX_PREEMPTIONS,
            schedules=cap,
            shrink=False,
            reduction=False,
        )
        randoms = [
            explore(ours, None, chooser="random", seed=seed, schedules=cap, shrink=False)
            for seed in range(seeds)
        ]
        ours_dfs = dfs.failure.index if dfs.failure else cap + 1
        ours_plain = plain.failure.index if plain.failure else cap + 1
        ours_random = statistics.median(r.failure.index if r.failure else cap + 1 for r in randoms)
        fr_dfs: float | None = None
        fr_rand: float | None = None
        if frontrun is not None:
            _, _, result = fr_explore(
                setup=setup, workers=workers, invariant=invariant, reproduce_on_failure=0
            )
            fr_dfs = result.num_explored if result.property_holds is False else cap + 1
            counts = []
            for seed in range(seeds):
                _, _, result = fr_explore(
                    setup=setup,
                    workers=workers,
                    invariant=invariant,
                    strategy="random",
                    seed=seed,
                    max_attempts=cap,
                    **fr_random,
                )
                counts.append(result.num_explored if result.property_holds is False else cap + 1)
            fr_rand = statistics.median(counts)
        for label, value, peer, peer_value, target in (
            (f"{name} dfs", ours_dfs, "frontrun dpor", fr_dfs, ("<=", 1.0, "ratio")),
            (f"{name} dfs, no reduction", ours_plain, None, None, None),
            (f"{name} random", ours_random, "frontrun random", fr_rand, None),
        ):
            ratio = None if peer_value is None else value / peer_value
            cells = [label, fmt_count(value, cap)]
            if peer is None:
                cells += ["-", "-", "-"]
            elif peer_value is None:
                cells += [f"{peer} (not run)", "-", "-"]
            else:
                cells += [peer, fmt_count(peer_value, cap), f"{ratio:.2f}"]
            met = target_cells(target, value, ratio)
            cells += met
            lines.append(cells)
            if target is not None and ratio is not None:  # measured: met or not
                data.append(
                    {
                        "name": label,
                        "value": value,
                        "unit": "schedules",
                        "peer": peer,
                        "ratio": ratio,
                        "target": met[0],
                        "met": met[1] == "yes",
                    }
                )
    header = ["name", "scheds", "peer", "peer scheds", "ratio", "target", "met"]
    title = (
        f"schedules to the first bug, ours vs {peer_label()}: dfs (reduction, bounding "
        f"0..{DFS_MAX_PREEMPTIONS}) vs its DPOR (preemption_bound=2); random: median over "
        f"seeds 0..{seeds - 1}; budget {cap}"
    )
    if report is not None:
        report.add(title, data)
    return render(title, header, lines, {0, 2})


def peer_label() -> str:
    if frontrun is None:
        return "frontrun (not installed)"
    return f"frontrun {importlib.metadata.version('frontrun')}"


# --- main --------------------------------------------------------------------------------


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def builtin_cells(quick: bool) -> list[tuple[str, str, Verdict]]:
    cells = [
        (scenario.name, protocol, verdict)
        for scenario in BUILTIN.values()
        for protocol, verdict in scenario.expected.items()
        if verdict is not Verdict.CLEAN
    ]
    if quick:
        keep = {(REG, "naive"), (REG, "odp2014"), ("fixed-pool-deadlock", "hmm-pool")}
        cells = [c for c in cells if (c[0], c[1]) in keep]
    return cells


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds")
    parser.add_argument("--repeats", type=int, default=None, help="samples per contender")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    parser.add_argument(
        "--steps-only",
        action="store_true",
        help="only the step, rate and fixed-cost tables of the 20-step program (minutes)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        budget, sim_n, twenty_n, n, m, repeats, seeds, cap = 200, 2_000, 300, 200, 30, 1, 3, 2_000
    else:
        budget, sim_n, twenty_n = 2_000, 20_000, 3_000
        n, m, repeats, seeds, cap = 1_000, 200, 5, 20, 20_000
    if args.repeats is not None:
        repeats = args.repeats
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"{started}: python {sys.version.split()[0]}, {peer_label()}, {os.cpu_count()} cpus, "
        f"{load()}; GC on; medians; ratio = median of per-repeat name/peer",
        flush=True,
    )
    if frontrun is None:
        print(
            "frontrun is not installed (.venv/bin/pip install 'frontrun==0.7.0'): its rows "
            "and every ratio against it are left out",
            flush=True,
        )
    report = Report("bench_explore.py")
    if args.steps_only:
        tables = throughput_tables(budget, sim_n, twenty_n, repeats, report, jobs=False)
        print("\n".join(tables), flush=True)
        print(f"\n{load()} at the end", flush=True)
        report.write(args.json)
        return 0
    print("\n".join(throughput_tables(budget, sim_n, twenty_n, repeats, report)), flush=True)
    print(flush=True)
    print("\n".join(first_bug_table(builtin_cells(args.quick), seeds, cap, report)), flush=True)
    print(flush=True)
    print("\n".join(versus_throughput(n, m, repeats, report)), flush=True)
    print(flush=True)
    print("\n".join(versus_first_bug(seeds, cap, report)), flush=True)
    print(f"\n{load()} at the end", flush=True)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
