"""A region's use is checked where it happens, not only where its user took the pointer
(trial 19b, finding f2): the grant of its ``umem_mutex`` (blocking or not), a store to its
fields, a write of its device table.  Each reports ``use-after-release`` once the region
was freed, and nothing before (registered or still deregistering)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.odp.umem import Umem
from odp_async.world import World, run_world


def _after_dereg(use: Callable[[World, Umem], object]) -> list[str]:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        use(w, b)  # registered: no report
        await w.ctx.deregister_mr(b)
        use(w, b)

    run = run_world(body, protocol="odp2014")
    run.sim.unwrap()
    # (an install of a frame nobody mapped is also a stale translation: not this test's)
    return [v.detail for v in run.violations if v.kind == "use-after-release"]


def _nowait(w: World, b: Umem) -> None:
    b.mutex.acquire_nowait()
    b.mutex.release()


def _install(w: World, b: Umem) -> None:
    b.table.install(0, (9, 0), True)


@pytest.mark.parametrize(
    ("use", "detail"),
    [
        (_nowait, "mutex_lock(B.umem_mutex)"),
        (lambda w, b: setattr(b, "seq", b.seq + 1), "a store to its seq"),
        (lambda w, b: setattr(b, "count", 1), "a store to its count"),
        (lambda w, b: setattr(b, "dying", True), "a store to its dying"),
        (lambda w, b: setattr(b, "proto", object()), "a store to its proto"),
        (lambda w, b: b.table.zap(b.range), "a device page-table zap"),
        (_install, "a device page-table install"),
    ],
)
def test_a_use_after_the_free_is_reported_where_it_happens(
    use: Callable[[World, Umem], object], detail: str
) -> None:
    assert _after_dereg(use) == [f"{detail} touched B after its deregistration"]


def test_a_blocking_grant_after_a_wait_is_checked_at_the_grant() -> None:
    """The taker checked the region (alive) and waited at its mutex; the holder
    deregisters it meanwhile (a broken remove that does not wait for the taker)."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        await b.mutex.acquire()

        async def taker() -> None:
            b.touch("the taker, before its acquire")  # alive: no report
            async with b.mutex:
                pass

        async with rt.task_group() as tg:
            tg.start_soon(taker, name="taker")
            while not b.mutex.statistics().tasks_waiting:
                await rt.checkpoint()
            b.mutex.release()
            # the taker now owns the lock (hand-off) but has not run; free the region as
            # deregister_mr's last step does
            b.state = b.state.DEREGISTERED
            b.released = True
            w.checker.table_released("B")

    run = run_world(body, protocol="odp2014")
    run.sim.unwrap()
    assert [(v.kind, v.tasks, v.detail) for v in run.violations] == [
        (
            "use-after-release",
            ("taker",),
            "mutex_lock(B.umem_mutex) touched B after its deregistration",
        )
    ]


def test_nothing_is_reported_while_the_region_is_deregistering() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        b.state = b.state.DEREGISTERING
        async with b.mutex:
            b.seq += 1
            b.table.zap(b.range)

    run = run_world(body, protocol="odp2014")
    run.sim.unwrap()
    assert run.violations == ()
