"""`task_progress` / `task_passed_over` keep DPOR sound: every order of a watched task's
steps, its park and its wake against a look at them.

The ODP core asks, at every invalidation end that would charge a held-back fault,
whether the scheduler passed over the faulting task, or the task of an invalidation
still holding it, since the fault's last charge (see "Liveness" in
`odp_async.odp.ucontext`).  The answer depends on whether the watched task's steps, its
park and its wake came before the look, so a search that reduces by footprints must
never take them for independent.  Unlike `task_blocked` (whose asking step is unknown,
ordered against every step), the look is a noted read of the task's progress, which
every step of the task and every wake of it write while it is inside
`watch_progress`.  The guard: DPOR (and dfs with sleep sets) reaches exactly the answers
of an unreduced exhaustive search; with looks that note nothing, or a task that does not
watch its progress, it misses some.
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


def program(*, looks: int = 2, joins: bool = False) -> Callable[[], Awaitable[Any]]:
    """The watched task parks on a completion another task completes, or (`joins`) at
    the end of a task group whose child's end wakes it."""

    async def main() -> Any:
        box = Box("box")
        done = Completion("done")

        async def child() -> None:
            await rt.checkpoint()

        async def watched() -> None:
            with rt.watch_progress():
                box.task = rt.current_task()
                await rt.checkpoint()
                if joins:
                    async with rt.task_group() as inner:
                        inner.start_soon(child)
                else:
                    await done.wait()
                await rt.checkpoint()

        async def looker() -> None:
            await rt.checkpoint()
            task = box.task
            if task is None:
                box.seen += ("no task",)
                return
            mark = rt.task_progress(task)
            for _ in range(looks):
                await rt.checkpoint()
                box.seen += (rt.task_passed_over(task, mark),)

        async def waker() -> None:
            await rt.checkpoint()
            done.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(watched)
            tg.start_soon(looker)
            if not joins:
                tg.start_soon(waker)
        return box.seen

    return main


def test_the_sim_answers_passed_over_and_not() -> None:
    seen = outcomes(program(looks=1), DfsChooser(reduction=False))
    assert seen == {repr(v) for v in (("no task",), (False,), (True,))}


@pytest.mark.parametrize("joins", [False, True], ids=["completion", "join"])
@pytest.mark.parametrize("looks", [1, 2])
def test_dpor_reaches_every_answer_of_an_unreduced_search(looks: int, joins: bool) -> None:
    expected = outcomes(program(looks=looks, joins=joins), DfsChooser(reduction=False))
    assert len(expected) > 2
    for noted_only in (False, True):
        found = outcomes(program(looks=looks, joins=joins), DporChooser(noted_only=noted_only))
        assert found == expected, noted_only
    assert outcomes(program(looks=looks, joins=joins), DfsChooser(reduction=True)) == expected


def steps_then_look(*, watch: bool = True) -> Callable[[], Awaitable[Any]]:
    """The smallest program the guards below need: a watched task takes two steps, the
    looker marks it and looks one step later."""

    async def main() -> Any:
        box = Box("box")

        async def steps() -> None:
            box.task = rt.current_task()
            await rt.checkpoint()
            await rt.checkpoint()

        async def watched() -> None:
            if watch:
                with rt.watch_progress():
                    await steps()
            else:
                await steps()

        async def looker() -> None:
            await rt.checkpoint()
            task = box.task
            if task is None:
                box.seen += ("no task",)
                return
            mark = rt.task_progress(task)
            await rt.checkpoint()
            box.seen += (rt.task_passed_over(task, mark),)

        async with rt.task_group() as tg:
            tg.start_soon(watched)
            tg.start_soon(looker)
        return box.seen

    return main


def test_the_small_program_is_covered_too() -> None:
    expected = outcomes(steps_then_look(), DfsChooser(reduction=False))
    assert expected == {repr(v) for v in (("no task",), (False,), (True,))}
    assert outcomes(steps_then_look(), DporChooser(noted_only=True)) == expected


def test_looks_that_note_nothing_lose_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's own check: the noted reads are what keep every answer."""
    expected = outcomes(steps_then_look(), DfsChooser(reduction=False))

    def unnoted(self: sim.SimRuntime, task: Any, since: int) -> bool:
        return bool(
            task.ran == since
            and task.state == sim._RUNNABLE
            and task is not self._current
            and task.woken_at != self._steps
        )

    monkeypatch.setattr(sim.SimRuntime, "task_passed_over", unnoted)
    monkeypatch.setattr(sim.SimRuntime, "task_progress", lambda self, task: task.ran)
    assert outcomes(steps_then_look(), DporChooser(noted_only=True)) < expected


def test_a_task_that_does_not_watch_its_progress_loses_an_answer() -> None:
    """Only a watched task's steps and wakes are noted: the contract asks about it only."""
    expected = outcomes(steps_then_look(watch=False), DfsChooser(reduction=False))
    assert outcomes(steps_then_look(watch=False), DporChooser(noted_only=True)) < expected


def test_a_task_woken_by_the_asking_step_was_not_passed_over() -> None:
    """Woken in the step that asks, the task had no chance to run yet: not passed over;
    a step later, runnable and not chosen, it was."""

    async def main() -> Any:
        done = Completion("done")
        seen: list[object] = []
        mark: list[Any] = []

        async def watched() -> None:
            with rt.watch_progress():
                mark.append(rt.current_task())
                await done.wait()

        async def waker() -> None:
            await rt.sleep(1)  # the watched task has parked
            task = mark[0]
            since = rt.task_progress(task)
            done.complete_all()
            seen.append(rt.task_passed_over(task, since))
            await rt.checkpoint()  # (the round-robin sim runs this task on)
            seen.append(rt.task_passed_over(task, since))

        async with rt.task_group() as tg:
            tg.start_soon(watched)
            tg.start_soon(waker)
        return seen

    from odp_async._runtime.choosers import FifoChooser

    assert sim.run(main, chooser=FifoChooser()).unwrap() == [False, True]


def test_live_runtimes_cannot_tell() -> None:
    async def main() -> tuple[object, object]:
        with rt.watch_progress():
            task = rt.current_task()
            return rt.task_progress(task), rt.task_passed_over(task, 0)

    assert rt.run_live(main, backend="asyncio") == (None, None)
