"""A task group's join orders its children's ends before the parent's next step.

`odp_async.explore.dpor.DporChooser` adds, to the happens-before of each execution, an
edge from the last event of every child of a task group to the step that resumes the
parent parked at the group's join (`DporChooser._joined`), when every child was spawned
by the parent itself: such a child always ends before that step, so a race between them
(the children's ends read the group, the resumed parent writes it; the parent's step
then reads what the children wrote) can never be reversed.  Before, such a race queued
every task runnable before the child's step (the parent was parked there), and those
runs were sleep-set blocked.

A spawn (`start_soon`) by a task other than the group's parent, and the parent's exit
from the join, now each write the group in a footprint-tracking run (the parent's own
spawns read it: the parent is in the group's body, not at the join, so the children's
ends cannot wake it and the count moves commute).  Before, a spawn noted nothing, and
DPOR under ``noted_only`` missed the run where the parent had left the join first and
the spawn was refused (`spawned_from_outside`); with an outside spawn noted as a read it
still does.

The guard: on small programs DPOR reaches exactly the outcomes (final state and every
value each task saw) of an unreduced exhaustive search, including traps (a task of an
outer group still running when an inner group's join resumes; tasks spawned into the
group by a task outside it, before the join's wake, between the wake and the parent's
step, or after it, or beside the exit of a group with no child of its own: without the
exit's write DPOR misses the accepted spawn there); an edge from every task the parent
spawned, whatever its group, loses an outcome of the first trap; and the rule reduces
(fewer sleep-set-blocked runs on a fork-join program).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.footprint import ReadOf
from odp_async.errors import ProtocolViolation
from odp_async.explore import dpor
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.tracked import tracked
from tests._search import Search

Program = Callable[[], Awaitable[Any]]


@tracked
@attrs.define(eq=False)
class Box:
    """Shared state of one program (named: objects made in one step are told apart by
    name)."""

    name: str
    x: int = 0
    y: int = 0
    seen: tuple[Any, ...] = ()


async def fork_join() -> Any:
    """Three children each write their own box and read the first one's, the parent
    reads every box after the join."""
    boxes = tuple(Box(f"box{k}") for k in range(3))

    async def child(k: int) -> None:
        await rt.checkpoint()
        boxes[k].x = 1
        await rt.checkpoint()
        boxes[k].y = boxes[0].x

    async with rt.task_group() as tg:
        for k in range(3):
            tg.start_soon(child, k)
    boxes[0].seen += tuple(b.y for b in boxes)
    return boxes[0]


async def nested_groups() -> Any:
    """Trap: `slow` is a child of the outer group, still running when the inner
    group's join resumes main; main's read there races with its write."""
    box = Box("box")

    async def slow() -> None:
        await rt.checkpoint()
        box.x = 1
        await rt.checkpoint()
        box.y = 1

    async def quick() -> None:
        await rt.checkpoint()
        box.y = 2

    async with rt.task_group() as outer:
        outer.start_soon(slow)
        async with rt.task_group() as inner:
            inner.start_soon(quick)
        box.seen += (box.x,)
    box.seen += (box.y,)
    return box


async def spawned_from_outside() -> Any:
    """Trap: `spawner` (a task of the outer group) spawns `late` into the inner group;
    the inner join may resume main before or after that spawn (then refused), and
    `late` writes what main reads after the join."""
    box = Box("box")
    holder: list[Any] = []

    async def late() -> None:
        box.x = 5
        await rt.checkpoint()
        box.y = 5

    async def quick() -> None:
        await rt.checkpoint()
        box.y = 2

    async def spawner() -> None:
        await rt.checkpoint()
        try:
            holder[0].start_soon(late)
        except ProtocolViolation:
            box.seen += ("refused",)

    async with rt.task_group() as outer:
        async with rt.task_group() as inner:
            holder.append(inner)
            outer.start_soon(spawner)
            inner.start_soon(quick)
        box.seen += (box.x, box.y)
    return box


async def spawn_beside_an_exit() -> Any:
    """Trap: the inner group has no child of its own, so main leaves its join without
    parking (the exit must still write the group); `spawner` spawns into it before that
    (main then waits for `late`) or after (refused, noted in a box main never reads)."""
    box = Box("box")
    refusals = Box("refusals")
    holder: list[Any] = []

    async def late() -> None:
        box.x = 5

    async def spawner() -> None:
        try:
            holder[0].start_soon(late)
        except ProtocolViolation:
            refusals.y = 1

    async with rt.task_group() as outer:
        async with rt.task_group() as inner:
            holder.append(inner)
            outer.start_soon(spawner)
            await rt.checkpoint()
        box.seen += (box.x,)
    box.y = refusals.y  # after the outer join: every task has ended
    return box


def late_spawn(spawner_steps: int, late_steps: int, quick_steps: int) -> Program:
    """`spawned_from_outside` with more steps: the spawn may land before the inner
    group's join wakes main, between the wake and main's step (main parks again until
    `late` ends), or after it (refused)."""

    async def main() -> Any:
        box = Box("box")
        holder: list[Any] = []

        async def late() -> None:
            for _ in range(late_steps):
                box.x += 1
                await rt.checkpoint()
            box.y = 5

        async def quick() -> None:
            for _ in range(quick_steps):
                await rt.checkpoint()
            box.y = 2

        async def spawner() -> None:
            for _ in range(spawner_steps):
                await rt.checkpoint()
            try:
                holder[0].start_soon(late)
            except ProtocolViolation:
                box.seen += ("refused",)

        async with rt.task_group() as outer:
            async with rt.task_group() as inner:
                holder.append(inner)
                outer.start_soon(spawner)
                inner.start_soon(quick)
            box.seen += (box.x, box.y)
            await rt.checkpoint()
            box.seen += (box.x,)
        return box

    main.__name__ = f"late_spawn_{spawner_steps}{late_steps}{quick_steps}"
    return main


def _outcome(box: Any) -> str:
    return repr((box.x, box.y, box.seen))  # read after the run: no tracking in progress


def outcomes(program: Program, chooser: Any) -> tuple[set[str], int]:
    """Every outcome the chooser's search reaches, and its sleep-set-blocked runs."""
    found: set[str] = set()
    search = Search(chooser, lambda: sim.run(program, chooser=chooser))
    for result in search:
        assert result.error is None, result.error
        found.add(_outcome(result.value))
    return found, search.pruned


