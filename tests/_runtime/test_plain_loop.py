"""The plain step loop (no footprints, no trace, a chooser asked only among several
tasks) runs exactly the steps the general loop runs: same schedule, steps, outcome,
virtual time and task ends, for programs that park, sleep, cancel, fail and deadlock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import odp_async
from odp_async import sim
from odp_async._runtime.choosers import RandomChooser
from odp_async._runtime.sim import CHECKPOINT, CHECKPOINT_TRAP


class General:
    """`RandomChooser`'s answers, asked at every step: this forces the general loop."""

    ask_always = True

    def __init__(self, seed: int) -> None:
        self.inner = RandomChooser(seed)

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return self.inner.choose(runnable, last) if len(runnable) > 1 else 0

    def draw(self, n: int, label: object) -> int:
        return self.inner.draw(n, label)


async def locks() -> int:
    m = odp_async.Mutex("m")
    done = odp_async.Completion()
    total = [0]

    async def worker(k: int) -> None:
        for _ in range(3):
            async with m:
                await odp_async.checkpoint(k)
                total[0] += odp_async.draw(3)
        if k == 2:
            done.complete()

    async def sleeper() -> None:
        with odp_async.move_on_after(0.5):
            await odp_async.sleep(1)
        await done.wait()

    async with odp_async.task_group() as tg:
        for k in range(3):
            tg.start_soon(worker, k)
        tg.start_soon(sleeper)
    return total[0]


async def failing() -> None:
    async def bad() -> None:
        await odp_async.checkpoint()
        raise ValueError("boom")

    async def victim() -> None:
        while True:
            await odp_async.sleep(1)

    async with odp_async.task_group() as tg:
        tg.start_soon(bad)
        tg.start_soon(victim)


async def abba() -> None:
    a, b = odp_async.Mutex("a"), odp_async.Mutex("b")

    async def one(x: odp_async.Mutex, y: odp_async.Mutex) -> None:
        async with x:
            await odp_async.checkpoint()
            async with y:
                pass

    async with odp_async.task_group() as tg:
        tg.start_soon(one, a, b)
        tg.start_soon(one, b, a)


@pytest.mark.parametrize(
    ("program", "expected"),
    [(locks, {"ok"}), (failing, {"error"}), (abba, {"ok", "deadlock"})],
)
def test_the_plain_loop_runs_the_general_loops_steps(program: Any, expected: set[str]) -> None:
    outcomes = set()
    for seed in range(25):
        plain = sim.run(program, chooser=RandomChooser(seed))
        general = sim.run(program, chooser=General(seed))
        outcomes.add(plain.outcome)
        assert (plain.outcome, plain.schedule, plain.steps, plain.time) == (
            general.outcome,
            general.schedule,
            general.steps,
            general.time,
        )
        assert plain.value == general.value
        assert [(e.step, e.task, type(e.error)) for e in plain.ends] == [
            (e.step, e.task, type(e.error)) for e in general.ends
        ]
    assert outcomes == expected


def test_a_checkpoint_yields_one_constant_and_leaves_its_label_on_the_task() -> None:
    # The sim's checkpoint builds no ``(op, label)`` tuple: it puts the label where the
    # driver would (the task's `pending`) and yields `CHECKPOINT_TRAP`.
    seen: list[tuple[object, object]] = []

    async def main() -> None:
        gen: Any = odp_async.checkpoint("here")
        trapped = gen.send(None)
        seen.append((trapped, odp_async.current_task().pending))  # type: ignore[attr-defined]
        gen.close()

    assert sim.run(main).outcome == "ok"
    assert seen == [(CHECKPOINT_TRAP, "here")]


class Looking(General):
    """`General`, noting what every runnable task is about to do when asked."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.pending: list[tuple[object, ...]] = []

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        self.pending.append(tuple(t.pending for t in runnable))
        return super().choose(runnable, last)


def test_choosers_and_traces_see_each_checkpoints_label() -> None:
    async def labelled(k: int) -> None:
        for j in range(2):
            await odp_async.checkpoint(f"{k}.{j}")

    async def main() -> None:
        async with odp_async.task_group() as tg:
            tg.start_soon(labelled, 1)
            tg.start_soon(labelled, 2)

    chooser = Looking(0)
    result = sim.run(main, chooser=chooser, trace=True)
    assert result.outcome == "ok"
    labels = {label for *_, op, label in result.trace or () if op == CHECKPOINT}
    assert labels == {"1.0", "1.1", "2.0", "2.1"}
    assert {p for seen in chooser.pending for p in seen} >= {"1.0", "2.0", "1.1"}
