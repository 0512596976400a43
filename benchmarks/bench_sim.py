"""Benchmark the sim runtime's cost per step against a bare coroutine driver and trio.

Run from the repository root::

    .venv/bin/python benchmarks/bench_sim.py           # full run, about 5 s on a 2-core VM
    .venv/bin/python benchmarks/bench_sim.py --quick   # smoke run, a few seconds

Contenders, each with two tasks of n iterations:

- ``sim checkpoint step``: two tasks each ``await checkpoint("x")`` n times under
  ``sim.run(main, seed=1, max_steps=...)``.  Both tasks stay runnable, so every step
  asks the `RandomChooser`; ns per step = wall time of ``run`` / ``SimResult.steps``.
- ``bare send step`` (the floor): two coroutines that await a ``types.coroutine``
  generator yielding once, driven by a round-robin of ``coro.send(None)``; ns per send.
  It has no chooser, no context switch and no trap decoding: what any driver must pay.
- ``trio checkpoint``: two trio tasks each ``await trio.lowlevel.checkpoint()`` n times
  under ``trio.run``, timed inside the run; ns per checkpoint.
- ``sim Mutex step``: two tasks each do ``await m.acquire(); await checkpoint("held");
  m.release()`` n times on one `Mutex` under the sim.  The acquire is a choice point;
  holding the lock across a second one lets the other task find it held, park, and be
  resumed by the release (with seed=1 about two acquires in three park: 2.67 steps per
  iteration), so the steps mix checkpoints, parks and wakes.  ns per step; and
  ``sim Mutex pair``: the same runs, ns per acquire+checkpoint+release iteration.

Statistics (see ``_common.py``): the garbage collector stays on, as users run; each
figure is the median of ``--repeats`` samples of CPU time (``process_time``) and of wall
time, the contenders interleaved within every repeat (order rotated by one per repeat)
after a warm-up pass.  The ratio is the median of the per-repeat CPU ratios (paired
samples), with their range.  Targets are printed, never asserted.  ``--json PATH``
writes the rows.
"""

from __future__ import annotations

import argparse
import gc
import sys
import types
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Report, Row, clocked, load, now, since, table

from odp_async._runtime import checkpoint, sim, task_group
from odp_async.sync import Mutex

# A timed run: takes n, returns (seconds, ops) where ops counts the unit of the ns/op.
Sample = Callable[[int], tuple[float, float, int]]


def timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, ops) of one call, the collector on."""
    cpu, wall, ops = clocked(fn)
    return cpu, wall, ops


# --- sim ---------------------------------------------------------------------------------


async def _checkpoints(n: int) -> None:
    for _ in range(n):
        await checkpoint("x")


async def _two(worker: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    async with task_group() as tg:
        tg.start_soon(worker, *args)
        tg.start_soon(worker, *args)


def _sim_run(n: int, worker: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> int:
    result = sim.run(_two, worker, *args, seed=1, max_steps=10 * n + 100)
    if not result.is_ok:
        raise RuntimeError(f"sim run did not finish: {result.outcome}")
    return result.steps


def sim_checkpoint(n: int) -> tuple[float, float, int]:
    return timed(lambda: _sim_run(n, _checkpoints, n))


async def _mutex_pairs(m: Mutex, n: int) -> None:
    for _ in range(n):
        await m.acquire()
        # Hold it across a choice point, or the other task could never find it held.
        await checkpoint("held")
        m.release()


def sim_mutex(n: int) -> tuple[float, float, int]:
    """One sim run of 2n contended pairs: (seconds, steps)."""
    return timed(lambda: _sim_run(n, _mutex_pairs, Mutex(), n))


# --- floors and peers --------------------------------------------------------------------


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    yield


async def _bare_worker(n: int) -> None:
    for _ in range(n):
        await _yield_once()


def _bare_round_robin(n: int) -> int:
    coros = [_bare_worker(n), _bare_worker(n)]
    steps = 0
    while coros:
        for c in list(coros):
            steps += 1
            try:
                c.send(None)
            except StopIteration:
                coros.remove(c)
    return steps


def bare_send(n: int) -> tuple[float, float, int]:
    return timed(lambda: _bare_round_robin(n))


def trio_checkpoint(n: int) -> tuple[float, float, int]:
    async def worker() -> None:
        cp = trio.lowlevel.checkpoint
        for _ in range(n):
            await cp()

    async def main() -> tuple[float, float]:
        start = now()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            nursery.start_soon(worker)
        return since(start)

    gc.collect()
    cpu, wall = trio.run(main)
    return cpu, wall, 2 * n


# --- measuring and printing --------------------------------------------------------------


def measure(n: int, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """CPU and wall ns/op samples per contender, interleaved across repeats."""
    samples: dict[str, Sample] = {
        "bare send step": bare_send,
        "sim checkpoint step": sim_checkpoint,
        "trio checkpoint": trio_checkpoint,
        "sim Mutex step": sim_mutex,
    }
    names = list(samples)
    for name in names:  # warm-up
        samples[name](max(1, n // 10))
    cpu: dict[str, list[float]] = {name: [] for name in [*names, "sim Mutex pair"]}
    wall: dict[str, list[float]] = {name: [] for name in [*names, "sim Mutex pair"]}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            c, w, ops = samples[name](n)
            cpu[name].append(c / ops * 1e9)
            wall[name].append(w / ops * 1e9)
            if name == "sim Mutex step":
                cpu["sim Mutex pair"].append(c / (2 * n) * 1e9)
                wall["sim Mutex pair"].append(w / (2 * n) * 1e9)
    return cpu, wall


ROWS: list[Row] = [
    ("sim checkpoint step", "bare send step", ("<=", 2.5)),
    ("trio checkpoint", "sim checkpoint step", (">=", 3.0)),
    ("sim Mutex step", "sim checkpoint step", None),
    ("sim Mutex pair", None, None),
    ("bare send step", None, None),
]


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds")
    parser.add_argument("--repeats", type=int, default=None, help="samples per contender")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    n, repeats = (2_000, 3) if args.quick else (50_000, 9)
    if args.repeats is not None:
        repeats = args.repeats
    print(
        f"python {sys.version.split()[0]}, trio {trio.__version__}; GC on; CPU-clock "
        f"medians (wall beside); ratio = median of per-repeat CPU name/peer; load {load()}",
        flush=True,
    )
    cpu, wall = measure(n, repeats)
    title = f"sim runtime, two tasks x {n} iterations x {repeats} repeats"
    report = Report("bench_sim.py")
    print("\n".join(table(title, ROWS, cpu, wall, report=report)), flush=True)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
