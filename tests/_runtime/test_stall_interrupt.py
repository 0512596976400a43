"""The stall watchdog's interrupt is never a task's outcome, and never outlives its step.

`odp_async._runtime.stall`: the watchdog's signal handler raises `StepInterrupt` in a
step that has not returned; the sim re-raises it (never the task's ``error``, whichever
driver loop runs), and a signal that arrives once the step has returned does nothing.
"""

from __future__ import annotations

import signal
import threading

import pytest

import odp_async as oa
from odp_async import sim
from odp_async._runtime import stall


async def _raises() -> None:
    raise stall.StepInterrupt("stalled")


async def _child_raises() -> None:
    async with oa.task_group() as tg:
        tg.start_soon(oa.checkpoint)
        tg.start_soon(_raises)


@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("main", [_raises, _child_raises])
def test_the_sim_never_takes_the_interrupt_for_a_tasks_error(main: object, trace: bool) -> None:
    with pytest.raises(stall.StepInterrupt):
        sim.run(main, seed=0, trace=trace)  # type: ignore[arg-type]


def test_a_signal_for_a_step_that_returned_does_nothing() -> None:
    watch = stall._Watch(threading.get_ident(), 1.0, signal.SIGUSR1)
    watch.sent = (-1, 7)  # a run and step not driven now
    watch.stalls.append("step 7 of task 'main' has not returned after 1.0 s")
    watch.on_signal(signal.SIGUSR1, None)  # no StepInterrupt
    assert watch.sent is None
    assert not watch.interrupted


def test_a_watch_leaves_the_signal_handlers_as_it_found_them() -> None:
    before = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)

    async def fine() -> None:
        await oa.checkpoint()

    with stall.watching_steps(60.0):
        assert sim.run(fine, seed=0).outcome == "ok"
    assert (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)) == before
    assert not stall._DRIVING
    assert not stall._WATCHED
    assert not stall._HALTED
