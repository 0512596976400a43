"""dfs and DPOR keep memory linear in the path: no per-alternative copy of the path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.footprint import Footprint
from odp_async.explore import dfs as dfs_module
from odp_async.explore.dfs import DfsChooser, PrunedExecution
from odp_async.explore.dpor import DporChooser
from odp_async.shared import SharedCell


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


def test_equal_step_footprints_share_their_key_sets() -> None:
    # A step's footprint stays in its node (and in every work item saved below it):
    # the steps writing "x" hold one set of keys, not one frozenset each.
    chooser = DfsChooser(3, iterative=True, symmetry=False)
    sim.run(long_program(100), chooser=chooser, max_steps=1_000)
    fps = [node.chosen_fp for node in chooser._path if node.chosen_fp is not None]
    assert len(fps) >= 45  # a node per step while both tasks run
    assert len({id(fp.writes) for fp in fps}) == 1
    assert len({id(fp.reads) for fp in fps if not fp.reads}) == 1


async def polling() -> None:
    """A waiter polls a cell (one step per poll) until a setter sets it: the level-0 run
    polls up to the step bound, and every level-1 run replays that prefix up to where
    the setter preempts it."""
    flag = SharedCell(False, "flag")

    async def waiter() -> None:
        while not flag.get():
            await rt.checkpoint("poll")

    async def setter() -> None:
        await rt.checkpoint("s")
        flag.set(True)

    async with rt.task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(setter)


def kept_snapshots(chooser: DfsChooser) -> int:
    """The saved nodes (chain links) the chooser's pending work items hold."""
    seen: set[int] = set()
    for item in (*chooser._this_level, *chooser._next_level):
        link = item.ancestors
        while link is not None and id(link) not in seen:
            seen.add(id(link))
            link = link.parent
    return len(seen)


def test_dfs_polling_loop_keeps_one_copy_of_the_replayed_prefix() -> None:
    # Every level-1 run replays the level-0 prefix (hundreds of polls) and saves a work
    # item or two past it.  Re-snapshotting the restored prefix for those items copied
    # the whole path once per schedule (about 7 MB per schedule at 50,000 steps); the
    # items share the restored chain, so the kept snapshots grow by a few per run.
    steps = 400
    chooser = DfsChooser(3, iterative=True)
    kept: dict[int, int] = {}
    ran = 0
    while ran < 60 and chooser.has_more:
        try:
            sim.run(polling, chooser=chooser, max_steps=steps)
        except PrunedExecution:
            continue
        ran += 1
        if ran in (10, 60):
            kept[ran] = kept_snapshots(chooser)  # what the runs before this one saved
    assert chooser.bound == 1  # still the first preemption level: no new frontier
    assert kept[60] - kept[10] <= 5 * 50  # was about `steps` per run
    assert steps / 2 < kept[10] < 2 * steps


USER_POLLING = """
from odp_async import checkpoint, task_group
from odp_async.explore import SharedCell


async def spin_await() -> None:
    flag = SharedCell(False, "flag")

    async def waiter() -> None:
        while not flag.get():
            await checkpoint("poll")

    async def setter() -> None:
        await checkpoint("s")
        flag.set(True)

    async with task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(setter)
"""

PEAK = """
import sys
import tracemalloc

from odp_async.explore import check
from spin import spin_await

tracemalloc.start()
result = check(spin_await, chooser="dfs", schedules=int(sys.argv[1]), max_steps=300)
assert result.failure is None and not result.complete, result.claim
print(tracemalloc.get_traced_memory()[1])
"""


def test_dfs_peak_memory_on_a_user_polling_loop_does_not_grow_per_schedule(
    tmp_path: Path,
) -> None:
    # A user's module, explored by `check` in a fresh process under tracemalloc: the
    # peak after 60 schedules is about the peak after 20 (the path, once).  Copying
    # the replayed prefix per schedule added about 40 KB per schedule here.
    (tmp_path / "spin.py").write_text(USER_POLLING)
    root = str(Path(__file__).resolve().parents[2])

    def peak(schedules: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(PEAK), str(schedules)],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([root, str(tmp_path)])),
        )
        return int(out.stdout)

    few, many = peak(20), peak(60)
    assert many < few * 1.25
