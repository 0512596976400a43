"""Benchmark odp_async.sync locks against anyio, trio, asyncio and aiorwlock, live.

Run from the repository root::

    .venv/bin/python benchmarks/bench_sync.py           # full run, about 20 s on a 2-core VM
    .venv/bin/python benchmarks/bench_sync.py --quick   # smoke run, a few seconds

Everything runs twice, under ``anyio.run(..., backend="asyncio")`` and under
``backend="trio"``; all contenders of one backend share one event loop.

Uncontended (ns per acquire+release pair)
    One task does ``await acquire(); release()`` in a loop on a lock nobody else
    wants.  Contenders: ``Mutex()``, ``Mutex(fast_acquire=True)``, ``RWLock()`` and
    ``RWLock(fast_acquire=True)`` for writing and for reading; peers ``anyio.Lock()``,
    ``anyio.Lock(fast_acquire=True)``, ``trio.Lock`` (trio) or ``asyncio.Lock`` (asyncio),
    and ``aiorwlock.RWLock()`` / ``aiorwlock.RWLock(fast=True)`` writer and reader locks
    (asyncio only).  Defaults yield once per acquire (a scheduler pass), the fast variants
    do not, so each of ours is compared with the peer that makes the same promise.

Contended (ns per handoff)
    Two tasks alternate strictly on one lock, and every acquire parks and is woken by
    the other task's release.  The protocol, per task::

        leader:   acquire (free); wait until the follower is queued;
                  n times: release; acquire            # parks: the follower holds it
                  release
        follower: wait until the leader holds it; acquire (parks);
                  n times: release; acquire            # parks: the leader holds it
                  release

    A release with a waiter hands the lock to that waiter (all contenders measured hand
    off, or at least keep a newcomer out while a woken waiter is queued), so the task that
    just released and calls ``acquire`` at once finds the lock held and must park; it
    does not yield between the two, so the other task cannot have released again.  Each
    handoff is therefore exactly one park and one wake: 2n + 1 of them per run.  After
    every acquire a task checks that the other task held the lock last; the table's
    ``bad`` count of violations must be 0, or the run did not measure a handoff.

    The floor is the same protocol on the backend's own parking primitive, in the same
    loop: each side resolves the future (asyncio: ``loop.create_future()`` and
    ``set_result``) or reschedules the task (trio: ``wait_task_rescheduled`` and
    ``reschedule``) the other side parked on, then parks on a fresh one.  The same
    alternation check runs there too, so it costs both sides alike.

Statistics (see ``_common.py``)
    The garbage collector stays on, as users run.  Each figure is the median of
    ``--repeats`` samples of CPU time (``process_time``; wall time beside it); the
    contenders of a table are interleaved within every repeat (one sample each, in an
    order rotated by one per repeat), after one warm-up pass.  The ratio column is the
    median of the per-repeat CPU ratios ours/peer (paired samples, so drift of the
    machine cancels), with their range, not the ratio of the two medians shown.  Targets
    are printed, never asserted.  ``--json PATH`` writes the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiorwlock
import anyio
import anyio.lowlevel
import trio
import trio.lowlevel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Report, Row, load, now, since, table

from odp_async.sync import Mutex, RWLock

Acquire = Callable[[], Awaitable[Any]]
Release = Callable[[], None]
# A timed run: takes the loop count, returns (CPU seconds, wall seconds, operations,
# alternation violations).
Timing = tuple[float, float, int, int]
Sample = Callable[[int], Awaitable[Timing]]


# --- uncontended -------------------------------------------------------------------------


async def _time_two_sides(
    side: Callable[[int], Awaitable[None]], n: int, bad: list[int]
) -> Timing:
    """Time two tasks ``side(0)`` and ``side(1)`` handing off `n` times each, GC on.

    Returns (CPU seconds, wall seconds, hand-offs, alternation violations), the shape
    every contended sample returns.
    """
    gc.collect()
    start = now()
    async with anyio.create_task_group() as tg:
        tg.start_soon(side, 0)
        tg.start_soon(side, 1)
    cpu, wall = since(start)
    return cpu, wall, 2 * n + 1, bad[0]


def uncontended(make: Callable[[], tuple[Acquire, Release]]) -> Sample:
    """A sample of n uncontended acquire+release pairs on one lock built by `make`."""
    acquire, release = make()

    async def sample(n: int) -> Timing:
        gc.collect()
        start = now()
        for _ in range(n):
            await acquire()
            release()
        cpu, wall = since(start)
        return cpu, wall, n, 0

    return sample


def _aiorw(fast: bool, mode: str) -> tuple[Acquire, Release]:
    rw = aiorwlock.RWLock(fast=fast)
    lk = rw.writer_lock if mode == "write" else rw.reader_lock
    return lk.acquire, lk.release


def uncontended_contenders(backend: str) -> dict[str, Sample]:
    def mutex(fast: bool) -> tuple[Acquire, Release]:
        m = Mutex(fast_acquire=fast)
        return m.acquire, m.release

    def rwlock(fast: bool, mode: str) -> tuple[Acquire, Release]:
        rw = RWLock(fast_acquire=fast)
        if mode == "write":
            return rw.acquire_write, rw.release_write
        return rw.acquire_read, rw.release_read

    def anyio_lock(fast: bool) -> tuple[Acquire, Release]:
        lk = anyio.Lock(fast_acquire=fast)
        return lk.acquire, lk.release

    def native_lock() -> tuple[Acquire, Release]:
        lk: trio.Lock | asyncio.Lock = trio.Lock() if backend == "trio" else asyncio.Lock()
        return lk.acquire, lk.release

    makers: dict[str, Callable[[], tuple[Acquire, Release]]] = {
        "Mutex()": lambda: mutex(False),
        "Mutex(fast)": lambda: mutex(True),
        "RWLock() write": lambda: rwlock(False, "write"),
        "RWLock() read": lambda: rwlock(False, "read"),
        "RWLock(fast) write": lambda: rwlock(True, "write"),
        "RWLock(fast) read": lambda: rwlock(True, "read"),
        "anyio.Lock()": lambda: anyio_lock(False),
        "anyio.Lock(fast)": lambda: anyio_lock(True),
        f"{backend}.Lock": native_lock,
    }
    if backend == "asyncio":
        makers["aiorwlock writer"] = lambda: _aiorw(False, "write")
        makers["aiorwlock reader"] = lambda: _aiorw(False, "read")
        makers["aiorwlock(fast) writer"] = lambda: _aiorw(True, "write")
        makers["aiorwlock(fast) reader"] = lambda: _aiorw(True, "read")
    return {name: uncontended(make) for name, make in makers.items()}


def uncontended_rows(backend: str) -> list[Row]:
    rows: list[Row] = [
        ("Mutex()", "anyio.Lock()", ("<=", 1.2)),
        ("Mutex(fast)", "anyio.Lock(fast)", ("<=", 1.0)),
    ]
    if backend == "asyncio":
        rows += [
            ("RWLock() write", "aiorwlock writer", ("<", 1.0)),
            ("RWLock() read", "aiorwlock reader", ("<", 1.0)),
            ("RWLock(fast) write", "aiorwlock(fast) writer", ("<", 1.0)),
            ("RWLock(fast) read", "aiorwlock(fast) reader", ("<", 1.0)),
            ("aiorwlock writer", None, None),
            ("aiorwlock reader", None, None),
            ("aiorwlock(fast) writer", None, None),
            ("aiorwlock(fast) reader", None, None),
        ]
    else:
        # No reader-writer lock peer on trio: the plain locks, for scale only.
        rows += [
            ("RWLock() write", "anyio.Lock()", None),
            ("RWLock() read", "anyio.Lock()", None),
            ("RWLock(fast) write", "anyio.Lock(fast)", None),
            ("RWLock(fast) read", "anyio.Lock(fast)", None),
        ]
    rows += [
        ("anyio.Lock()", None, None),
        ("anyio.Lock(fast)", None, None),
        (f"{backend}.Lock", "anyio.Lock()", None),
    ]
    return rows


# --- contended ---------------------------------------------------------------------------


def lock_handoff(make: Callable[[], tuple[Acquire, Release, Callable[[], bool]]]) -> Sample:
    """A sample of 2n + 1 strict handoffs of one lock between two tasks (module doc)."""

    async def sample(n: int) -> Timing:
        acquire, release, is_queued = make()
        last = [-1]
        bad = [0]

        async def side(me: int) -> None:
            if me == 0:
                await acquire()
                last[0] = 0
                while not is_queued():
                    await anyio.lowlevel.checkpoint()
            else:
                while last[0] != 0:
                    await anyio.lowlevel.checkpoint()
                await acquire()
                if last[0] == me:
                    bad[0] += 1
                last[0] = me
            for _ in range(n):
                release()
                await acquire()
                if last[0] == me:
                    bad[0] += 1
                last[0] = me
            release()

        return await _time_two_sides(side, n, bad)

    return sample


def asyncio_floor() -> Sample:
    """The handoff protocol on bare asyncio futures: one fresh future per park."""

    async def sample(n: int) -> Timing:
        loop = asyncio.get_running_loop()
        box: list[asyncio.Future[None] | None] = [None, None]
        last = [-1]
        bad = [0]

        def wake(other: int) -> None:
            f = box[other]
            assert f is not None
            box[other] = None
            f.set_result(None)

        async def side(me: int) -> None:
            other = 1 - me
            if me == 0:
                while box[other] is None:
                    await anyio.lowlevel.checkpoint()
            else:
                fut = box[me] = loop.create_future()
                await fut
                if last[0] == me:
                    bad[0] += 1
                last[0] = me
            for _ in range(n):
                wake(other)
                fut = box[me] = loop.create_future()
                await fut
                if last[0] == me:
                    bad[0] += 1
                last[0] = me
            if me == 0:
                wake(other)

        return await _time_two_sides(side, n, bad)

    return sample


def _no_abort(_: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


def trio_floor() -> Sample:
    """The handoff protocol on trio's ``wait_task_rescheduled`` / ``reschedule``."""

    async def sample(n: int) -> Timing:
        box: list[trio.lowlevel.Task | None] = [None, None]
        last = [-1]
        bad = [0]
        reschedule = trio.lowlevel.reschedule
        wait = trio.lowlevel.wait_task_rescheduled
        current_task = trio.lowlevel.current_task

        def wake(other: int) -> None:
            t = box[other]
            assert t is not None
            box[other] = None
            reschedule(t)

        async def side(me: int) -> None:
            other = 1 - me
            if me == 0:
                while box[other] is None:
                    await trio.lowlevel.checkpoint()
            else:
                box[me] = current_task()
                await wait(_no_abort)
                if last[0] == me:
                    bad[0] += 1
                last[0] = me
            for _ in range(n):
                wake(other)
                box[me] = current_task()
                await wait(_no_abort)
                if last[0] == me:
                    bad[0] += 1
                last[0] = me
            if me == 0:
                wake(other)

        return await _time_two_sides(side, n, bad)

    return sample


