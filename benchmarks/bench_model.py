"""The ODP model's speed: operations per second in the sim, and the registry walk.

Measures, in one run:

1. Sim throughput: one world with 1,000 registered regions (4 pages each, all mapped and
   populated); four fault tasks fault random pages of random regions, two invalidation
   tasks madvise(DONTNEED) random 4-page ranges.  Reported: faults + invalidations per
   second of the mixed phase (the setup is not counted), sim steps per second
   over the whole run, per protocol, and each protocol's rate against ``naive`` measured
   in the same run (the cost of its synchronization).
2. The registry walk: finding the regions that overlap a one-page invalidation, with the
   `IntervalTree` (what the ucontext uses) against a linear scan over the same regions, at
   10, 1,000 and 100,000 regions.  Reported: ns per walk and the ratio scan/tree.
3. A world's setup per schedule, at 10,000 regions (4 pages each, mapped, faulted and
   registered, as in 1.): building it afresh (`World.build` and the setup's sim run, what
   ``run_world(setup=...)`` does per schedule) against putting a world built once back
   in place after a schedule changed it (`Snapshot.restore`, what `PreparedWorld` and
   the explorer do for a `Scenario` with a ``setup``).  Reported: ms per schedule, CPU
   and wall, and the ratio fresh/restore (target >= 10) with its range over repeats; the
   one-off cost of taking the snapshot beside.

Medians of repeats, on the CPU clock (``process_time``: the machine may be shared), with
the garbage collector on, as users run.  Command::

    .venv/bin/python benchmarks/bench_model.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import Report, Row, clocked, load, table

from odp_async import task_group
from odp_async.addr import PAGE_SIZE
from odp_async.intervals import IntervalTree
from odp_async.world import PreparedWorld, World, _run_on, _set_up, run_world

P = PAGE_SIZE
REGION_PAGES = 4


def workload(
    regions: int, ops_per_task: int, seed: int, clock: dict[str, float]
) -> Callable[[World], Any]:
    """The workload; `clock` gets the CPU-clock start and end of the mixed phase."""

    async def body(w: World) -> int:
        total = regions * REGION_PAGES
        await w.mm.mmap(0, total * P)
        for vpn in range(total):
            await w.mm.cpu_fault(vpn * P, write=True)
        umems = [
            await w.ctx.register_mr(i * REGION_PAGES * P, REGION_PAGES * P) for i in range(regions)
        ]
        rng = random.Random(seed)
        plan_faults = [
            [(rng.randrange(regions), rng.randrange(REGION_PAGES)) for _ in range(ops_per_task)]
            for _ in range(4)
        ]
        plan_invals = [[rng.randrange(total - 4) for _ in range(ops_per_task)] for _ in range(2)]
        done = [0]
        clock["start"] = time.process_time()

        async def faulter(plan: list[tuple[int, int]]) -> None:
            for region, page in plan:
                umem = umems[region]
                await w.ctx.fault(umem, umem.range.start + page * P, write=True)
                done[0] += 1

        async def invalidator(plan: list[int]) -> None:
            for vpn in plan:
                await w.mm.madvise_dontneed(vpn * P, 4 * P)
                done[0] += 1

        async with task_group() as tg:
            for plan in plan_faults:
                tg.start_soon(faulter, plan)
            for plan_i in plan_invals:
                tg.start_soon(invalidator, plan_i)
        clock["end"] = time.process_time()
        return done[0]

    return body


def measure_sim(protocol: str, regions: int, ops: int, seed: int) -> tuple[float, float]:
    clock: dict[str, float] = {}
    body = workload(regions, ops, seed, clock)
    t0 = time.process_time()
    run = run_world(body, protocol=protocol, seed=seed, max_steps=10**8, record_events=False)
    total = time.process_time() - t0
    value = run.sim.unwrap()
    assert isinstance(value, int)
    return value / (clock["end"] - clock["start"]), run.sim.steps / total


def measure_walk(n: int, queries: int, seed: int) -> tuple[float, float]:
    rng = random.Random(seed)
    tree: IntervalTree[int] = IntervalTree()
    spans = []
    for i in range(n):
        start = i * REGION_PAGES * P
        last = start + REGION_PAGES * P - 1
        tree.insert(start, last, i)
        spans.append((start, last, i))
    space = n * REGION_PAGES * P
    points = [rng.randrange(space) & ~(P - 1) for _ in range(queries)]

    t0 = time.process_time()
    hits_tree = 0
    for q in points:
        for _ in tree.overlapping(q, q + P - 1):
            hits_tree += 1
    tree_ns = (time.process_time() - t0) / queries * 1e9

    linear_queries = points[: max(1, min(queries, 2_000_000 // max(n, 1)))]
    t0 = time.process_time()
    hits_scan = 0
    for q in linear_queries:
        end = q + P - 1
        for start, last, _ in spans:
            if start <= end and q <= last:
                hits_scan += 1
    scan_ns = (time.process_time() - t0) / len(linear_queries) * 1e9
    assert hits_tree == len(points)
    return tree_ns, scan_ns


def setup_for(regions: int) -> Callable[[World], Any]:
    """A world's setup: `regions` regions mapped, faulted and registered."""

    async def setup(w: World) -> None:
        total = regions * REGION_PAGES
        await w.mm.mmap(0, total * P)
        for vpn in range(total):
            await w.mm.cpu_fault(vpn * P, write=True)
        for i in range(regions):
            await w.ctx.register_mr(i * REGION_PAGES * P, REGION_PAGES * P)

    return setup


