"""Benchmark exploration on Dask against the process pool: throughput, per-chunk overhead,
and an estimate of the speedup on a bigger cluster.

Run from the repository root (needs the ``cluster`` extra)::

    .venv/bin/python benchmarks/bench_cluster.py           # full run, ~1-2 min on 2 cores
    .venv/bin/python benchmarks/bench_cluster.py --quick   # smoke run, ~15 s

Four tables, all measured in one run:

1. ``throughput``: ``explore("registration-race", "odp2014-ctx", chooser="random",
   schedules=B, seed=0, shrink=False)`` (a clean cell: the whole budget always runs) in
   this process (``jobs=1``), on a `ProcessExecutor` of 1 and 2 workers, and on a Dask
   `LocalCluster` of 1 and 2 single-threaded worker processes (``DaskExecutor.local``);
   schedules/s over the wall time of the `explore` call, and the speedup over ``jobs=1``.
   Workers and clusters are started once, before timing (their start-up is printed
   apart); chunks are sized by the explorer as in any run.
2. ``per-chunk overhead``: empty chunks (``run_chunk`` over ``[0, 0)``, the real task
   with its arguments) through each executor: the latency of one chunk at a time, and
   the cost per chunk with the executor's whole window in flight (its throughput limit).
3. ``estimate`` (a model, not a measurement): the speedup over ``jobs=1`` at 16 and 100
   Dask workers, ``min(W * e1, T / o)``: ``e1`` the measured 1-worker Dask efficiency
   (its schedules/s over ``jobs=1``'s, at most 1), ``T`` the chunk length the explorer
   aims at on Dask (``DASK_OVERHEAD / OVERHEAD_SHARE`` seconds), ``o`` the measured pipelined
   per-chunk cost (the scheduler and this process handle one chunk at a time, so at most
   ``1 / o`` chunks a second complete, each worth ``T`` seconds of one core's work).  It
   assumes one core per worker and a scheduler as fast as this machine's.
4. ``dpor``: ``explore(..., chooser="dpor", schedules=B, stop_on_first=False,
   shrink=False)`` on the same clean cell: the serial search (``jobs=1``), and the search
   split into subtrees (`odp_async.explore.dpor_parallel`) in this process
   (`InlineExecutor`), on the process pools and on the Dask clusters: traces/s over the
   wall time (the rounds' round trips included) and the speedup over the split in this process
   (the same traces, whatever runs them).

Statistics: throughput figures are medians of ``--repeats`` samples, the contenders
interleaved within every repeat (order rotated by one per repeat) after a warm-up pass.
The machine is shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

from odp_async.explore import explore, runner
from odp_async.explore.executors import Executor, InlineExecutor, ProcessExecutor
from odp_async.explore.target import Target

try:
    from odp_async.explore.dask_executor import DASK_OVERHEAD, DaskExecutor
except ImportError:  # the cluster extra is not installed
    DaskExecutor = None  # type: ignore[assignment,misc]
    DASK_OVERHEAD = 0.005

SCENARIO, PROTOCOL = "registration-race", "odp2014-ctx"


def throughput(executor: Executor | None, budget: int) -> float:
    """Schedules/s of one explore call (None: jobs=1, this process)."""
    start = time.perf_counter()
    result = explore(
        SCENARIO,
        PROTOCOL,
        chooser="random",
        schedules=budget,
        seed=0,
        shrink=False,
        executor=executor,
    )
    took = time.perf_counter() - start
    assert result.schedules == budget, result
    return budget / took


def dpor_throughput(executor: Executor | None, budget: int) -> float:
    """Traces/s of one dpor explore call (None: the serial search, this process)."""
    start = time.perf_counter()
    result = explore(
        SCENARIO,
        PROTOCOL,
        chooser="dpor",
        schedules=budget,
        stop_on_first=False,
        shrink=False,
        executor=executor,
    )
    took = time.perf_counter() - start
    assert result.failure is None, result
    return result.schedules / took


def overheads(executor: Executor, chunks: int) -> tuple[float, float]:
    """(latency of one empty chunk, cost per empty chunk with the window in flight), s."""
    spec = Target.resolve(SCENARIO, PROTOCOL).spec()
    config = runner.ExploreConfig(chooser="random", seed=0)
    executor.prepare(spec)
    start = time.perf_counter()
    for key in range(chunks):
        executor.submit(key, runner.run_chunk, spec, config, 0, 0, 0)
        while not executor.wait(None):
            pass
    latency = (time.perf_counter() - start) / chunks
    start = time.perf_counter()
    submitted = finished = 0
    window = executor.window
    while finished < chunks:
        while submitted < chunks and submitted - finished < window:
            executor.submit(chunks + submitted, runner.run_chunk, spec, config, 0, 0, 0)
            submitted += 1
        finished += len(executor.wait(None))
    return latency, (time.perf_counter() - start) / chunks


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small budgets")
    parser.add_argument("--budget", type=int, help="schedules per explore call")
    parser.add_argument("--repeats", type=int, help="samples per contender")
    parser.add_argument("--json", default=None, help="accepted for run_all.py; no rows kept")
    args = parser.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.ERROR)  # the scheduler's INFO lines
    budget = args.budget or (100 if args.quick else 3000)
    repeats = args.repeats or (1 if args.quick else 3)
    chunks = 20 if args.quick else 200
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(f"target {SCENARIO}/{PROTOCOL}, random, {budget} schedules, {repeats} repeats")

    executors: dict[str, Executor | None] = {"jobs=1": None}
    for n in (1, 2):
        executors[f"process pool {n}"] = ProcessExecutor(n)
    for n in (1, 2):
        if DaskExecutor is None:
            print(f"dask {n} worker(s): skipped (pip install 'odp_async[cluster]')")
            continue
        start = time.perf_counter()
        executors[f"dask {n}"] = DaskExecutor.local(n, dashboard=False)
        print(f"dask {n} worker(s): LocalCluster started in {time.perf_counter() - start:.2f} s")
    try:
        names = list(executors)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for name in names:  # warm-up: workers start, targets rebuilt once per worker
            throughput(executors[name], min(budget, 100))
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                samples[name].append(throughput(executors[name], budget))
        print()
        print(f"{'throughput':28} {'schedules/s':>12} {'vs jobs=1':>10}")
        base = statistics.median(samples["jobs=1"])
        rates = {name: statistics.median(s) for name, s in samples.items()}
        for name in names:
            print(f"{name:28} {rates[name]:12.0f} {rates[name] / base:9.2f}x")

        print()
        print(f"{'per-chunk overhead':28} {'latency us':>12} {'pipelined us':>13}")
        costs: dict[str, float] = {}
        for name in names:
            executor = executors[name]
            if executor is None:
                continue
            latency, pipelined = overheads(executor, chunks)
            costs[name] = pipelined
            print(f"{name:28} {latency * 1e6:12.0f} {pipelined * 1e6:13.0f}")

        if "dask 1" in rates:
            e1 = min(1.0, rates["dask 1"] / base)  # a worker cannot beat jobs=1: noise
            o = costs["dask 2"]
            chunk = min(max(DASK_OVERHEAD / runner.OVERHEAD_SHARE, 0.01), runner.MAX_CHUNK_SECONDS)
            print()
            print(
                "estimate (a model, not measured): "
                f"min(W * {e1:.2f}, {chunk:.2f} s / {o * 1e3:.2f} ms)"
            )
            print(f"{'estimate':28} {'speedup':>12}")
            for workers in (16, 100):
                estimate = min(workers * e1, chunk / o)
                print(f"{f'dask {workers} workers (estimate)':28} {estimate:11.1f}x")
        print()
        print(f"{'dpor':28} {'traces/s':>12} {'vs split here':>14}")
        print("(the first 30 traces only)" if args.quick else f"({budget} traces)")
        dpor: dict[str, Executor | None] = {"dpor serial": None}
        dpor["dpor split, this process"] = InlineExecutor()
        for name in names[1:]:
            dpor[f"dpor {name}"] = executors[name]
        dpor_budget = 30 if args.quick else budget  # a smoke run stays short
        if not args.quick:
            for executor in dpor.values():  # warm-up
                dpor_throughput(executor, min(budget, 100))
        dpor_samples: dict[str, list[float]] = {name: [] for name in dpor}
        order = list(dpor)
        for r in range(repeats):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                dpor_samples[name].append(dpor_throughput(dpor[name], dpor_budget))
        split_here = statistics.median(dpor_samples["dpor split, this process"])
        for name in order:
            rate = statistics.median(dpor_samples[name])
            print(f"{name:28} {rate:12.0f} {rate / split_here:13.2f}x")
    finally:
        for executor in executors.values():
            if executor is not None:
                executor.close()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