def contended_contenders(backend: str) -> dict[str, Sample]:
    def mutex() -> tuple[Acquire, Release, Callable[[], bool]]:
        m = Mutex()
        return m.acquire, m.release, lambda: m.statistics().tasks_waiting > 0

    def rwlock_write() -> tuple[Acquire, Release, Callable[[], bool]]:
        rw = RWLock()
        return rw.acquire_write, rw.release_write, lambda: rw.statistics().writers_waiting > 0

    def anyio_lock() -> tuple[Acquire, Release, Callable[[], bool]]:
        lk = anyio.Lock()
        return lk.acquire, lk.release, lambda: lk.statistics().tasks_waiting > 0

    def native_lock() -> tuple[Acquire, Release, Callable[[], bool]]:
        if backend == "trio":
            t = trio.Lock()
            return t.acquire, t.release, lambda: t.statistics().tasks_waiting > 0
        a = asyncio.Lock()
        # asyncio.Lock has no statistics(); its waiters deque is the queue.
        return a.acquire, a.release, lambda: bool(a._waiters)

    floor_name = "future floor" if backend == "asyncio" else "reschedule floor"
    return {
        "Mutex() handoff": lock_handoff(mutex),
        "RWLock() write handoff": lock_handoff(rwlock_write),
        "anyio.Lock() handoff": lock_handoff(anyio_lock),
        f"{backend}.Lock handoff": lock_handoff(native_lock),
        floor_name: asyncio_floor() if backend == "asyncio" else trio_floor(),
    }


