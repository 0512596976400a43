"""Mechanisms that no other test pins: each test fails when its mechanism is removed.

- interval-seq performs the tree inserts it deferred during an invalidation;
- range-list re-checks at commit that the fault's range is still valid (it matters with
  ``literal_order=True``, where the range is listed after the start callbacks; in the
  default order it is redundant: see the comment in `RangeList.must_retry`);
- a fault leaving its region wakes a deregistration draining the region's faults;
- `Umem.touch` reports a touch of a deregistered region as ``use-after-release``.
"""

from __future__ import annotations

from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.odp.protocols.range_list import RangeList
from odp_async.odp.umem import Umem, UmemState
from odp_async.world import World, run_world

P = PAGE_SIZE


# --- interval-seq: deferred inserts --------------------------------------------------------


class _RegisterDuringStart(IntervalSeq):
    """Registers B from inside the first invalidation's start: its insert is deferred."""

    name = "interval-seq-probe"

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        await super().invalidate_range_start(inv)
        if "B" not in self.ctx.umems:
            await self.ctx.register_mr(16 * P, 8 * P, name="B")
            assert (self.ctx.umems["B"], True) in self.deferred


def test_interval_seq_inserts_a_region_deferred_during_an_invalidation() -> None:
    """B registers while an invalidation of A runs; once it ends, B is in the tree, so a
    later invalidation of B zaps what a fault on B installed."""
    out: dict[str, Any] = {}

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.mm.mmap(16 * P, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        await w.mm.cpu_fault(0, write=True)
        await w.mm.madvise_dontneed(0, 8 * P)
        b = w.ctx.umems["B"]
        out["in tree"] = w.ctx.is_in_tree(b)
        out["fault"] = await w.ctx.fault(b, 16 * P, write=True)
        await w.mm.madvise_dontneed(16 * P, 8 * P)  # must zap B[16P] before freeing

    run = run_world(body, protocol=_RegisterDuringStart)
    run.sim.unwrap()
    assert out == {"in tree": True, "fault": FaultOutcome.RESOLVED}
    assert run.violations == ()


# --- range-list: the commit's "range is valid" re-check ----------------------------------


def test_range_list_refuses_a_commit_while_an_invalidation_of_its_range_is_listed() -> None:
    """The commit refuses while a listed invalidation overlaps the fault's range even if
    the region's seq did not move (the window ``literal_order=True`` opens: the range is
    listed after the start callbacks bumped the seq, before the ptes change).  In the
    default order the seq check alone would do; see `RangeList.must_retry`."""
    seen: list[tuple[bool, bool]] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 16 * P)
        b = await w.ctx.register_mr(0, 16 * P, name="B")
        proto = w.protocol
        assert isinstance(proto, RangeList)
        rng = AddrRange(4 * P, 5 * P)
        token = b.seq
        inside = Invalidation(99, AddrRange(0, 8 * P), InvalidateEvent.UNMAP)
        elsewhere = Invalidation(98, AddrRange(8 * P, 16 * P), InvalidateEvent.UNMAP)
        for inv in (inside, elsewhere):
            w.mm.active_ranges.append(inv)
            seen.append((proto.must_retry(b, rng, token), proto.holds_back(b, rng)))
            w.mm.active_ranges.remove(inv)
        seen.append((proto.must_retry(b, rng, token), proto.must_retry(b, rng, token + 1)))

    run_world(body, protocol="range-list", options={"literal_order": True}).sim.unwrap()
    assert seen == [(True, True), (False, False), (False, True)]


# --- Umem: a fault leaving wakes the deregistration draining faults ---------------------


def test_deregistration_waits_for_a_fault_in_flight_and_is_woken_by_it() -> None:
    seen: list[tuple[str, object]] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")

        async def fault() -> None:
            seen.append(("fault", (await w.ctx.fault(b, 0, write=True)).value))

        async def deregister() -> None:
            await w.ctx.deregister_mr(b)
            seen.append(("deregistered", b.state))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="fault")
            tg.start_soon(deregister, name="deregister")

    drained = 0
    for seed in range(60):
        seen.clear()
        run = run_world(body, protocol="odp2014", seed=seed)
        assert run.sim.outcome == "ok", (seed, run.sim.deadlock)
        assert ("deregistered", UmemState.DEREGISTERED) in seen
        if seen[0] == ("fault", "resolved"):
            drained += 1  # the deregistration began while the fault ran, and waited
            assert run.violations == ()
        else:  # the fault came during or after it: refused (after: a late touch)
            assert ("fault", "failed") in seen
            assert set(run.kinds) <= {"use-after-release"}
    assert drained > 0


