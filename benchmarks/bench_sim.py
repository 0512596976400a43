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

Statistics: each figure is the median of ``--repeats`` samples, the contenders
interleaved within every repeat (order rotated by one per repeat) after a warm-up pass.
The ratio column is the median of the per-repeat ratios (paired samples), not the ratio
of the medians shown.  The garbage collector is off inside timed regions.  Targets are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import types
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from odp_async._runtime import checkpoint, sim, task_group
from odp_async.sync import Mutex

# A timed run: takes n, returns (seconds, ops) where ops counts the unit of the ns/op.
Sample = Callable[[int], tuple[float, int]]
Row = tuple[str, str | None, tuple[str, float] | None]


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        ops = fn()
        return time.perf_counter() - t0, ops
    finally:
        gc.enable()


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


def sim_checkpoint(n: int) -> tuple[float, int]:
    return timed(lambda: _sim_run(n, _checkpoints, n))


async def _mutex_pairs(m: Mutex, n: int) -> None:
    for _ in range(n):
        await m.acquire()
        # Hold it across a choice point, or the other task could never find it held.
        await checkpoint("held")
        m.release()


def sim_mutex(n: int) -> tuple[float, int]:
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


def bare_send(n: int) -> tuple[float, int]:
    return timed(lambda: _bare_round_robin(n))


def trio_checkpoint(n: int) -> tuple[float, int]:
    async def worker() -> None:
        cp = trio.lowlevel.checkpoint
        for _ in range(n):
            await cp()

    async def main() -> float:
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            nursery.start_soon(worker)
        return time.perf_counter() - t0

    gc.collect()
    gc.disable()
    try:
        return trio.run(main), 2 * n
    finally:
        gc.enable()


# --- measuring and printing --------------------------------------------------------------


def measure(n: int, repeats: int) -> dict[str, list[float]]:
    """ns/op samples per contender, interleaved across repeats."""
    samples: dict[str, Sample] = {
        "bare send step": bare_send,
        "sim checkpoint step": sim_checkpoint,
        "trio checkpoint": trio_checkpoint,
        "sim Mutex step": sim_mutex,
    }
    names = list(samples)
    for name in names:  # warm-up
        samples[name](max(1, n // 10))
    ns: dict[str, list[float]] = {name: [] for name in names}
    ns["sim Mutex pair"] = []
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            seconds, ops = samples[name](n)
            ns[name].append(seconds / ops * 1e9)
            if name == "sim Mutex step":
                ns["sim Mutex pair"].append(seconds / (2 * n) * 1e9)
    return ns


ROWS: list[Row] = [
    ("sim checkpoint step", "bare send step", ("<=", 5.0)),
    ("trio checkpoint", "sim checkpoint step", (">=", 3.0)),
    ("sim Mutex step", "sim checkpoint step", None),
    ("sim Mutex pair", None, None),
    ("bare send step", None, None),
]


def is_met(ratio: float, target: tuple[str, float]) -> bool:
    op, bound = target
    return ratio <= bound if op == "<=" else ratio < bound if op == "<" else ratio >= bound


def table(title: str, rows: list[Row], ns: dict[str, list[float]]) -> list[str]:
    """The printed table: one line per row, paired-median ratios against the peer."""
    w = max(len(r[0]) for r in rows) + 2
    pw = max(len(r[1] or "-") for r in rows) + 2
    head = f"{'name':<{w}}{'ns/op':>10}  {'peer':<{pw}}{'peer ns/op':>10}"
    head += f"{'ratio':>8}{'target':>9}{'met':>5}"
    lines = [f"== {title}", head]
    for name, peer, target in rows:
        ours = statistics.median(ns[name])
        line = f"{name:<{w}}{ours:>10.0f}  "
        if peer is None:
            line += f"{'-':<{pw}}{'-':>10}{'-':>8}"
        else:
            ratio = statistics.median(a / b for a, b in zip(ns[name], ns[peer], strict=True))
            line += f"{peer:<{pw}}{statistics.median(ns[peer]):>10.0f}{ratio:>8.3f}"
        if target is None or peer is None:
            line += f"{'-':>9}{'-':>5}"
        else:
            line += f"{target[0] + format(target[1], 'g'):>9}"
            line += f"{'yes' if is_met(ratio, target) else 'NO':>5}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds")
    parser.add_argument("--repeats", type=int, default=None, help="samples per contender")
    args = parser.parse_args(argv)
    n, repeats = (2_000, 3) if args.quick else (50_000, 9)
    if args.repeats is not None:
        repeats = args.repeats
    print(
        f"python {sys.version.split()[0]}, trio {trio.__version__}; medians; "
        "ratio = median of per-repeat name/peer",
        flush=True,
    )
    ns = measure(n, repeats)
    title = f"sim runtime, two tasks x {n} iterations x {repeats} repeats"
    print("\n".join(table(title, ROWS, ns)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