def contended_rows(backend: str) -> list[Row]:
    floor = "future floor" if backend == "asyncio" else "reschedule floor"
    return [
        ("Mutex() handoff", floor, ("<=", 1.5)),
        ("RWLock() write handoff", floor, None),
        ("anyio.Lock() handoff", floor, None),
        (f"{backend}.Lock handoff", floor, None),
        (floor, None, None),
    ]


# --- measuring and printing --------------------------------------------------------------


async def measure(
    contenders: dict[str, Sample], n: int, repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, int]]:
    """CPU and wall ns/op samples per contender, interleaved across repeats; violations."""
    names = list(contenders)
    for name in names:  # warm-up
        await contenders[name](max(1, n // 10))
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    bad: dict[str, int] = dict.fromkeys(names, 0)
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            c, w, ops, violations = await contenders[name](n)
            cpu[name].append(c / ops * 1e9)
            wall[name].append(w / ops * 1e9)
            bad[name] += violations
    return cpu, wall, bad


async def bench_backend(
    backend: str, n_pairs: int, n_handoffs: int, repeats: int, report: Report
) -> None:
    cpu, wall, _ = await measure(uncontended_contenders(backend), n_pairs, repeats)
    lines = table(
        f"{backend}: uncontended acquire+release, ns per pair "
        f"({n_pairs} pairs x {repeats} repeats)",
        uncontended_rows(backend),
        cpu,
        wall,
        report=report,
    )
    print("\n".join(lines), flush=True)
    cpu, wall, bad = await measure(contended_contenders(backend), n_handoffs, repeats)
    lines = table(
        f"{backend}: contended two-task handoff, ns per handoff "
        f"({2 * n_handoffs + 1} handoffs x {repeats} repeats; bad = alternation violations)",
        contended_rows(backend),
        cpu,
        wall,
        bad=bad,
        report=report,
    )
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds")
    parser.add_argument("--repeats", type=int, default=None, help="samples per contender")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    if args.quick:
        n_pairs, n_handoffs, repeats = 500, 300, 3
    else:
        n_pairs, n_handoffs, repeats = 20_000, 10_000, 9
    if args.repeats is not None:
        repeats = args.repeats
    print(
        f"python {sys.version.split()[0]}, anyio {version('anyio')}, trio {trio.__version__}, "
        f"aiorwlock {version('aiorwlock')}; "
        f"GC on; CPU-clock medians (wall beside); ratio = median of per-repeat CPU ours/peer; "
        f"load {load()}",
        flush=True,
    )
    report = Report("bench_sync.py")
    for backend in ("asyncio", "trio"):
        anyio.run(bench_backend, backend, n_pairs, n_handoffs, repeats, report, backend=backend)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
