"""UNSOUND experiment: DPOR with the given locks left out of every footprint.

    python tools/dpor_lock_upper_bound.py [--locks mmu_lock,umem_mutex] [--budget 50000]
        [--time 600] CELL ...
    python tools/dpor_lock_upper_bound.py --programs

CELL is ``scenario/protocol``.  Each cell runs ``explore(scenario, protocol,
chooser="dpor", ...)`` with every key of a `odp_async.sync.Mutex` whose name ends with one
of ``--locks`` (``ALL``: every Mutex) removed from the footprints DPOR sees, so acquiring
and releasing those locks conflicts with nothing.  The trace count it prints is what a
lock-aware reduction in the style of LAPOR (Kokologiannakis, Raad and Vafeiadis,
"Effective lock handling in stateless model checking", OOPSLA 2019: critical sections
whose contents do not conflict are not ordered) could at best reach: an estimate of the
win, never a claim.  **Its verdicts are not to be trusted**: dropping the locks loses
behaviours.  ``--programs`` shows it on small lock programs, against an unreduced
exhaustive search (`DfsChooser` with ``reduction=False``) and the sound DPOR: it loses
the deadlock of two tasks taking two locks in opposite orders, and an outcome of two
critical sections that touch different cells (the race between a write inside one and a
read after the other must be reversed at the lock's acquire, which the lock's own
conflict did).  A diagnostic, like ``tools/dpor_conflicts.py``: it wraps a private
method of `odp_async.explore.dpor.DporChooser` for the run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.explore import dpor, explore
from odp_async.explore.dfs import DfsChooser, PrunedExecution
from odp_async.explore.dpor import DporChooser
from odp_async.explore.shared import SharedCell
from odp_async.sync import Mutex


def _is_dropped(key: Hashable, suffixes: tuple[str, ...]) -> bool:
    # A primitive's key is ("<obj>", ordinal, (class name, name)) (`dfs._key`, `_tag`).
    if type(key) is not tuple or len(key) != 3 or key[0] != "<obj>" or type(key[2]) is not tuple:
        return False
    cls, name = key[2]
    if cls not in ("Mutex", "RegionMutex"):  # umem_mutex is a RegionMutex
        return False
    return suffixes == ("ALL",) or (type(name) is str and name.endswith(suffixes))


@contextmanager
def dropping_locks(suffixes: tuple[str, ...]) -> Iterator[None]:
    """While inside: DPOR sees no footprint key of the Mutexes `suffixes` name (UNSOUND)."""
    original = dpor.DporChooser._stable_keys

    def stable_keys(self: Any, fp: Any, ordinal: int, updates: Any = None) -> Any:
        reads, writes = original(self, fp, ordinal, updates)
        if updates is not None:
            kept = {k for k in updates if not _is_dropped(k, suffixes)}
            updates.clear()
            updates.update(kept)
        return (
            frozenset(k for k in reads if not _is_dropped(k, suffixes)),
            frozenset(k for k in writes if not _is_dropped(k, suffixes)),
        )

    dpor.DporChooser._stable_keys = stable_keys  # type: ignore[method-assign]
    try:
        yield
    finally:
        dpor.DporChooser._stable_keys = original  # type: ignore[method-assign]


# --- small lock programs (--programs) ---------------------------------------------------

Op = tuple[Any, ...]

#: Two tasks each: ("L", k)/("U", k) take/release lock k, ("r", c) reads cell c,
#: ("w", c, v) writes v, ("inc", c) reads then writes c + 1 (two steps).
PROGRAMS: dict[str, tuple[tuple[Op, ...], ...]] = {
    "abba-deadlock": (
        (("L", 0), ("L", 1), ("U", 1), ("U", 0)),
        (("L", 1), ("L", 0), ("U", 0), ("U", 1)),
    ),
    "lost-update-outside": (
        (("L", 0), ("U", 0), ("inc", 0)),
        (("L", 0), ("U", 0), ("inc", 0)),
    ),
    "update-inside": (
        (("L", 0), ("inc", 0), ("U", 0)),
        (("L", 0), ("inc", 0), ("U", 0)),
    ),
    "disjoint-sections-then-read": (
        (("L", 0), ("w", 0, 1), ("U", 0), ("r", 1)),
        (("L", 0), ("w", 1, 2), ("U", 0), ("r", 0)),
    ),
}


def lock_program(spec: tuple[tuple[Op, ...], ...]) -> Callable[[], Awaitable[Any]]:
    """The program `spec` describes; its value is the cells' final values and what each
    task read; the locks are named as the model's (``mmu_lock``, ``B.umem_mutex``)."""

    async def main() -> Any:
        cells = [SharedCell(0, f"c{i}") for i in range(2)]
        locks = [Mutex("mmu_lock"), Mutex("B.umem_mutex")]
        seen: list[list[int]] = [[] for _ in spec]

        async def worker(k: int, ops: tuple[Op, ...]) -> None:
            for op in ops:
                if op[0] == "r":
                    seen[k].append(await cells[op[1]].load())
                elif op[0] == "w":
                    await cells[op[1]].store(op[2])
                elif op[0] == "inc":
                    await cells[op[1]].store(await cells[op[1]].load() + 1)
                elif op[0] == "L":
                    await locks[op[1]].acquire()
                else:
                    locks[op[1]].release()

        async with rt.task_group() as tg:
            for k, ops in enumerate(spec):
                tg.start_soon(worker, k, ops)
        return tuple(c.get() for c in cells), tuple(tuple(s) for s in seen)

    return main


def outcomes(program: Callable[[], Awaitable[Any]], chooser: Any) -> tuple[set[str], int]:
    """The distinct outcomes (value, or "deadlock") of a complete search, and its runs."""
    seen: set[str] = set()
    runs = 0
    while chooser.has_more:
        try:
            result = sim.run(program, chooser=chooser)
        except PrunedExecution:
            continue
        runs += 1
        seen.add(repr(result.value) if result.outcome == "ok" else result.outcome)
    assert chooser.is_complete
    return seen, runs


def _programs() -> None:
    print("| program | outcomes | dfs runs | dpor | dpor, locks dropped | lost |")
    print("|---|---|---|---|---|---|")
    for name, spec in PROGRAMS.items():
        program = lock_program(spec)
        full, n_full = outcomes(program, DfsChooser(reduction=False))
        sound, n_sound = outcomes(program, DporChooser(noted_only=True))
        assert sound == full, name
        with dropping_locks(("ALL",)):
            dropped, n_dropped = outcomes(program, DporChooser(noted_only=True))
        lost = ", ".join(sorted(full - dropped)) or "-"
        print(f"| {name} | {len(full)} | {n_full} | {n_sound} | {n_dropped} | {lost} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--locks", default="mmu_lock,umem_mutex")
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--time", type=float, default=600.0)
    parser.add_argument("--programs", action="store_true")
    parser.add_argument("cells", nargs="*")
    args = parser.parse_args()
    if args.programs:
        _programs()
        return
    suffixes = tuple(args.locks.split(","))
    print("| cell | claim with the locks dropped (UNSOUND) | s |")
    print("|---|---|---|")
    for cell in args.cells:
        scenario, protocol = cell.split("/")
        start = time.perf_counter()
        with dropping_locks(suffixes):
            result = explore(
                scenario, protocol, chooser="dpor", schedules=args.budget, time=args.time
            )
        print(f"| {cell} | {result.claim} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
