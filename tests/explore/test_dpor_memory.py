"""dfs and DPOR keep memory linear in the path: no per-alternative copy of the path."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.footprint import Footprint
from odp_async.explore import dfs as dfs_module
from odp_async.explore.dfs import DfsChooser, PrunedExecution
from odp_async.explore.dpor import DporChooser


def long_program(steps: int) -> Any:
    async def body() -> None:
        async def worker() -> None:
            for _ in range(steps // 2):
                await rt.checkpoint(Footprint.write("x"))

        async with rt.task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(worker)

    return body


def saved_nodes(steps: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Node snapshots the iterative dfs makes over its first level (0 preemptions)."""
    count = [0]
    original = dfs_module._Saved.of.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, node: Any) -> Any:
        count[0] += 1
        return original(cls, node)

    monkeypatch.setattr(dfs_module._Saved, "of", classmethod(counting))
    chooser = DfsChooser(3, iterative=True, symmetry=False)
    program = long_program(steps)
    while chooser.has_more and chooser.bound == 0:
        try:
            sim.run(program, chooser=chooser, max_steps=10 * steps)
        except PrunedExecution:
            continue
    return count[0]


def test_dfs_saves_each_node_once_per_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every step of the level-0 run has a preemptive alternative: one work item each.
    # Copying the path per item made the snapshots quadratic (n^2 / 2); shared
    # prefixes make them linear.
    small, large = saved_nodes(100, monkeypatch), saved_nodes(400, monkeypatch)
    assert small > 50
    assert large < 5 * small


def test_dpor_path_is_one_node_per_step() -> None:
    chooser = DporChooser()
    program = long_program(200)
    sim.run(program, chooser=chooser, max_steps=10_000)
    assert chooser.has_more
    # The tree holds the path plus nothing per alternative but a queue entry.
    assert chooser.max_depth <= 200 + 10
    assert len(chooser._queue) <= chooser.max_depth
