"""hmm-pool's slots, step by step (found lacking by mutation testing: tools/mutation.sh):
an end whose start this subscription never saw is ignored, the last deregistration gives
back the slots of invalidations whose ends will never come, and a fault waits only for
the invalidations that overlap its range."""

from __future__ import annotations

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp.protocols.hmm_pool import HmmPool
from odp_async.world import World, run_world

P = PAGE_SIZE


def _hmm(w: World) -> HmmPool:
    proto = w.protocol
    assert isinstance(proto, HmmPool)
    return proto


def _inv(n: int, rng: AddrRange) -> Invalidation:
    return Invalidation(n, rng, InvalidateEvent.UNMAP)


def test_an_end_without_a_seen_start_is_ignored() -> None:
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        hmm = _hmm(w)
        seen.append(await hmm.after_end(_inv(77, AddrRange(0, P))))
        seen.append((hmm.pool.free, dict(hmm.active)))

    run_world(body, protocol="hmm-pool", options={"pool_size": 2}).sim.unwrap()
    assert seen == [None, (2, {})]


def test_the_last_deregistration_gives_back_the_slots_of_unfinished_invalidations() -> None:
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        hmm = _hmm(w)
        await hmm.before_start(_inv(5, AddrRange(0, P)))
        await hmm.before_start(_inv(6, AddrRange(4 * P, 5 * P)))
        seen.append((hmm.pool.free, sorted(hmm.active)))
        await w.ctx.deregister_mr(a)  # B remains: the ends may still come
        seen.append((hmm.pool.free, sorted(hmm.active)))
        await w.ctx.deregister_mr(b)  # unregistered: they will not
        seen.append((hmm.pool.free, sorted(hmm.active)))

    run_world(body, protocol="hmm-pool", options={"pool_size": 3}).sim.unwrap()
    assert seen == [(1, [5, 6]), (1, [5, 6]), (3, [])]


def test_a_fault_waits_only_for_overlapping_invalidations() -> None:
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        hmm = _hmm(w)
        here = _inv(5, AddrRange(0, P))
        await hmm.before_start(_inv(6, AddrRange(4 * P, 8 * P)))  # elsewhere: no wait
        seen.append(await w.ctx.fault(a, 0, write=True))
        await hmm.before_start(here)

        async def fault() -> None:
            seen.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if len(hmm._changed):
                    break
                await rt.checkpoint()
            seen.append(("parked", len(hmm._changed)))
            await hmm.after_end(here)

    for seed in range(3):
        seen.clear()
        run_world(body, protocol="hmm-pool", options={"pool_size": 2}, seed=seed).sim.unwrap()
        assert seen == [FaultOutcome.RESOLVED, ("parked", 1), FaultOutcome.RESOLVED]


def test_a_commit_checks_its_own_range_against_the_running_invalidations() -> None:
    """hmm-pool and range-list refuse a commit only for a running invalidation that
    overlaps the fault's range: one elsewhere lets it commit on the first attempt."""
    out: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        elsewhere = _inv(5, AddrRange(4 * P, 5 * P))
        if isinstance(w.protocol, HmmPool):
            await w.protocol.before_start(elsewhere)
        else:
            w.mm.active_ranges.append(elsewhere)
        out.append(await w.ctx.fault(a, 0, write=True))
        out.append(len(a.table))

    for protocol in ("hmm-pool", "range-list"):
        out.clear()
        run = run_world(body, protocol=protocol)
        run.sim.unwrap()
        assert out == [FaultOutcome.RESOLVED, 1], protocol
        attempts = [e.detail for e in run.events if e.kind == "fault-begin"]
        assert attempts == ["fault A 0x0 attempt 1"], protocol


def test_a_start_waiting_for_a_slot_names_the_hmm_pool() -> None:
    """With the one slot taken by a start (of this task) whose end never comes, the next
    start waits on the pool, and the deadlock report names it and its holder."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        await _hmm(w).before_start(_inv(5, AddrRange(0, P)))  # the one slot, never ended
        await w.mm.madvise_dontneed(4 * P, P)

    deadlock = run_world(body, protocol="hmm-pool", options={"pool_size": 1}).sim.deadlock
    assert deadlock is not None
    assert deadlock.describe() == (
        "main waits for SlotPool 'hmm pool' (0 free) held by main itself (recursive locking)"
    )
