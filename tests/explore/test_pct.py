"""PctChooser: finds the classic bugs, is deterministic per seed, follows PCT's rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.choosers import ReplayChooser
from odp_async.errors import InvalidArgument
from odp_async.explore.pct import PctChooser
from odp_async.scenarios.classic import lock_order, lost_update, two_preemptions

Program = Callable[[], Awaitable[Any]]
SEEDS = range(10)


def runs_until_bug(program: Program, chooser: PctChooser, budget: int) -> int | None:
    """Run until the first failing execution; adapt `k` to the longest run seen so far."""
    for i in range(1, budget + 1):
        result = sim.run(program, chooser=chooser)
        chooser.steps_hint = chooser.max_choice_points
        if result.outcome != "ok":
            return i
    return None


# Measured over seeds 0..9 with the adaptive hint: at most 14 executions for the first two,
# at most 75 for two_preemptions (PCT's bound for n=3 tasks, k=5, d=3 is 1/75 per run).
@pytest.mark.parametrize(
    ("program", "budget"),
    [
        pytest.param(lost_update, 40, id="lost_update"),
        pytest.param(lock_order, 40, id="lock_order"),
        pytest.param(two_preemptions, 200, id="two_preemptions"),
    ],
)
def test_finds_the_classic_bugs_at_depth_3(program: Program, budget: int) -> None:
    found = [runs_until_bug(program, PctChooser(seed, depth=3), budget) for seed in SEEDS]
    print(f"{program.__name__}: first failing execution per seed: {found}")
    assert None not in found


def test_two_preemptions_is_beyond_depth_2() -> None:
    # The bug needs three ordering constraints: with one change point PCT cannot order
    # them (it can only preempt once), whatever the seed.
    for seed in range(5):
        assert runs_until_bug(two_preemptions, PctChooser(seed, depth=2), 100) is None


def _schedules(seed: int, runs: int = 30, **kwargs: Any) -> list[tuple[int, ...]]:
    c = PctChooser(seed, **kwargs)
    out = []
    for _ in range(runs):
        out.append(sim.run(two_preemptions, chooser=c).schedule)
        c.steps_hint = c.max_choice_points
    return out


def test_same_seed_same_executions() -> None:
    assert _schedules(7) == _schedules(7)
    assert _schedules(7, depth=4, steps_hint=9) == _schedules(7, depth=4, steps_hint=9)
    assert _schedules(7) != _schedules(8)


def test_every_execution_replays() -> None:
    c = PctChooser(3)
    for _ in range(20):
        original = sim.run(two_preemptions, chooser=c)
        replayed = sim.run(two_preemptions, chooser=ReplayChooser(original.schedule))
        assert (replayed.outcome, replayed.schedule) == (original.outcome, original.schedule)


async def _two_long_tasks() -> None:
    async def worker(name: str) -> None:
        for i in range(10):
            await rt.checkpoint((name, i))

    async with rt.task_group() as tg:
        tg.start_soon(worker, "a", name="a")
        tg.start_soon(worker, "b", name="b")


def _preemptions(seed: int, depth: int, steps_hint: int) -> list[int]:
    """Switches away from a worker that still had steps to run, per execution."""
    c = PctChooser(seed, depth=depth, steps_hint=steps_hint)
    out = []
    for _ in range(40):
        result = sim.run(_two_long_tasks, chooser=c, trace=True)
        assert result.trace is not None
        ids = [task_id for _, task_id, _, _ in result.trace if task_id != 0]
        out.append(
            sum(1 for i in range(len(ids) - 1) if ids[i] != ids[i + 1] and ids[i] in ids[i + 1 :])
        )
    return out


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_at_most_depth_minus_one_priority_changes(depth: int) -> None:
    # Two tasks that never block: a change point preempts at most once, so a run has at
    # most depth - 1 preemptions, and some run has that many.
    preemptions = _preemptions(seed=depth, depth=depth, steps_hint=19)
    assert max(preemptions) == depth - 1
    if depth == 1:
        assert set(preemptions) == {0}  # strict priority order: one task, then the other


def test_draws_come_from_the_seeded_generator() -> None:
    async def drawing() -> list[int]:
        return [rt.draw(6, "die") for _ in range(20)]

    first = sim.run(drawing, chooser=PctChooser(5)).value
    assert first == sim.run(drawing, chooser=PctChooser(5)).value
    assert isinstance(first, list)
    assert set(first) <= set(range(6))
    assert len(set(first)) > 1


def test_execution_state_and_hint() -> None:
    c = PctChooser(1, depth=3, steps_hint=50)
    assert (c.executions, c.max_choice_points) == (0, 0)
    sim.run(lost_update, chooser=c)
    assert c.executions == 1
    assert c.last_choice_points == c.max_choice_points > 0
    seed_of_first = c.execution_seed
    c.steps_hint = c.last_choice_points
    assert c.steps_hint == c.last_choice_points
    sim.run(lost_update, chooser=c)
    assert c.execution_seed != seed_of_first
    assert repr(c) == f"PctChooser(seed=1, depth=3, steps_hint={c.steps_hint})"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"seed": "1"}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": 1, "depth": 0}, "depth"),
        ({"seed": 1, "depth": 2.0}, "depth"),
        ({"seed": 1, "steps_hint": 0}, "steps_hint"),
        ({"seed": 1, "steps_hint": None}, "steps_hint"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgument, match=name) as info:
        PctChooser(**kwargs)
    assert name in info.value.args


def test_bad_hint_update() -> None:
    c = PctChooser(0)
    with pytest.raises(InvalidArgument, match="steps_hint"):
        c.steps_hint = 0
    assert c.steps_hint == 100