def test_drain_faults_parks_until_the_last_fault_exits() -> None:
    order: list[str] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        assert b.fault_enter()
        assert b.fault_enter()

        async def drain() -> None:
            await b.drain_faults()
            order.append("drained")

        async def leave() -> None:
            for _ in range(2):
                await rt.checkpoint()
                order.append("exit")
                b.fault_exit()

        async with rt.task_group() as tg:
            tg.start_soon(drain, name="drain")
            tg.start_soon(leave, name="leave")

    for seed in range(10):
        order.clear()
        run_world(body, seed=seed).sim.unwrap()
        assert order == ["exit", "exit", "drained"]


# --- Umem.touch after deregistration ---------------------------------------------------------


class _ForgetsToRemove(Odp2014):
    """A broken protocol: deregistration leaves the region in the tree, so the next
    invalidation's callbacks touch a deregistered region."""

    name = "forgets-to-remove"

    async def remove(self, umem: Umem) -> None:
        self.ctx.odp_mrs_count -= 1


def test_a_touch_after_deregistration_is_use_after_release() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        await w.ctx.deregister_mr(b)
        await w.mm.madvise_dontneed(0, 8 * P)

    run = run_world(body, protocol=_ForgetsToRemove)
    run.sim.unwrap()
    assert run.kinds == ("use-after-release",)
    assert "touched B after its deregistration" in run.violations[0].detail


def test_touch_reports_only_once_deregistered() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        b.touch("before")
        await w.ctx.deregister_mr(b)
        b.touch("a late callback")

    run = run_world(body)
    run.sim.unwrap()
    assert [v.detail for v in run.violations] == [
        "a late callback touched B after its deregistration"
    ]


# --- interval-seq: deferred removal --------------------------------------------------------


async def _dereg_during_storm(w: World) -> dict[str, Any]:
    """Two invalidations of A overlap while A is deregistered; B keeps the subscription."""
    await w.mm.mmap(0, 8 * P)
    await w.mm.mmap(16 * P, 8 * P)
    a = await w.ctx.register_mr(0, 8 * P, name="A")
    await w.ctx.register_mr(16 * P, 8 * P, name="B")
    out: dict[str, Any] = {}

    async def deregister() -> None:
        await w.ctx.deregister_mr(a)
        out["in tree"] = w.ctx.is_in_tree(a)

    async def invalidate() -> None:
        for _ in range(2):
            await w.mm.madvise_dontneed(0, 8 * P)

    async with rt.task_group() as tg:
        tg.start_soon(invalidate, name="I1")
        tg.start_soon(invalidate, name="I2")
        tg.start_soon(deregister, name="dereg")
    out["finally in tree"] = w.ctx.is_in_tree(a)
    out["deferred"] = list(w.protocol.deferred)  # type: ignore[attr-defined]
    return out


def test_interval_seq_defers_a_removal_during_an_invalidation_and_waits_for_it() -> None:
    """No callback touches A once its deregistration returned, and the removal is done
    by the end of the epoch."""
    deferred_runs = 0
    for seed in range(150):
        run = run_world(_dereg_during_storm, protocol="interval-seq", seed=seed)
        out = run.sim.unwrap()
        assert run.violations == (), (seed, run.violations[0].describe())
        assert out["finally in tree"] is False
        assert out["deferred"] == []
        deferred_runs += out["in tree"] is False
    assert deferred_runs == 150


class _RegisterAndDropDuringStart(IntervalSeq):
    """Registers B inside the first invalidation's start, then deregisters it at once:
    its deferred insert must be dropped, not performed at the end of the epoch."""

    name = "interval-seq-drop-probe"

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        await super().invalidate_range_start(inv)
        if not hasattr(self, "dropped"):
            b = await self.ctx.register_mr(16 * P, 8 * P, name="B")
            await self.ctx.deregister_mr(b)
            self.dropped = b


def test_interval_seq_drops_the_deferred_insert_of_a_region_deregistered_meanwhile() -> None:
    out: dict[str, Any] = {}

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.mm.mmap(16 * P, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        await w.mm.madvise_dontneed(0, 8 * P)
        proto = w.protocol
        assert isinstance(proto, _RegisterAndDropDuringStart)
        out["in tree"] = w.ctx.is_in_tree(proto.dropped)
        out["deferred"] = list(proto.deferred)
        out["regions"] = [u.name for u in w.ctx.all_umems()]

    run = run_world(body, protocol=_RegisterAndDropDuringStart)
    run.sim.unwrap()
    assert out == {"in tree": False, "deferred": [], "regions": ["A"]}
    assert run.violations == ()
