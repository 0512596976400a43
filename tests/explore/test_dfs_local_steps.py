"""dfs after a local step: one probe per later alternative, not a sleep-set-blocked subtree.

A task's first step that touches nothing shared (every ``classic:twostage_N`` task's) put
that task to sleep in every later alternative of its node, forever: the plain search
ran each of those subtrees to the end only to abandon every run (2^N of them on
twostage_N).  These tests pin the number of runs, that the searches still see every
outcome of the full search, and that dfs finds the classic bugs at the schedule it
found them before.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from odp_async._runtime import checkpoint, sim, task_group
from odp_async._runtime.footprint import Footprint
from odp_async.explore import explore
from odp_async.explore.dfs import DfsChooser, PrunedExecution
from odp_async.shared import SharedCell
from odp_async.sync import Mutex

Program = Callable[[], Awaitable[Any]]


def search(program: Program, chooser: DfsChooser) -> set[tuple[str, str]]:
    """Run `chooser`'s whole search of `program` (noted-only); the outcomes it saw."""
    outcomes: set[tuple[str, str]] = set()
    while chooser.has_more:
        try:
            result = sim.run(program, chooser=chooser, noted_only=True)
        except PrunedExecution:
            continue
        outcomes.add((result.outcome, repr(result.value)))
    assert chooser.is_complete
    return outcomes


def cell_program(seed: int) -> Program:
    """Two or three tasks reading and writing shared cells, some under mutexes.

    Everything shared is a `SharedCell` or a `Mutex` (the program may promise noted-only),
    so each task's first step, which runs up to its first checkpoint, is local.  Each
    task folds what it reads into its result: the final state tells interleavings apart.
    """
    r = random.Random(seed)
    ntasks = r.randint(2, 3)
    names = ("x", "y", "z")[: r.randint(1, 3)]
    nlocks = r.randint(0, 2)
    plans: list[tuple[tuple[Any, ...], ...]] = []
    for _ in range(ntasks):
        ops: list[tuple[Any, ...]] = []
        for _ in range(r.randint(1, 3)):
            kind = r.choice(["r", "w", "lock"] if nlocks else ["r", "w"])
            if kind == "lock":
                inner = tuple((r.choice("rw"), r.choice(names)) for _ in range(r.randint(1, 2)))
                ops.append(("lock", r.randrange(nlocks), inner))
            else:
                ops.append((kind, r.choice(names)))
        plans.append(tuple(ops))
    frozen = tuple(plans)

    async def main() -> tuple[tuple[int, ...], tuple[int, ...]]:
        cells = {name: SharedCell(0, name) for name in names}
        locks = [Mutex(f"l{i}") for i in range(nlocks)]
        results = [SharedCell(0, f"acc{i}") for i in range(ntasks)]

        async def task(i: int) -> None:
            acc = 0
            for op in frozen[i]:
                accesses = op[2] if op[0] == "lock" else (op,)
                if op[0] == "lock":
                    await locks[op[1]].acquire()
                for kind, name in accesses:
                    if kind == "r":
                        acc = acc * 7 + await cells[name].load()
                    else:
                        await cells[name].store(acc + i + 1)
                if op[0] == "lock":
                    locks[op[1]].release()
            results[i].set(acc)

        async with task_group() as tg:
            for i in range(ntasks):
                tg.start_soon(task, i)
        return tuple(cells[n].get() for n in names), tuple(c.get() for c in results)

    return main


SEEDS = [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("seed", SEEDS)
def test_probed_searches_see_every_outcome_of_the_full_search(seed: int) -> None:
    program = cell_program(seed)
    full = search(program, DfsChooser(reduction=False))
    probed = DfsChooser()
    iterative = DfsChooser(iterative=True)
    assert search(program, probed) == full
    assert search(program, iterative) == full
    assert probed.is_exhaustive
    assert iterative.is_exhaustive
    # The mechanism is exercised: first steps are local, later alternatives probed.
    assert probed.alternatives_probed > 0
    assert iterative.alternatives_probed > 0
    assert probed.statistics().probed == probed.alternatives_probed


def test_probes_cost_at_most_one_run_per_alternative() -> None:
    program = cell_program(5)
    chooser = DfsChooser()
    search(program, chooser)
    # Measured: 49 executions, 17 pruned, 7 alternatives probed (2595 without reduction).
    assert chooser.executions < 100
    assert chooser.alternatives_probed >= 1


async def _cancellable_empty_steps() -> tuple[int, int]:
    """Two tasks whose first step writes, then an empty step after a checkpoint: that
    step resumes from a cancellable wait, so a cancellation could change it."""
    x, y = SharedCell(0, "x"), SharedCell(0, "y")

    async def worker(cell: SharedCell[int], k: int) -> None:
        cell.set(k)
        await checkpoint(Footprint())
        await checkpoint(Footprint())
        await cell.store(cell.get() + k)

    async with task_group() as tg:
        tg.start_soon(worker, x, 1, name="a")
        tg.start_soon(worker, y, 2, name="b")
    return x.get(), y.get()


def test_an_empty_step_a_cancellation_could_change_is_not_local() -> None:
    chooser = DfsChooser(symmetry=False)
    outcomes = search(_cancellable_empty_steps, chooser)
    assert outcomes == {("ok", "(2, 4)")}
    assert chooser.executions_pruned > 0  # the sleep sets prune ...
    assert chooser.alternatives_probed == 0  # ... but no step there is local


# --- the classic programs --------------------------------------------------------------


def test_twostage_10_runs_few_blocked_executions() -> None:
    # Before: 1,067 runs abandoned for 20 schedules (2^N growth with the writers).
    result = explore("classic:twostage_10", chooser="dfs", schedules=20)
    assert result.schedules == 20
    assert result.pruned < 150  # measured: 79


# (program, schedule of the first violation) as dfs found them before probes.
FOUND_BEFORE = [
    ("account", 4),
    ("lazy01", 4),
    ("deadlock01", 2),
    ("carter01", 2),
    ("circular_buffer", 2),
    ("stack", 2),
    ("twostage", 2),
    ("wronglock", 3),
    ("reorder_3", 6),
    ("reorder_5", 18),
]


@pytest.mark.parametrize(("name", "index"), FOUND_BEFORE)
def test_dfs_finds_each_classic_bug_where_it_did(name: str, index: int) -> None:
    result = explore(f"classic:{name}", chooser="dfs", schedules=2000, shrink=False)
    assert result.failure is not None
    assert result.failure.index == index


def test_dfs_finds_twostage_10_where_it_did_with_a_twentieth_of_the_runs() -> None:
    result = explore("classic:twostage_10", chooser="dfs", schedules=1000, shrink=False)
    assert result.failure is not None
    assert result.failure.index == 102  # as before
    assert result.pruned < 2000  # measured: 879 (before: 17,562)


@pytest.mark.parametrize("name", ["account_fixed", "lazy01_fixed", "twostage_fixed"])
def test_dfs_still_completes_the_fixed_programs(name: str) -> None:
    result = explore(f"classic:{name}", chooser="dfs", schedules=2000)
    assert result.failure is None
    assert result.complete
    assert result.claim.startswith("complete for preemption bound 3: ")