async def one_schedule(w: World) -> None:
    """What a schedule does to the world: faults, an invalidation, an unmap."""
    umems = list(w.ctx.umems.values())

    async def faulter() -> None:
        for umem in umems[:3]:
            await w.ctx.fault(umem, umem.range.start + P, write=True)

    async with task_group() as tg:
        tg.start_soon(faulter)
        tg.start_soon(w.mm.madvise_dontneed, 0, 8 * P)
        tg.start_soon(w.mm.munmap, 4 * REGION_PAGES * P, REGION_PAGES * P)


SETUP_ROWS: list[Row] = [
    ("fresh build + setup", "restore after a schedule", (">=", 10.0)),
    ("restore after a schedule", None, None),
]


def bench_world_setup(regions: int, repeats: int, report: Report) -> None:
    setup = setup_for(regions)
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in SETUP_ROWS}
    wall: dict[str, list[float]] = {name: [] for name, _, _ in SETUP_ROWS}
    take_cpu, take_wall, prepared = clocked(
        lambda: PreparedWorld.build(setup, "odp2014", record_events=False)
    )

    def fresh() -> World:
        w = World.build("odp2014", record_events=False)
        _set_up(w, setup)
        return w

    for r in range(repeats):
        c, wl, _ = clocked(fresh)
        cpu["fresh build + setup"].append(c * 1e3)
        wall["fresh build + setup"].append(wl * 1e3)
        # One schedule on the prepared world, left as it ends; then only the restore timed.
        outcome = _run_on(prepared.world, one_schedule, r, None, 10**6, False, False).sim.outcome
        assert outcome == "ok", outcome
        c, wl, changed = clocked(prepared.snapshot.restore)
        assert changed > 0
        cpu["restore after a schedule"].append(c * 1e3)
        wall["restore after a schedule"].append(wl * 1e3)
    title = f"world setup per schedule, {regions} regions, median of {repeats}"
    print("\n".join(table(title, SETUP_ROWS, cpu, wall, unit="ms", report=report)))
    restore = sorted(cpu["restore after a schedule"])[repeats // 2]
    print(
        f"(taking the snapshot, once: {take_cpu * 1e3:.0f} ms CPU, {take_wall * 1e3:.0f} ms "
        f"wall, building included; restore {restore * 1e3 / regions:.2f} us per region)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    parser.add_argument(
        "--setup-only", action="store_true", help="only the world-setup table (3.)"
    )
    args = parser.parse_args()
    report = Report("bench_model.py")
    print(f"GC on; CPU-clock medians (wall beside); load {load()}", flush=True)
    bench_world_setup(1000 if args.quick else 10_000, 3 if args.quick else 7, report)
    report.write(args.json)
    if args.setup_only:
        return
    repeats = 3 if args.quick else 5
    regions = 100 if args.quick else 1000
    ops = 50 if args.quick else 400
    protocols = ["naive", "odp2014", "odp2014-ctx", "range-list", "hmm-pool", "kvm-seq"]
    protocols.append("interval-seq")

    print(
        f"== sim throughput: {regions} regions x {REGION_PAGES} pages, 4 faulters + 2 "
        f"invalidators, {ops} ops each, median of {repeats}"
    )
    results: dict[str, list[tuple[float, float]]] = {p: [] for p in protocols}
    for r in range(repeats):
        order = protocols[r % len(protocols) :] + protocols[: r % len(protocols)]
        for protocol in order:
            results[protocol].append(measure_sim(protocol, regions, ops, seed=r))
    naive_rate = statistics.median(x for x, _ in results["naive"])
    print(f"{'protocol':14} {'ops/s':>10} {'steps/s':>10} {'vs naive':>9}")
    for protocol in protocols:
        rate = statistics.median(x for x, _ in results[protocol])
        steps = statistics.median(s for _, s in results[protocol])
        print(f"{protocol:14} {rate:10.0f} {steps:10.0f} {rate / naive_rate:9.2f}")

    print("\n== registry walk: regions overlapping a one-page range, ns per walk")
    print(f"{'regions':>8} {'tree ns':>10} {'scan ns':>12} {'scan/tree':>10}")
    for n in (10, 1000, 100_000):
        samples = [measure_walk(n, 2000 if args.quick else 20000, seed=r) for r in range(repeats)]
        tree_ns = statistics.median(t for t, _ in samples)
        scan_ns = statistics.median(s for _, s in samples)
        print(f"{n:8d} {tree_ns:10.0f} {scan_ns:12.0f} {scan_ns / tree_ns:10.1f}")
    print(flush=True)


if __name__ == "__main__":
    main()
