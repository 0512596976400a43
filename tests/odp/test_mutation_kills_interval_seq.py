"""interval-seq's registry, step by step (found lacking by mutation testing:
tools/mutation.sh): the odd/even ``seq``, ``active``, the deferred inserts and removes,
each region's ``iseq``, a removal that waits for the epoch to end, and a fault that
sleeps in ``read_begin`` while its region's epoch runs."""

from __future__ import annotations

from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp import Umem
from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.world import World, run_world

P = PAGE_SIZE


def _inv(n: int, first: int, end: int) -> Invalidation:
    return Invalidation(n, AddrRange(first * P, end * P), InvalidateEvent.UNMAP)


def _iseq(w: World) -> IntervalSeq:
    proto = w.protocol
    assert isinstance(proto, IntervalSeq)
    return proto


async def _until_parked(p: IntervalSeq, n: int) -> None:
    for _ in range(1000):
        if len(p._seq_moved) >= n:
            return
        await rt.checkpoint()


def test_the_registry_through_overlapping_epochs() -> None:
    out: list[Any] = []

    def snap(w: World, tag: str, *umems: Umem) -> None:
        p = _iseq(w)
        regions = [(u.name, p._iv(u).iseq, w.ctx.is_in_tree(u)) for u in umems]
        deferred = [(u.name, ins) for u, ins in p.deferred]
        out.append((tag, p.seq, p.active, deferred, w.ctx.odp_mrs_count, regions))

    async def body(w: World) -> None:
        p = _iseq(w)
        await w.mm.mmap(0, 16 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        snap(w, "A, idle", a)
        i1, i2 = _inv(1, 0, 4), _inv(2, 4, 8)
        await p.invalidate_range_start(i1)
        snap(w, "i1 hits A", a)
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        c = await w.ctx.register_mr(4 * P, 4 * P, name="C")
        snap(w, "B, C deferred", a, b, c)
        await p.invalidate_range_start(i2)
        snap(w, "i2 hits nothing", a, b, c)
        await w.ctx.deregister_mr(c)
        snap(w, "C dropped from the deferred list", a, b)

        async def deregister_a() -> None:
            await w.ctx.deregister_mr(a)
            out.append("A deregistered")

        async with rt.task_group() as tg:
            tg.start_soon(deregister_a, name="D")
            await _until_parked(p, 1)
            snap(w, "A's removal deferred", a, b)
            await p.invalidate_range_end(i2)
            snap(w, "i2 ends", a, b)
            await _until_parked(p, 1)
            out.append(("still waiting", len(p._seq_moved)))
            await p.invalidate_range_end(i1)
            snap(w, "i1 ends: deferred applied", a, b)
        i3 = _inv(3, 12, 16)
        await p.invalidate_range_start(i3)
        snap(w, "i3 hits nothing", b)
        d = await w.ctx.register_mr(8 * P, 4 * P, name="D")
        snap(w, "D inserted during i3", b, d)

        async def fault_d() -> None:
            out.append(await w.ctx.fault(d, 8 * P, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault_d, name="F")
            await _until_parked(p, 1)
            out.append(("F sleeps in read_begin", len(p._seq_moved), len(d.table)))
            await p.invalidate_range_end(i3)
        snap(w, "i3 ends", b, d)
        i4 = _inv(4, 12, 16)
        await p.invalidate_range_start(i4)
        await p.invalidate_range_end(i4)
        snap(w, "i4 hits nothing", b, d)

    for seed in range(3):
        out.clear()
        run = run_world(body, protocol="interval-seq", seed=seed)
        run.sim.unwrap()
        assert run.violations == ()
        assert out == [
            ("A, idle", 2, 0, [], 1, [("A", 1, True)]),
            ("i1 hits A", 3, 1, [], 1, [("A", 3, True)]),
            (
                "B, C deferred",
                3,
                1,
                [("B", True), ("C", True)],
                3,
                [("A", 3, True), ("B", 3, False), ("C", 3, False)],
            ),
            (
                "i2 hits nothing",
                3,
                2,
                [("B", True), ("C", True)],
                3,
                [("A", 3, True), ("B", 3, False), ("C", 3, False)],
            ),
            (
                "C dropped from the deferred list",
                3,
                2,
                [("B", True)],
                2,
                [("A", 3, True), ("B", 3, False)],
            ),
            (
                "A's removal deferred",
                3,
                2,
                [("B", True), ("A", False)],
                1,
                [("A", 3, True), ("B", 3, False)],
            ),
            ("i2 ends", 3, 1, [("B", True), ("A", False)], 1, [("A", 3, True), ("B", 3, False)]),
            ("still waiting", 1),
            ("i1 ends: deferred applied", 4, 0, [], 1, [("A", 3, False), ("B", 3, True)]),
            "A deregistered",
            ("i3 hits nothing", 4, 1, [], 1, [("B", 3, True)]),
            ("D inserted during i3", 5, 1, [], 2, [("B", 3, True), ("D", 5, True)]),
            ("F sleeps in read_begin", 1, 0),
            FaultOutcome.RESOLVED,
            ("i3 ends", 6, 0, [], 2, [("B", 3, True), ("D", 5, True)]),
            ("i4 hits nothing", 6, 0, [], 2, [("B", 3, True), ("D", 5, True)]),
        ]


def test_a_commit_is_refused_after_its_region_was_hit() -> None:
    out: list[Any] = []

    async def body(w: World) -> None:
        p = _iseq(w)
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        rng = AddrRange(0, P)
        token = await p.fault_begin(b, rng)
        elsewhere = _inv(1, 8, 12)
        await p.invalidate_range_start(elsewhere)
        await p.invalidate_range_end(elsewhere)
        out.append((token, p.holds_back(b, rng), await p.fault_commit(b, rng, token, [])))
        hit = _inv(2, 0, 1)
        await p.invalidate_range_start(hit)
        out.append(p.holds_back(b, rng))
        await p.invalidate_range_end(hit)
        out.append((p.holds_back(b, rng), await p.fault_commit(b, rng, token, [])))
        fresh = await p.fault_begin(b, rng)
        out.append((fresh, await p.fault_commit(b, rng, fresh, [])))

    run_world(body, protocol="interval-seq").sim.unwrap()
    assert out == [(1, False, True), True, (False, False), (3, True)]


def test_after_release_a_region_still_deferred_is_refused_by_the_dead_mark() -> None:
    """The mm exits while an invalidation runs (exit_mmap takes no mmap_sem) and a
    region registered during it is still on the deferred list: release cannot mark it
    dying, so the context's dead mark alone refuses its faults and holds nothing back;
    the end still performs the deferred insert, unchecked (`tree_insert(deferred=True)`)."""
    out: list[Any] = []

    async def body(w: World) -> None:
        p = _iseq(w)
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        inv = _inv(1, 0, 4)
        await p.invalidate_range_start(inv)
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        await w.mm.exit()
        rng = AddrRange(4 * P, 5 * P)
        out.append((p.dead, b.dying, p._iv(b).iseq == p.seq, p.holds_back(b, rng)))
        out.append(await w.ctx.fault(b, 4 * P))
        await p.invalidate_range_end(inv)
        out.append((w.ctx.is_in_tree(b), p.holds_back(b, rng)))

    run = run_world(body, protocol="interval-seq")
    run.sim.unwrap()
    assert out == [(True, False, True, False), FaultOutcome.FAILED, (True, False)]
    assert [e.detail for e in run.events if e.kind == "fault-end"] == [
        "fault B 0x4000 failed: the mm was released"
    ]
    # The end applies B's insert after the release: a deferred insert, whose request
    # was checked when B registered (before the exit), so no insert-after-release.
    assert run.violations == ()


def test_a_deferred_removal_yields_at_a_labelled_checkpoint_before_it_waits() -> None:
    """A removal during an epoch unlocks, then yields (``wait_event``'s first test runs
    after the unlock) at a checkpoint a trace names; an immediate removal does not."""

    async def body(w: World) -> None:
        p = _iseq(w)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        i1 = _inv(1, 0, 4)
        await p.invalidate_range_start(i1)

        async def deregister_a() -> None:
            await w.ctx.deregister_mr(a)

        async with rt.task_group() as tg:
            tg.start_soon(deregister_a, name="D")
            await _until_parked(p, 1)
            await p.invalidate_range_end(i1)
        await w.ctx.deregister_mr(b)  # no epoch: removed at once

    run = run_world(body, protocol="interval-seq", trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    labels = [step[3] for step in run.sim.trace]
    assert labels.count(("interval-seq", "remove", "A")) == 1
    assert ("interval-seq", "remove", "B") not in labels


def test_the_end_of_an_epoch_with_a_deferred_list_yields_at_a_labelled_checkpoint() -> None:
    """The end of an epoch with a deferred removal (here one whose odd seq has bit 1
    clear) applies the list in a window a trace names (``mn_itree_inv_end`` with the
    registry's lock held); the epoch's end is the one labelled checkpoint of that kind."""

    async def body(w: World) -> None:
        p = _iseq(w)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        i0 = _inv(0, 0, 4)
        await p.invalidate_range_start(i0)
        await p.invalidate_range_end(i0)  # an epoch with no deferred list: seq moves by 2
        i1 = _inv(1, 0, 4)
        await p.invalidate_range_start(i1)
        assert p.seq % 4 == 1  # an odd seq whose bit 1 is clear

        async def deregister_a() -> None:
            await w.ctx.deregister_mr(a)

        async with rt.task_group() as tg:
            tg.start_soon(deregister_a, name="D")
            await _until_parked(p, 1)
            await p.invalidate_range_end(i1)
        assert not w.ctx.is_in_tree(a)

    run = run_world(body, protocol="interval-seq", trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    labels = [step[3] for step in run.sim.trace]
    assert labels.count(("interval-seq", "deferred list")) == 1
