"""What registration and deregistration leave behind: events, the registry, the tree,
and how a protocol prints."""

from __future__ import annotations

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE
from odp_async.odp import PROTOCOLS, resolve_protocol
from odp_async.odp.umem import UmemState
from odp_async.world import World, run_world

P = PAGE_SIZE


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_deregistration_records_and_forgets_the_region(protocol: str) -> None:
    seen: dict[str, object] = {}

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        seen["in tree"] = w.ctx.is_in_tree(b)
        await w.ctx.deregister_mr(b)
        seen["after"] = (w.ctx.is_in_tree(b), b.handle, "B" in w.ctx.umems, b.state)
        again = await w.ctx.register_mr(0, 8 * P, name="B")  # the name is free again
        seen["again"] = again.state

    run = run_world(body, protocol=protocol)
    run.sim.unwrap()
    assert seen == {
        "in tree": True,
        "after": (False, None, False, UmemState.DEREGISTERED),
        "again": UmemState.REGISTERED,
    }, protocol
    marks = [(e.kind, e.key, e.detail) for e in run.events if e.kind.startswith("dereg")]
    assert marks == [
        ("deregister-begin", "B", "deregister B"),
        ("deregister-end", "B", "B deregistered"),
    ]


def test_deregistration_is_deregistering_while_it_drains() -> None:
    states: list[UmemState] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        assert b.fault_enter()

        async def watch() -> None:
            await rt.checkpoint()
            states.append(b.state)
            b.fault_exit()

        async with rt.task_group() as tg:
            tg.start_soon(w.ctx.deregister_mr, b, name="deregister")
            tg.start_soon(watch, name="watch")

    for seed in range(8):
        run_world(body, seed=seed).sim.unwrap()
    # the watcher saw it either before it began or while it drained, never after
    assert set(states) == {UmemState.REGISTERED, UmemState.DEREGISTERING}


def test_deregistration_completes_when_its_task_is_cancelled() -> None:
    out: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        assert b.fault_enter()

        async def deregister() -> None:
            with rt.move_on_after(1.0):
                await w.ctx.deregister_mr(b)
            out.append(b.state)

        async def leave_later() -> None:
            await rt.sleep(5.0)  # after the deregistration's deadline
            b.fault_exit()

        async with rt.task_group() as tg:
            tg.start_soon(deregister, name="deregister")
            tg.start_soon(leave_later, name="fault")

    run_world(body).sim.unwrap()
    assert out == [UmemState.DEREGISTERED]


def test_protocols_print_their_options() -> None:
    printed: list[str] = []

    async def body(w: World) -> None:
        printed.append(repr(w.protocol))

    run_world(body, protocol="naive").sim.unwrap()
    run_world(body, protocol="odp2014", options={"clamp": False}).sim.unwrap()
    run_world(body, protocol="hmm-pool").sim.unwrap()
    assert printed == [
        "<protocol naive>",
        "<protocol odp2014 clamp=False>",
        "<protocol hmm-pool pool_size=1>",
    ]
    assert resolve_protocol("range-list").OPTIONS == {"literal_order": False}