PROGRAMS = [
    fork_join,
    nested_groups,
    spawned_from_outside,
    spawn_beside_an_exit,
    *(late_spawn(a, b, c) for a, b, c in ((0, 1, 0), (1, 2, 1), (2, 1, 2), (2, 2, 0))),
]
TRAPS = [nested_groups, spawned_from_outside, spawn_beside_an_exit]


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.__name__ for p in PROGRAMS])
def test_dpor_finds_every_outcome_of_an_unreduced_search(program: Program) -> None:
    expected, _ = outcomes(program, DfsChooser(reduction=False))
    for noted_only in (False, True):
        got, _ = outcomes(program, DporChooser(noted_only=noted_only))
        assert got == expected


def test_the_traps_have_several_outcomes() -> None:
    # Each trap's outcomes depend on the order the wrong rules would fix.
    for program in TRAPS:
        expected, _ = outcomes(program, DfsChooser(reduction=False))
        assert len(expected) >= 2, program.__name__


def test_the_join_reduces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork-join: without the join edges each child's last step raced with the resumed
    parent's, and the runs those races queued were sleep-set blocked (7 traces and 10
    blocked runs; with the edges 7 and 3)."""
    found, pruned = outcomes(fork_join, DporChooser(noted_only=True))
    assert pruned == 3
    monkeypatch.setattr(dpor.DporChooser, "_joined", lambda self, *args: [])
    assert outcomes(fork_join, DporChooser(noted_only=True)) == (found, 10)


def _every_task_of_the_parent(
    self: Any, j: int, tid: int, last_of: dict[int, int], slot: dict[int, int]
) -> list[int]:
    # A wrong rule: at a join, every task the parent spawned (in any group) has ended.
    if j not in self._joins:
        return []
    _, parent = self._joins[j]
    return [
        last_of[slot[child]]
        for child, spawner in self._spawned_by.items()
        if child != tid
        and spawner >= 0
        and self._events[spawner][1] == parent
        and slot[child] in last_of
    ]


def test_a_wrong_rule_loses_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above catches a rule that orders too much: with an edge from every
    task the parent spawned (whatever its group), DPOR misses an outcome of the nested
    groups."""
    expected, _ = outcomes(nested_groups, DfsChooser(reduction=False))
    monkeypatch.setattr(dpor.DporChooser, "_joined", _every_task_of_the_parent)
    got, _ = outcomes(nested_groups, DporChooser(noted_only=True))
    assert got < expected


def test_a_spawn_from_outside_noted_as_a_read_loses_outcomes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spawn into the group by a task other than its parent must write the group: as a
    read (as the parent's own spawns are), DPOR misses the refused spawn."""
    programs = [spawned_from_outside, late_spawn(0, 1, 0), late_spawn(1, 2, 1)]
    expected = [outcomes(p, DfsChooser(reduction=False))[0] for p in programs]
    spawn = sim.SimTaskGroup.start_soon

    def as_a_read(self: Any, func: Any, *args: Any, name: object = None) -> None:
        spawn(self, func, *args, name=name)
        fp = self._rt._fp
        if fp is not None and self in fp:
            fp.discard(self)
            fp.add(ReadOf(self))

    monkeypatch.setattr(sim.SimTaskGroup, "start_soon", as_a_read)
    for program, want in zip(programs, expected, strict=True):
        got, _ = outcomes(program, DporChooser(noted_only=True))
        assert got < want, program.__name__
