"""What every benchmark script shares: the clocks, the paired-ratio table, the JSON rows.

Timing as users run: the garbage collector stays on inside timed regions (a collection
before each region starts every sample from the same state).  Every sample records two
clocks: CPU time of this process (`time.process_time`: what the code costs, whatever
else the shared machine runs) and wall time (`time.perf_counter`: what a user waits).
Figures are medians over repeats; a ratio is the median of the per-repeat ratios against
a peer measured in the same run (paired samples), printed with its range (min-max)
across repeats.  The CPU clock decides ratios and targets.

``--json PATH`` (parsed by each script) writes the rows printed, so `run_all.py` can
collect one results file.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

# (contender, peer or None, target as (op, bound) or None)
Row = tuple[str, str | None, tuple[str, float] | None]


def clocked(fn: Callable[[], R]) -> tuple[float, float, R]:
    """Run `fn` once with the collector on: (CPU seconds, wall seconds, its result)."""
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    result = fn()
    w1, c1 = time.perf_counter(), time.process_time()
    return c1 - c0, w1 - w0, result


def now() -> tuple[float, float]:
    """Both clocks, for regions timed inside an event loop: (CPU, wall) seconds."""
    return time.process_time(), time.perf_counter()


def since(start: tuple[float, float]) -> tuple[float, float]:
    c1, w1 = now()
    return c1 - start[0], w1 - start[1]


def is_met(ratio: float, target: tuple[str, float]) -> bool:
    op, bound = target
    return ratio <= bound if op == "<=" else ratio < bound if op == "<" else ratio >= bound


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


class Report:
    """The rows a script printed, as data: written by ``--json``."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.tables: list[dict[str, Any]] = []

    def add(self, title: str, rows: list[dict[str, Any]]) -> None:
        self.tables.append({"title": title, "rows": rows})

    def write(self, path: str | None) -> None:
        if path:
            Path(path).write_text(
                json.dumps({"script": self.script, "tables": self.tables}, indent=1) + "\n"
            )


def table(
    title: str,
    rows: list[Row],
    cpu: dict[str, list[float]],
    wall: dict[str, list[float]],
    *,
    unit: str = "ns/op",
    bad: dict[str, int] | None = None,
    report: Report | None = None,
) -> list[str]:
    """One line per row: CPU and wall medians, the paired CPU ratio against the peer with
    its range across repeats, the target and whether it is met."""
    w = max(len(r[0]) for r in rows) + 2
    pw = max(len(r[1] or "-") for r in rows) + 2
    head = f"{'name':<{w}}{unit:>10}{'wall':>10}  {'peer':<{pw}}{'peer ' + unit:>12}"
    head += f"{'ratio':>8}{'range':>13}{'target':>9}{'met':>5}"
    if bad is not None:
        head += f"{'bad':>5}"
    lines = [f"== {title}", head]
    data: list[dict[str, Any]] = []
    for name, peer, target in rows:
        ours = statistics.median(cpu[name])
        ours_wall = statistics.median(wall[name])
        row: dict[str, Any] = {"name": name, "cpu": ours, "wall": ours_wall, "unit": unit}
        line = f"{name:<{w}}{ours:>10.0f}{ours_wall:>10.0f}  "
        ratio: float | None = None
        if peer is None:
            line += f"{'-':<{pw}}{'-':>12}{'-':>8}{'-':>13}"
        else:
            ratios = [a / b for a, b in zip(cpu[name], cpu[peer], strict=True)]
            ratio = statistics.median(ratios)
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            line += f"{peer:<{pw}}{statistics.median(cpu[peer]):>12.0f}{ratio:>8.3f}{spread:>13}"
            row.update(peer=peer, ratio=ratio, ratio_min=min(ratios), ratio_max=max(ratios))
        if target is None or ratio is None:
            line += f"{'-':>9}{'-':>5}"
        else:
            met = is_met(ratio, target)
            line += f"{target[0] + format(target[1], 'g'):>9}{'yes' if met else 'NO':>5}"
            row.update(target=f"{target[0]}{target[1]:g}", met=met)
        if bad is not None:
            line += f"{bad[name]:>5}"
            row["bad"] = bad[name]
        lines.append(line)
        data.append(row)
    if report is not None:
        report.add(title, data)
    return lines
