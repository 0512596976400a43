"""The sim runtime: determinism, replay, virtual time, structured concurrency, deadlocks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.choosers import RandomChooser, ReplayChooser
from odp_async.errors import ForeignAwait, InvalidArgument, ReplayMismatch
from odp_async.sync import Mutex


async def _interleaved() -> list[tuple[str, int]]:
    log: list[tuple[str, int]] = []

    async def worker(name: str) -> None:
        for i in range(4):
            await rt.checkpoint((name, i))
            log.append((name, i))
        log.append((name, rt.draw(5, "value")))

    async with rt.task_group() as tg:
        for name in "abc":
            tg.start_soon(worker, name, name=name)
    return log


def test_same_seed_same_run_bit_for_bit() -> None:
    first = sim.run(_interleaved, seed=7, trace=True)
    again = sim.run(_interleaved, seed=7, trace=True)
    assert first.outcome == "ok"
    assert (first.value, first.schedule, first.trace, first.steps) == (
        again.value,
        again.schedule,
        again.trace,
        again.steps,
    )


def test_seeds_explore_different_interleavings() -> None:
    values = {tuple(sim.run(_interleaved, seed=s).value) for s in range(20)}  # type: ignore[arg-type]
    assert len(values) > 10


def test_same_seed_same_run_in_another_process() -> None:
    here = sim.run(_interleaved, seed=11)
    code = textwrap.dedent(
        """
        import json
        from odp_async._runtime import sim
        from tests._runtime.test_sim import _interleaved
        r = sim.run(_interleaved, seed=11)
        print(json.dumps({"schedule": list(r.schedule), "value": r.value}))
        """
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    there = json.loads(out.stdout)
    assert there["schedule"] == list(here.schedule)
    assert [tuple(x) for x in there["value"]] == here.value


def test_replay_reproduces_the_run() -> None:
    original = sim.run(_interleaved, seed=3, trace=True)
    replayed = sim.run(_interleaved, chooser=ReplayChooser(original.schedule), trace=True)
    assert replayed.trace == original.trace
    assert replayed.value == original.value


def test_replay_that_does_not_fit_fails_loudly() -> None:
    with pytest.raises(ReplayMismatch, match="offers only"):
        sim.run(_interleaved, chooser=ReplayChooser([0, 9]))
    with pytest.raises(ReplayMismatch, match="has 2 choices"):
        sim.run(_interleaved, chooser=ReplayChooser([0, 0]))


def test_replay_can_hand_over_to_another_chooser() -> None:
    r = sim.run(_interleaved, chooser=ReplayChooser([2, 2], then=RandomChooser(1)))
    assert r.outcome == "ok"
    assert r.schedule[:2] == (2, 2)


def test_virtual_time_jumps_to_the_next_deadline() -> None:
    async def sleeper(log: list[tuple[float, str]], delay: float, name: str) -> None:
        await rt.sleep(delay)
        log.append((rt.now(), name))

    async def main() -> list[tuple[float, str]]:
        log: list[tuple[float, str]] = []
        async with rt.task_group() as tg:
            tg.start_soon(sleeper, log, 30.0, "slow")
            tg.start_soon(sleeper, log, 0.5, "fast")
            tg.start_soon(sleeper, log, 2.0, "middle")
        return log

    r = sim.run(main)
    assert r.value == [(0.5, "fast"), (2.0, "middle"), (30.0, "slow")]
    assert r.time == 30.0


def test_cancelled_is_caught_by_the_outermost_cancelled_scope() -> None:
    async def main() -> tuple[bool, bool]:
        with rt.cancel_scope() as outer, rt.cancel_scope() as inner:
            outer.cancel()
            inner.cancel()
            await rt.checkpoint()
        return inner.cancelled_caught, outer.cancelled_caught

    assert sim.run(main).value == (False, True)


def test_cancel_from_another_task_reaches_a_parked_task() -> None:
    async def main() -> str:
        m = Mutex("m")
        scope = rt.cancel_scope()
        result: list[str] = []

        async def waiter() -> None:
            with scope:
                await m.acquire()
            result.append("acquired" if m.owner is rt.current_task() else "gave up")

        await m.acquire()
        async with rt.task_group() as tg:
            tg.start_soon(waiter)
            await rt.sleep(1)
            scope.cancel()
        m.release()
        assert not m.locked()
        return result[0]

    for seed in range(10):
        assert sim.run(main, seed=seed).unwrap() == "gave up"


def test_deadlock_names_every_blocked_task() -> None:
    async def main() -> None:
        a, b = Mutex("a"), Mutex("b")

        async def first() -> None:
            async with a:
                await rt.sleep(1)
                async with b:
                    pass

        async def second() -> None:
            async with b:
                await rt.sleep(1)
                async with a:
                    pass

        async with rt.task_group() as tg:
            tg.start_soon(first, name="A")
            tg.start_soon(second, name="B")

    r = sim.run(main)
    assert r.outcome == "deadlock"
    assert r.deadlock is not None
    assert [b.task for b in r.deadlock.cycle] == ["A", "B"]
    assert r.deadlock.describe() == (
        "A waits for Mutex 'b' held by B; B waits for Mutex 'a' held by A; "
        "also blocked: main waits for its task group's children to finish: A, B"
    )
    with pytest.raises(sim.DeadlockError, match="A waits for Mutex 'b' held by B"):
        r.unwrap()


def test_step_limit_stops_a_livelock() -> None:
    async def spin() -> None:
        while True:
            await rt.checkpoint("spin")

    r = sim.run(spin, max_steps=500)
    assert (r.outcome, r.steps) == ("step-limit", 500)
    with pytest.raises(sim.StepLimitExceeded):
        r.unwrap()


def test_finally_blocks_run_when_a_stopped_run_is_unwound() -> None:
    unwound: list[str] = []

    async def spin() -> None:
        try:
            while True:
                await rt.checkpoint()
        finally:
            unwound.append("spin")

    sim.run(spin, max_steps=10)
    assert unwound == ["spin"]


def test_awaiting_a_foreign_trap_is_a_usage_error_not_an_outcome() -> None:
    async def main() -> None:
        await asyncio.sleep(0)

    with pytest.raises(ForeignAwait, match=r"bare yield \(None\) - e.g. asyncio.sleep\(0\)"):
        sim.run(main)


def test_task_errors_are_outcomes_not_exceptions() -> None:
    async def main() -> None:
        await rt.checkpoint()
        raise ValueError("from the model")

    r = sim.run(main)
    assert r.outcome == "error"
    assert isinstance(r.error, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"max_steps": 0}, "max_steps"), ({"seed": "x"}, "'x'"), ({"seed": 1.5}, "1.5")],
)
def test_bad_run_arguments(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        sim.run(_interleaved, **kwargs)  # type: ignore[arg-type]


def test_start_soon_needs_an_async_function() -> None:
    def not_async() -> int:
        return 1

    async def main() -> None:
        async with rt.task_group() as tg:
            tg.start_soon(not_async)  # type: ignore[arg-type]

    r = sim.run(main)
    assert isinstance(r.error, ExceptionGroup)  # the body's error, grouped as anyio does
    [error] = r.error.exceptions
    assert isinstance(error, InvalidArgument)
    assert "not_async" in str(error)


def test_bad_replay_schedule_entries() -> None:
    with pytest.raises(InvalidArgument, match="entry 1"):
        ReplayChooser([0, -1])


def test_sleeping_task_cancelled_by_its_group() -> None:
    async def main() -> float:
        async with rt.task_group() as tg:
            tg.start_soon(rt.sleep, 100)
            await rt.sleep(1)
            tg.cancel_scope.cancel()
        return rt.now()

    assert sim.run(main).unwrap() == 1.0


def test_a_scope_deadline_does_not_fire_after_the_scope_exited() -> None:
    async def main() -> tuple[bool, float]:
        with rt.move_on_after(5) as scope:
            await rt.checkpoint()
        await rt.sleep(1)
        return scope.cancel_called, rt.now()

    assert sim.run(main).unwrap() == (False, 1.0)


def test_unhashable_labels_are_fine_under_reduction() -> None:
    from odp_async.explore.dfs import DfsChooser

    async def main() -> None:
        async def worker() -> None:
            for i in range(2):
                await rt.checkpoint(("step", [i]))

        async with rt.task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(worker)

    chooser = DfsChooser(2)
    assert sim.run(main, chooser=chooser).outcome == "ok"
