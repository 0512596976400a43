"""Benchmark odp_async.intervals.IntervalTree against the PyPI ``intervaltree`` package.

Run from the repository root::

    .venv/bin/python benchmarks/bench_intervals.py           # N = 1e4 and 1e5
    .venv/bin/python benchmarks/bench_intervals.py --quick   # smoke run, seconds

Workload (one fixed seed per N, the same data for both trees):

- N intervals with uniform random starts in [0, SPACE) and lengths uniform in
  [0, 4 * SPACE / N), so each point is covered by about 2 intervals;
- Q small query windows, width uniform in [0, 2 * SPACE / N): about 3 results each;
- inserts/s: build the tree from empty;
- queries/s: run every window and consume the results (our iterator into a list, the
  peer's ``overlap()`` set);
- spanning queries/s: the same windows after one extra interval covering all of
  [0, SPACE] is inserted (it overlaps every query);
- removes/s: remove the N intervals in random order;
- bytes/interval: tracemalloc's growth while building, divided by N (one run each).

Each timed figure is the median of ``--repeats`` runs (the peer may get fewer at the
largest N, see ``--peer-repeats``; the table says how many it got).  The garbage
collector stays on, as users run (CPU clock, see ``_common.py``).  Result counts of the two
trees are compared, so a wrong answer aborts the run instead of winning it.

Intervals map as: ours closed ``[start, last]`` == peer half-open ``[start, last + 1)``.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Report, clocked, load
from intervaltree import IntervalTree as PeerTree  # type: ignore[import-untyped]

from odp_async.intervals import IntervalTree

SPACE = 1 << 40
SEED = 20240601

Intervals = list[tuple[int, int]]


def make_workload(n: int, n_queries: int) -> tuple[Intervals, Intervals, list[int]]:
    """Intervals, query windows and a removal order, all from a seed fixed per n."""
    rng = random.Random(SEED + n)
    max_len = 4 * SPACE // n
    ivs = []
    for _ in range(n):
        start = rng.randrange(SPACE)
        ivs.append((start, start + rng.randrange(max_len)))
    max_width = 2 * SPACE // n
    queries = []
    for _ in range(n_queries):
        a = rng.randrange(SPACE)
        queries.append((a, a + rng.randrange(max_width)))
    order = list(range(n))
    rng.shuffle(order)
    return ivs, queries, order


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(CPU seconds, result) of one call, the collector on (as users run)."""
    cpu, _, result = clocked(fn)
    return cpu, result


class Ours:
    name = "odp_async"

    def __init__(self, ivs: Intervals) -> None:
        self.ivs = ivs
        self.tree: IntervalTree[int] = IntervalTree()
        self.handles: list[Any] = []

    def build(self) -> None:
        insert = self.tree.insert
        self.handles = [insert(s, last, i) for i, (s, last) in enumerate(self.ivs)]

    def query(self, queries: Intervals) -> int:
        overlapping = self.tree.overlapping
        total = 0
        for a, b in queries:
            total += len(list(overlapping(a, b)))
        return total

    def add_span(self) -> None:
        self.span = self.tree.insert(0, SPACE, -1)

    def drop_span(self) -> None:
        self.tree.remove(self.span)

    def remove(self, order: list[int]) -> None:
        remove = self.tree.remove
        handles = self.handles
        for i in order:
            remove(handles[i])


class Peer:
    name = "intervaltree"

    def __init__(self, ivs: Intervals) -> None:
        self.ivs = ivs
        self.tree = PeerTree()

    def build(self) -> None:
        addi = self.tree.addi
        for i, (s, last) in enumerate(self.ivs):
            addi(s, last + 1, i)

    def query(self, queries: Intervals) -> int:
        overlap = self.tree.overlap
        total = 0
        for a, b in queries:
            total += len(overlap(a, b + 1))
        return total

    def add_span(self) -> None:
        self.tree.addi(0, SPACE + 1, -1)

    def drop_span(self) -> None:
        self.tree.removei(0, SPACE + 1, -1)

    def remove(self, order: list[int]) -> None:
        removei = self.tree.removei
        ivs = self.ivs
        for i in order:
            s, last = ivs[i]
            removei(s, last + 1, i)


Impl = type[Ours] | type[Peer]


