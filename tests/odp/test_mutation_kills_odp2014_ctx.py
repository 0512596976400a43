"""odp2014-ctx's pending regions, step by step (found lacking by mutation testing:
tools/mutation.sh): a region registered while an invalidation runs is inactive (its
faults retry) until the count drains; then it is activated with its seq bumped (or not,
``activation_bumps_seq=False``); deregistering a pending region takes it off the list and
wakes its waiters; an inactive region's callbacks still name themselves when they touch
a region that is gone."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp import Umem
from odp_async.odp.protocols.odp2014_ctx import Odp2014Ctx
from odp_async.world import World, run_world

P = PAGE_SIZE


def _ctx(w: World) -> Odp2014Ctx:
    proto = w.protocol
    assert isinstance(proto, Odp2014Ctx)
    return proto


def _state(w: World, u: Umem) -> tuple[str, bool, int, int, str]:
    return (u.name, _ctx(w)._state(u).active, u.seq, u.count, repr(u.completion))


@pytest.mark.parametrize("bumps", [True, False])
def test_pending_regions_are_inactive_until_the_count_drains(bumps: bool) -> None:
    out: list[Any] = []

    async def body(w: World) -> None:
        p = _ctx(w)
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        inv = Invalidation(50, AddrRange(0, 8 * P), InvalidateEvent.UNMAP)
        await p.before_start(inv)  # an invalidation runs: ncount 1
        b = await w.ctx.register_mr(4 * P, 2 * P, name="B")
        c = await w.ctx.register_mr(6 * P, 2 * P, name="C")
        out.append((p.ncount, [u.name for u in p.pending], _state(w, b), _state(w, c)))
        await p.start_account(b, inv)  # an inactive region keeps no count
        await p.end_account(b, inv)
        out.append(_state(w, b))
        rng = AddrRange(4 * P, 5 * P)
        out.append((p.must_retry(b, rng, b.seq), p.holds_back(b, rng)))
        await w.ctx.deregister_mr(c)
        out.append(([u.name for u in p.pending], _state(w, c)))
        await p.after_end(inv)
        out.append((p.ncount, [u.name for u in p.pending], _state(w, b)))
        out.append((p.must_retry(b, rng, b.seq), p.holds_back(b, rng)))

    run = run_world(body, protocol="odp2014-ctx", options={"activation_bumps_seq": bumps})
    run.sim.unwrap()
    assert run.violations == ()
    idle = "<Completion '{}.completion' done=0 waiting=0>"
    done = "<Completion '{}.completion' all waiting=0>"
    assert out == [
        (
            1,
            ["B", "C"],
            ("B", False, 0, 0, idle.format("B")),
            ("C", False, 0, 0, idle.format("C")),
        ),
        ("B", False, 0, 0, idle.format("B")),
        (True, True),
        (["B"], ("C", False, 0, 0, done.format("C"))),
        (0, [], ("B", True, 1 if bumps else 0, 0, done.format("B"))),
        (False, False),
    ]


class _Forgetful(Odp2014Ctx):
    """A broken odp2014-ctx whose remove leaves the region in the tree (and pending)."""

    name = "odp2014-ctx-forgets-to-remove"

    async def remove(self, umem: Umem) -> None:
        self.ctx.odp_mrs_count -= 1


def test_an_inactive_regions_callbacks_name_themselves_after_its_deregistration() -> None:
    async def body(w: World) -> None:
        p = w.protocol
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        inv = Invalidation(50, AddrRange(0, 4 * P), InvalidateEvent.UNMAP)
        await p.before_start(inv)  # B registers inactive
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        await w.ctx.deregister_mr(b)
        await p.start_account(b, inv)
        await p.end_account(b, inv)
        await p.release_account(b)

    run = run_world(body, protocol=_Forgetful)
    run.sim.unwrap()
    # release_account of an inactive region names no path of its own: its lock's grant
    # and its store to `dying` are the uses (`RegionMutex`, `Umem`'s checked fields)
    assert [v.detail for v in run.violations] == [
        "invalidate_range_start touched B after its deregistration",
        "invalidate_range_end touched B after its deregistration",
        "mutex_lock(B.umem_mutex) touched B after its deregistration",
        "a store to its dying touched B after its deregistration",
    ]


def test_release_marks_a_pending_region_dying_and_wakes_it() -> None:
    out: list[Any] = []

    async def body(w: World) -> None:
        p = _ctx(w)
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        await p.before_start(Invalidation(50, AddrRange(0, 4 * P), InvalidateEvent.UNMAP))
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        await w.mm.exit()
        out.append((p.ncount, b.dying, _state(w, b)))
        out.append(await w.ctx.fault(b, 4 * P))

    run = run_world(body, protocol="odp2014-ctx")
    run.sim.unwrap()
    assert out[0] == (2, True, ("B", False, 0, 0, "<Completion 'B.completion' all waiting=0>"))
    assert [e.detail for e in run.events if e.kind == "fault-end"] == [
        "fault B 0x4000 failed: B is dying"
    ]
