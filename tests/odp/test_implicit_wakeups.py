"""Who an implicit MR's drain waits wake (`odp_async.odp.implicit`): `deregister` waits
until the MR's usecount is 0 and a child's free work until the child's usecount is 0
(``mlx5r_deref_wait_odp_mkey``), and each is woken when its count *reaches 0*, not
before: a fault that drops a count to 1 (another fault still holding a reference) wakes
nobody, so the waiter parks once.

Pinned for the mutation survivors ``ImplicitMr._deref`` / ``_deref_child`` woken at
``<= 1``: the waiter re-checks and parks again, an extra step of the trace (no verdict
changes).  A chooser of fixed preferences decides who runs: no randomness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.addr import PAGE_SIZE as P
from odp_async.device import FaultOutcome
from odp_async.odp.implicit import ImplicitMr
from odp_async.world import World, WorldRun, run_world

# _mapped_imr: an implicit MR over 8 mapped pages, its children 0 (pages 0-3) and 1 (4-7) made
from .test_mutation_kills_implicit_waits import _inv, _mapped_imr


class Prefer:
    """Runs the first runnable task whose name starts with one of `order`'s prefixes
    (the earlier prefix first); the first runnable task if none does."""

    def __init__(self, *order: str) -> None:
        self.order = order

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        names = [t.name for t in runnable]
        for prefix in self.order:
            for i, name in enumerate(names):
                if name.startswith(prefix):
                    return i
        return 0

    def draw(self, n: int, label: object) -> int:
        return 0


async def _two_faults(tg: rt.TaskGroupLike, imr: ImplicitMr, out: list[object]) -> None:
    """Starts faults "fault-a" (page 0) and "fault-b" (page 1) on child 0 in `tg`, each
    appending its outcome to `out`, and lets both take their references."""

    async def fault(address: int) -> None:
        out.append(await imr.fault(address))

    tg.start_soon(fault, 0, name="fault-a")
    tg.start_soon(fault, P, name="fault-b")
    await rt.checkpoint("let both faults take their references")


def _run_preferring(body: Callable[[World], Awaitable[object]], *order: str) -> WorldRun:
    """`body`'s run, traced, under `Prefer(*order)`: it ends without an error or a
    violation."""
    run = run_world(body, chooser=Prefer(*order), trace=True)
    run.sim.unwrap()
    assert run.violations == ()
    return run


def _parks(run: WorldRun, task_prefix: str, queue: str) -> int:
    """How many times a task named `task_prefix`... parked on the wait queue `queue`."""
    assert run.sim.trace is not None
    names = dict(run.sim.tasks)
    return sum(
        1
        for _, task, op, label in run.sim.trace
        if op == sim.PARK and names[task].startswith(task_prefix) and label == queue
    )


def test_deregister_is_woken_once_when_the_last_of_two_faults_drops_its_reference() -> None:
    """Two faults hold the MR (waiting for a running invalidation) when `deregister`
    drops the MR's own reference and parks on the usecount.  The invalidation ends; the
    first fault to finish drops the count to 1 and wakes nobody (the chooser would run
    `deregister` first if it were woken), the second drops it to 0 and wakes it: it
    parks once, then frees the MR."""

    async def body(w: World) -> list[object]:
        imr = await _mapped_imr(w)
        out: list[object] = []
        hold = _inv(1, 7, 1)  # on child 1: faults on child 0 wait for its end
        await imr.invalidate_range_start(hold)
        async with rt.task_group() as tg:
            await _two_faults(tg, imr, out)
            tg.start_soon(imr.deregister, name="deregister")
            await rt.checkpoint("let deregister park")
            out.append(imr.usecount)  # the two faults' references
            await imr.invalidate_range_end(hold)
        out.append((imr.usecount, imr.live))
        return out

    run = _run_preferring(body, "deregister", "fault-a", "fault-b")
    assert run.sim.value == [2, FaultOutcome.RESOLVED, FaultOutcome.RESOLVED, (0, False)]
    assert _parks(run, "deregister", "WaitQueue 'imr usecount == 0'") == 1


def test_a_child_s_free_work_is_woken_once_when_the_last_of_two_faults_leaves_it() -> None:
    """Two faults hold child 0 (waiting for a running invalidation on child 1) when a
    second invalidation empties child 0: its free work drops the base reference and
    parks on the child's usecount.  The first fault to finish drops it to 1 and wakes
    nobody (the chooser would run the work first if it were woken), the second drops
    it to 0: the work parks once, then frees the child."""

    async def body(w: World) -> list[object]:
        imr = await _mapped_imr(w)
        out: list[object] = []
        child = imr.children[0]
        hold = _inv(1, 7, 1)
        await imr.invalidate_range_start(hold)
        async with rt.task_group() as tg:
            await _two_faults(tg, imr, out)
            empty = _inv(2, 0, 4)
            await imr.invalidate_range_start(empty)  # child 0 emptied: its free queued
            for _ in range(3):
                await rt.checkpoint("let the free work park")
            out.append(child.usecount)  # the two faults' references
            await imr.invalidate_range_end(empty)
            await imr.invalidate_range_end(hold)
        out.append((child.usecount, 0 in imr.children))
        return out

    run = _run_preferring(body, "kworker", "fault-a", "fault-b")
    assert run.sim.value == [2, FaultOutcome.RESOLVED, FaultOutcome.RESOLVED, (0, False)]
    assert _parks(run, "kworker", "WaitQueue 'imr child usecount == 0'") == 1
