"""Benchmark the portfolio: schedules to the first bug, per member and for the default.

Run from the repository root::

    .venv/bin/python benchmarks/bench_portfolio.py                # full run
    .venv/bin/python benchmarks/bench_portfolio.py --quick        # a few cells, 2 seeds

For every built-in cell expected to fail (found, deadlock, starvation) and every
SCTBench-style program with a bug (``classic:<name>``), one row: schedules to the first
failure of each member run alone (``random``; ``pct`` at depths 1 to 5, all with
``--member-budget`` schedules, median and worst over seeds 0..S-1; ``dpor`` and
``sweep``, one deterministic count each) and of the default ``portfolio``
(``--budget``, median, worst, and the member that found it in the worst seed).
``>C``: a miss within the budget.  The portfolio target: a find in every seed within
10,000 schedules.  Printed, not asserted (``tests/explore/test_portfolio.py`` asserts
it on the cells that matter).

Every contender runs the same rows and seeds; each cell is ``median/max`` of schedules
to the first failure and the contender's wall time for the row (``12/40 1.3s``).  A
failure of another verdict than the row expects is a wrong verdict: the cell says
``WRONG`` and the run ends with the count (the target: zero).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report

from odp_async.explore.runner import explore
from odp_async.explore.sweep import SweepChooser
from odp_async.explore.target import Target
from odp_async.odp.protocols import PROTOCOLS
from odp_async.scenarios import BUILTIN, Verdict
from odp_async.scenarios.sctbench import SCTBENCH


def cells() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for name, scenario in BUILTIN.items():
        for protocol in PROTOCOLS:
            if scenario.expected_for(protocol) is not Verdict.CLEAN:
                out.append((name, protocol))
    for name in SCTBENCH:
        if "fixed" not in name:
            out.append((f"classic:{name}", None))
    return out


#: Failures whose verdict is not the row's expected one (the target: none).
WRONG: list[str] = []


def _expected(scenario: str, protocol: str | None) -> Verdict:
    if protocol is None:
        return SCTBENCH[scenario.removeprefix("classic:")].expected_for("-")
    return BUILTIN[scenario].expected_for(protocol)


def first(scenario: str, protocol: str | None, budget: int, **fields: object) -> int | None:
    result = explore(
        scenario, protocol, schedules=budget, shrink=False, stop_on_first=True, **fields
    )
    if result.failure is None or result.failure.index == 0:
        return None  # (0: a probe run failed, no schedule within the budget did)
    if result.verdict is not _expected(scenario, protocol):
        WRONG.append(f"{scenario}/{protocol} {fields}: {result.verdict}")
        return -1
    return result.failure.index


def sweep_first(scenario: str, protocol: str | None, budget: int) -> str:
    """The sweep member alone: its schedules in order (the same for every seed), the
    number of the first failing one, and the row's wall time."""
    t0 = time.perf_counter()
    target = Target.resolve(scenario, protocol)
    base = SweepChooser(None)
    target.run(base, max_steps=50_000)
    for j in range(min(budget, base.total)):
        execution = target.run(SweepChooser(j), max_steps=50_000)
        if execution.is_failure:
            if execution.verdict is not _expected(scenario, protocol):
                WRONG.append(f"{scenario}/{protocol} sweep {j}: {execution.verdict}")
                return f"WRONG {time.perf_counter() - t0:.1f}s"
            return f"{j + 1} {time.perf_counter() - t0:.1f}s"
    ran = min(budget, base.total)
    return f">{ran} (of {base.total}) {time.perf_counter() - t0:.1f}s"


def show(values: list[int | None], budget: int, seconds: float | None = None) -> str:
    took = "" if seconds is None else f" {seconds:.1f}s"
    if any(v == -1 for v in values):
        return "WRONG" + took
    if any(v is None for v in values):
        found = [v for v in values if v is not None]
        return f">{budget} ({len(found)}/{len(values)})" + took
    ints = [v for v in values if v is not None]
    return f"{statistics.median(ints):g}/{max(ints)}" + took


def contender(
    scenario: str, protocol: str | None, budget: int, seeds: range, **fields: object
) -> str:
    """One contender's cell: ``median/max`` over `seeds` and its wall time."""
    t0 = time.perf_counter()
    got = [first(scenario, protocol, budget, seed=s, **fields) for s in seeds]
    return show(got, budget, time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--member-budget", type=int, default=2_000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-members", action="store_true")
    parser.add_argument("--only", choices=["builtin", "sctbench"], help="one family of rows")
    parser.add_argument("--json", metavar="PATH", help="write the rows here (run_all.py)")
    args = parser.parse_args()
    report = Report(Path(__file__).name)
    rows_out: list[dict[str, str]] = []
    rows = cells()
    if args.only == "builtin":
        rows = [r for r in rows if r[1] is not None]
    elif args.only == "sctbench":
        rows = [r for r in rows if r[1] is None]
    seeds = range(args.seeds)
    if args.quick:
        rows = [
            ("ctx-dereg-during-end", "odp2014-ctx"),
            ("registration-race", "odp2014"),
            ("classic:twostage_10", None),
        ]
        seeds = range(2)
        args.member_budget, args.budget = 200, 2000
    mb = args.member_budget
    heads = ["cell"]
    if not args.no_members:
        heads += ["random", *(f"pct-d{d}" for d in range(1, 6)), "dpor", "sweep"]
    heads += ["portfolio (median/worst)", "worst found by", "s"]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for scenario, protocol in rows:
        start = time.perf_counter()
        label = scenario + (f" / {protocol}" if protocol else "")
        line = [label]
        if not args.no_members:
            line.append(contender(scenario, protocol, mb, seeds, chooser="random"))
            for d in range(1, 6):
                line.append(contender(scenario, protocol, mb, seeds, chooser="pct", depth=d))
            line.append(contender(scenario, protocol, mb, range(1), chooser="dpor"))
            line.append(sweep_first(scenario, protocol, mb))
        found: list[int | None] = []
        worst, by = -1, "-"
        t0 = time.perf_counter()
        for s in seeds:
            result = explore(scenario, protocol, schedules=args.budget, seed=s, shrink=False)
            # (index 0: a probe run failed, no schedule within the budget did)
            index = result.failure.index if result.failure is not None else None
            index = index or None
            if index is not None and result.verdict is not _expected(scenario, protocol):
                WRONG.append(f"{label} portfolio seed {s}: {result.verdict}")
                index = -1
            found.append(index)
            if index is not None and index > worst:
                worst, by = index, str(result.found_by)
        line += [
            show(found, args.budget, time.perf_counter() - t0),
            by,
            f"{time.perf_counter() - start:.1f}",
        ]
        print("| " + " | ".join(line) + " |", flush=True)
        rows_out.append(dict(zip(heads, line, strict=True)))
    print(f"wrong verdicts: {len(WRONG)}" + "".join(f"\n  {w}" for w in WRONG))
    report.add("schedules to the first failure", rows_out)
    report.write(args.json)


if __name__ == "__main__":
    main()