def run_once(impl: Impl, ivs: Intervals, queries: Intervals, order: list[int]) -> dict[str, Any]:
    """One repeat: rates in ops/s plus result counts for cross-checking."""
    n, q = len(ivs), len(queries)
    t = impl(ivs)
    t_ins, _ = timed(t.build)
    t_q, hits = timed(lambda: t.query(queries))
    t.add_span()
    t_qs, hits_span = timed(lambda: t.query(queries))
    t.drop_span()
    t_rm, _ = timed(lambda: t.remove(order))
    if len(t.tree) != 0:
        raise SystemExit(f"{impl.name}: {len(t.tree)} intervals left after removing all")
    return {
        "insert": n / t_ins,
        "query": q / t_q,
        "query_span": q / t_qs,
        "remove": n / t_rm,
        "hits": (hits, hits_span),
    }


def bytes_per_interval(impl: Impl, ivs: Intervals) -> float:
    t = impl(ivs)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t.build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # Handles are part of what a user of ours must keep; they are counted above.
    return (after - before) / len(ivs)


METRICS = [
    ("insert", "inserts/s", 2.5),
    ("query", "queries/s", 6.0),
    ("query_span", "queries/s, spanning interval", 3.0),
    ("remove", "removes/s", 2.5),
]


def bench(
    n: int, n_queries: int, repeats: int, peer_repeats: int, report: Report | None = None
) -> list[str]:
    ivs, queries, order = make_workload(n, n_queries)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
    for r in range(max(repeats, peer_repeats)):
        if r < repeats:
            runs["ours"].append(run_once(Ours, ivs, queries, order))
        if r < peer_repeats:
            runs["peer"].append(run_once(Peer, ivs, queries, order))
    if runs["ours"][0]["hits"] != runs["peer"][0]["hits"]:
        raise SystemExit(
            f"N={n}: result counts differ: ours {runs['ours'][0]['hits']},"
            f" intervaltree {runs['peer'][0]['hits']}"
        )
    hits, hits_span = runs["ours"][0]["hits"]
    lines = [
        f"N={n:,}  queries={n_queries:,} ({hits / n_queries:.2f} results each;"
        f" {hits_span / n_queries:.2f} with the spanning interval)"
        f"  repeats: ours {repeats}, intervaltree {peer_repeats}",
        f"  {'metric':<30} {'odp_async':>12} {'intervaltree':>13} {'ratio':>7} {'target':>7}",
    ]
    rows: list[dict[str, Any]] = []
    for key, label, target in METRICS:
        ours = statistics.median(run[key] for run in runs["ours"])
        peer = statistics.median(run[key] for run in runs["peer"])
        ratio = ours / peer
        mark = "ok" if ratio >= target else "MISS"
        rows.append(
            {
                "name": f"N={n} {label}",
                "value": ours,
                "unit": "per s",
                "peer": "intervaltree",
                "peer_value": peer,
                "ratio": ratio,
                "target": f">={target:g}",
                "met": ratio >= target,
            }
        )
        lines.append(
            f"  {label:<30} {ours:>12,.0f} {peer:>13,.0f} {ratio:>6.2f}x {target:>5.1f}x {mark}"
        )
    ours_mem = bytes_per_interval(Ours, ivs)
    peer_mem = bytes_per_interval(Peer, ivs)
    lines.append(
        f"  {'bytes/interval (tracemalloc)':<30} {ours_mem:>12,.0f} {peer_mem:>13,.0f}"
        f" {ours_mem / peer_mem:>6.2f}x  (lower is better)"
    )
    if report is not None:
        report.add(lines[0], rows)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5)")
    parser.add_argument(
        "--peer-repeats",
        type=int,
        default=None,
        help="repeats for intervaltree at the largest N (default: same as --repeats)",
    )
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    report = Report("bench_intervals.py")
    if args.quick:
        sizes, n_queries, repeats = [1_000, 10_000], 2_000, args.repeats or 3
    else:
        sizes, n_queries, repeats = [10_000, 100_000], 20_000, args.repeats or 5
    peer_last = args.peer_repeats or repeats
    print(
        f"python {sys.version.split()[0]}, GC on, CPU clock, medians, "
        f"ratio = odp_async / intervaltree; load {load()}"
    )
    for n in sizes:
        peer_repeats = peer_last if n == sizes[-1] else repeats
        for line in bench(n, n_queries, repeats, peer_repeats, report):
            print(line, flush=True)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
