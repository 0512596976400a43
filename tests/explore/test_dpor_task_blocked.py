"""`task_blocked` keeps DPOR sound: every order of a park, a wake and a look at them.

The ODP core asks `odp_async._runtime.task_blocked` of a pending fault at every
invalidation end when the protocol leaves `OdpProtocol.holds_back` to it (see
"Liveness" in `odp_async.odp.ucontext`).  Which answer it gets depends on whether the
fault's park (or wake) came before the end, so a search that reduces by footprints must
never take the two steps for independent.  The sim makes the asking step's footprint
unknown (it conflicts with every step).  The guard: on a small program where a task
looks at a task that parks and is woken, DPOR reaches exactly the answers of an
unreduced exhaustive search; with a look that notes nothing it misses one.  (A noted
read of a per-task resource that the task's parks and wakes write also missed one,
``(False, True)`` with two looks under ``noted_only``: so the look is unknown.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.sync import Completion
from odp_async.tracked import tracked
from tests.explore.test_dpor_unchanged_stores import outcomes


@tracked
@attrs.define(eq=False)
class Box:
    """Where the watched task leaves its handle, and what the looker saw."""

    name: str
    task: object = None
    seen: tuple[Any, ...] = ()


def program(*, looks: int = 1) -> Callable[[], Awaitable[Any]]:
    async def main() -> Any:
        box = Box("box")
        done = Completion("done")

        async def parker() -> None:
            box.task = rt.current_task()
            await rt.checkpoint()
            await done.wait()

        async def looker() -> None:
            for _ in range(looks):
                await rt.checkpoint()
                task = box.task
                box.seen += (None if task is None else rt.task_blocked(task),)

        async def waker() -> None:
            await rt.checkpoint()
            done.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(parker)
            tg.start_soon(looker)
            tg.start_soon(waker)
        return box.seen

    return main


def test_the_sim_answers_parked_and_not() -> None:
    seen = outcomes(program(), DfsChooser(reduction=False))
    assert seen == {repr((v,)) for v in (None, False, True)}


@pytest.mark.parametrize("looks", [1, 2])
def test_dpor_reaches_every_answer_of_an_unreduced_search(looks: int) -> None:
    expected = outcomes(program(looks=looks), DfsChooser(reduction=False))
    for noted_only in (False, True):
        found = outcomes(program(looks=looks), DporChooser(noted_only=noted_only))
        assert found == expected, noted_only
    assert outcomes(program(looks=looks), DfsChooser(reduction=True)) == expected


def test_a_look_that_notes_nothing_loses_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's own check: the unknown footprint is what keeps every answer."""
    expected = outcomes(program(looks=2), DfsChooser(reduction=False))

    def unnoted(self: sim.SimRuntime, task: Any) -> bool:
        return task.state in (sim._BLOCKED, sim._SLEEPING)

    monkeypatch.setattr(sim.SimRuntime, "task_blocked", unnoted)
    assert outcomes(program(looks=2), DporChooser(noted_only=True)) < expected


@pytest.mark.parametrize("gate", [False, True])
def test_a_wait_at_a_gate_is_not_a_park(gate: bool) -> None:
    """DPOR does not run a wait at a closed gate while another task can run (a waiter
    parked there and one not yet arrived are one trace), so the answer for one parked
    there is the answer for one not arrived: False."""

    async def main() -> Any:
        done = Completion("done", gate=gate)
        parked: list[object] = []
        seen: list[bool | None] = []

        async def parker() -> None:
            parked.append(rt.current_task())
            await done.wait()

        async def looker() -> None:
            await rt.sleep(1)  # the clock moves only once the parker has parked
            seen.append(rt.task_blocked(parked[0]))
            done.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(parker)
            tg.start_soon(looker)
        return seen

    assert sim.run(main).unwrap() == [not gate]
