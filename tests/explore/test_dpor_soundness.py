"""DPOR over noted footprints finds every outcome an unreduced search finds, on small
programs of loads and stores on shared cells (the shape of a litmus test).

The first two programs are the ones on which an earlier variant (queueing the racing task
beside an initial that already covered the race) lost outcomes: a regression guard.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.explore.shared import SharedCell
from tests._search import Search

Op = tuple[Any, ...]


def make(spec: list[list[Op]]) -> Callable[[], Awaitable[Any]]:
    async def main() -> Any:
        cells = [SharedCell(0, f"c{i}") for i in range(3)]
        seen: list[list[int]] = [[] for _ in spec]

        async def worker(k: int, ops: list[Op]) -> None:
            for op in ops:
                if op[0] == "r":
                    seen[k].append(await cells[op[1]].load())
                else:
                    await cells[op[1]].store(op[2])

        async with rt.task_group() as tg:
            for k, ops in enumerate(spec):
                tg.start_soon(worker, k, ops)
        return tuple(c.get() for c in cells), tuple(tuple(s) for s in seen)

    return main


def outcomes(program: Callable[[], Awaitable[Any]], chooser: Any) -> set[str]:
    seen: set[str] = set()
    for result in Search(chooser, lambda: sim.run(program, chooser=chooser)):
        seen.add(repr(result.value))
    return seen


def random_spec(seed: int) -> list[list[Op]]:
    rng = random.Random(seed)
    spec: list[list[Op]] = []
    for _ in range(rng.choice([2, 3, 3])):
        ops: list[Op] = []
        for _ in range(rng.choice([1, 2, 3])):
            if rng.random() < 0.5:
                ops.append(("r", rng.randrange(3)))
            else:
                ops.append(("w", rng.randrange(3), rng.randrange(1, 4)))
        spec.append(ops)
    return spec


SPECS = [
    [[("w", 0, 2), ("r", 1), ("r", 1)], [("r", 0)], [("r", 0), ("w", 1, 3)]],
    [[("w", 1, 1), ("r", 2), ("w", 1, 3)], [("w", 2, 1)], [("r", 1), ("w", 2, 1), ("r", 2)]],
    *[random_spec(seed) for seed in range(8)],
]


@pytest.mark.parametrize("spec", SPECS, ids=[f"p{i}" for i in range(len(SPECS))])
def test_dpor_finds_every_outcome(spec: list[list[Op]]) -> None:
    # One test per spec, both values of noted_only: the unreduced search runs once.
    program = make(spec)
    expected = outcomes(program, DfsChooser(reduction=False))
    for noted_only in (False, True):
        assert outcomes(program, DporChooser(noted_only=noted_only)) == expected, noted_only
