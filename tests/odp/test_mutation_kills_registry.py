"""What every protocol does with the subscription, the failure path and its options
(found lacking by mutation testing: tools/mutation.sh): the 2014 family unregisters with
the last region and registers again with the next first one (interval-seq keeps it for
the mm's lifetime); a non-blockable range is refused with a reason naming the protocol;
options reach the protocol; the protocols' wait queues are named in deadlock reports."""

from __future__ import annotations

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import CancelScopeLike
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.errors import InvalidArgument
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp import PROTOCOLS
from odp_async.odp.protocols.odp2014_ctx import Odp2014Ctx
from odp_async.odp.ucontext import UContext
from odp_async.world import World, run_world

P = PAGE_SIZE


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_the_subscription_follows_the_regions_and_reaping_is_refused(protocol: str) -> None:
    out: list[bool] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        out.append(await w.mm.reap(0, P))
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        await w.ctx.deregister_mr(a)
        out.append(w.mm.is_registered(w.ctx.subscription))
        await w.ctx.deregister_mr(b)
        out.append(w.mm.is_registered(w.ctx.subscription))
        await w.ctx.register_mr(0, 4 * P, name="C")
        out.append(w.mm.is_registered(w.ctx.subscription))

    run = run_world(body, protocol=protocol)
    run.sim.unwrap()
    assert run.violations == ()
    keeps = protocol == "interval-seq"
    assert out == [False, True, keeps, True]
    refusals = [e.detail for e in run.events if "refused inv0" in e.detail]
    assert refusals == [
        f"<OdpSubscription of mlx5_0> refused inv0 unmap [0x0, 0x1000): {protocol} cannot "
        "invalidate [0x0, 0x1000) without sleeping"
    ]


def test_the_deadlock_report_names_the_queues_faults_wait_on() -> None:
    async def hmm(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.protocol.before_start(Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP))
        await w.ctx.fault(a, 0)  # waits for an end that never comes

    async def interval(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        inv = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await w.protocol.invalidate_range_start(inv)
        await w.ctx.fault(a, 0)

    details = []
    for protocol, body in (("hmm-pool", hmm), ("interval-seq", interval)):
        run = run_world(body, protocol=protocol)
        assert run.sim.outcome == "deadlock"
        details += [v.detail for v in run.violations]
    assert details == [
        "main waits for WaitQueue 'hmm active ranges'",
        "main waits for WaitQueue 'interval seq'",
    ]


def test_options_reach_the_protocol() -> None:
    with pytest.raises(InvalidArgument) as info:
        World.build("interval-seq", options={"x": 1})
    assert str(info.value) == "protocol 'interval-seq' has no option 'x' (its options: none)"
    for literal in (True, False):
        w = World.build("range-list", options={"literal_order": literal})
        assert (w.protocol.literal_order, w.mm.range_list_after_callbacks) == (  # type: ignore[attr-defined]
            literal,
            literal,
        )


def test_odp2014_ctx_without_the_first_mr_reset_counts_from_zero() -> None:
    out: list[object] = []

    async def body(w: World) -> None:
        p = w.protocol
        assert isinstance(p, Odp2014Ctx)
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        out.append((p.ncount, p.pending, p._state(b).active))

    run_world(body, protocol="odp2014-ctx", options={"reset_on_first_mr": False}).sim.unwrap()
    assert out == [(0, [], True)]


def test_a_protocol_with_options_lists_them_when_refusing_another() -> None:
    with pytest.raises(InvalidArgument) as info:
        World.build("odp2014-ctx", options={"x": 1})
    assert str(info.value) == (
        "protocol 'odp2014-ctx' has no option 'x' "
        "(its options: activation_bumps_seq, clamp, reset_on_first_mr)"
    )


def test_the_contexts_own_defaults() -> None:
    w = World.build("naive")
    ctx = UContext(w.mm, w.device, w.checker, "naive")
    assert (ctx.max_fault_retries, ctx.starvation_bound, ctx.fault_wait_timeout) == (12, 12, 1.0)


def test_a_registration_cancelled_during_its_insert_still_completes() -> None:
    out: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        await w.ctx.umem_rwsem.acquire_write()  # the insert of B will wait for it
        scopes: list[CancelScopeLike] = []

        async def register() -> None:
            with rt.cancel_scope() as scope:
                scopes.append(scope)
                await w.ctx.register_mr(4 * P, 4 * P, name="B")
                out.append("returned")

        async with rt.task_group() as tg:
            tg.start_soon(register, name="R")
            for _ in range(1000):
                if "B" in w.ctx.umems and w.ctx.umem_rwsem.statistics().writers_waiting:
                    break
                await rt.checkpoint()
            scopes[0].cancel()
            await rt.checkpoint()
            w.ctx.umem_rwsem.release_write()
        b = w.ctx.umems.get("B")
        out.append(None if b is None else (b.state.value, w.ctx.is_in_tree(b)))

    for seed in range(3):
        out.clear()
        run_world(body, protocol="odp2014", seed=seed).sim.unwrap()
        assert out == ["returned", ("registered", True)]


def test_the_deadlock_report_names_the_registry_lock_and_the_drain() -> None:
    async def recursive(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.umem_rwsem.acquire_write()
        await w.ctx.register_mr(0, 8 * P, name="B")

    async def undrained(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        assert b.fault_enter()  # a fault that never exits
        await w.ctx.deregister_mr(b)

    details = []
    for body in (recursive, undrained):
        run = run_world(body, protocol="odp2014")
        assert run.sim.outcome == "deadlock"
        details += [v.detail for v in run.violations]
    assert details[1] == "main waits for WaitQueue 'B in-flight faults'"
    assert details[0].startswith("main waits for RWLock 'umem_rwsem'")
