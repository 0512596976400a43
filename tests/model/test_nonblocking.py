"""Issue 10, items 1 and 3: non-blockable invalidations (the OOM reaper's `reap`), the
subscriber failure path, the notifier core's rule after a refusal, and the KVM-style and
HMM-mirror-style subscribers sharing one mm."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.errors import InvalidArgument, WouldBlock
from odp_async.mm import Invalidation
from odp_async.scenarios import Scenario
from odp_async.subscribers import HmmMirror, KvmMmu
from odp_async.sync import Completion
from odp_async.world import World, run_world

from ._explore import CHOOSERS, assert_clean, assert_found


async def _populate(w: World, npages: int) -> None:
    for i in range(npages):
        await w.mm.cpu_fault(i * P, write=True)


def _reap_vs_mirror(rule: str, undo: bool) -> Scenario:
    """The OOM reaper reaps a range that a VM (KVM-style, registered first) and a device
    (HMM-mirror-style) both mirror, while the device's driver holds its page-table lock:
    the mirror refuses the non-blockable start.  Then the vCPU and the device fault.

    Under the 2018-2021 core rule KVM, whose start succeeded, never gets its end: its
    in-progress count stays raised and the vCPU waits forever.  A mirror whose failure
    path does not undo its own start leaves its notifier count raised: the device waits
    forever.  Today's rule with the undo is clean."""

    async def body(w: World) -> dict[str, Any]:
        w.mm.nonblock_failure_rule = rule
        await w.mm.mmap(0, 4 * P)
        await _populate(w, 4)
        kvm = KvmMmu(w.mm, w.checker)
        await kvm.register()
        mirror = HmmMirror(w.mm, w.checker, undo_on_refusal=undo)
        await mirror.register()
        reaped = Completion("reaped")
        out: dict[str, Any] = {}

        async def reaper() -> None:
            out["reaped"] = await w.mm.reap(0, 4 * P)
            reaped.complete_all()

        async def driver() -> None:
            async with mirror.driver_lock:
                await rt.checkpoint(("driver", "page-table lock held"))

        async def vcpu() -> None:
            await reaped.wait()
            out["vcpu"] = await kvm.fault(P, write=True)
            kvm.access(P, write=True)

        async def device() -> None:
            await reaped.wait()
            out["device"] = await mirror.fault(2 * P, write=True)
            mirror.access(2 * P, write=True)

        async with rt.task_group() as tg:
            tg.start_soon(reaper, name="reaper")
            tg.start_soon(driver, name="driver")
            tg.start_soon(vcpu, name="vcpu")
            tg.start_soon(device, name="device")
        return out

    return Scenario(
        f"reap-{rule}-{'undo' if undo else 'no-undo'}",
        _reap_vs_mirror.__doc__ or "",
        body,
        ("reaper", "driver", "vcpu", "device"),
    )


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_the_2018_rule_leaves_kvm_without_its_end(chooser: str) -> None:
    result = assert_found(_reap_vs_mirror("2018", True), chooser, "deadlock")
    assert result.failure is not None
    detail = result.failure.violation.detail
    assert "vcpu" in detail
    assert "kvm mmu_invalidate_in_progress == 0" in detail


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_failure_path_that_does_not_undo_its_start_hangs_its_own_faults(chooser: str) -> None:
    result = assert_found(_reap_vs_mirror("today", False), chooser, "deadlock")
    assert result.failure is not None
    detail = result.failure.violation.detail
    assert "device" in detail
    assert "hmm notifiers == 0" in detail


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_todays_rule_with_the_undo_is_clean(chooser: str) -> None:
    assert_clean(_reap_vs_mirror("today", True), chooser)


# --- mechanism ------------------------------------------------------------------------------


class Refuser:
    """A subscriber of one's own that refuses every non-blockable range."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.calls.append(("start", inv.blockable))
        if not inv.blockable:
            raise WouldBlock("busy")

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.calls.append(("end", inv.blockable))

    async def release(self) -> None:
        self.calls.append(("release", True))


class Counter(Refuser):
    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.calls.append(("start", inv.blockable))


@pytest.mark.parametrize(("rule", "ends"), [("today", [("end", False)]), ("2018", [])])
def test_after_a_refusal_only_todays_rule_ends_the_subscribers_that_started(
    rule: str, ends: list[tuple[str, bool]]
) -> None:
    async def body(w: World) -> dict[str, Any]:
        w.mm.nonblock_failure_rule = rule
        await w.mm.mmap(0, 2 * P)
        await _populate(w, 2)
        first, second = Counter(), Refuser()
        await w.mm.register_notifier(first)
        await w.mm.register_notifier(second)
        reaped = await w.mm.reap(0, 2 * P)
        return {
            "reaped": reaped,
            "first": first.calls,
            "second": second.calls,
            "mapped": w.mm.lookup(0) is not None,
        }

    run = run_world(body, protocol="odp2014")
    assert run.violations == ()
    assert run.sim.value == {
        "reaped": False,
        "first": [("start", False), *ends],
        "second": [("start", False)],  # the refuser never gets an end: nor does the caller
        "mapped": True,  # nothing was zapped
    }


def test_a_reap_nobody_refuses_zaps_the_anonymous_pages() -> None:
    async def body(w: World) -> dict[str, Any]:
        await w.mm.mmap(0, 2 * P)
        await _populate(w, 2)
        sub = Counter()
        await w.mm.register_notifier(sub)
        reaped = await w.mm.reap(0, 2 * P)
        return {"reaped": reaped, "calls": sub.calls, "mapped": w.mm.lookup(0) is not None}

    run = run_world(body, protocol="odp2014")
    assert run.sim.value == {
        "reaped": True,
        "calls": [("start", False), ("end", False)],
        "mapped": False,
    }


def test_the_reaper_gives_up_when_mmap_sem_is_busy() -> None:
    async def body(w: World) -> list[bool]:
        await w.mm.mmap(0, 2 * P)
        held, done = Completion("held"), Completion("done")
        got: list[bool] = []

        async def writer() -> None:
            async with w.mm.mmap_sem.write_locked():
                held.complete_all()
                await done.wait()

        async def reaper() -> None:
            await held.wait()
            got.append(await w.mm.reap(0, 2 * P))
            done.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(writer, name="writer")
            tg.start_soon(reaper, name="reaper")
        return got

    assert run_world(body, protocol="odp2014").sim.value == [False]


@pytest.mark.parametrize("protocol", ["odp2014", "kvm-seq", "interval-seq"])
def test_odp_protocols_refuse_by_default_and_get_no_end(protocol: str) -> None:
    async def body(w: World) -> dict[str, Any]:
        await w.mm.mmap(0, 4 * P)
        await _populate(w, 4)
        umem = await w.ctx.register_mr(0, 4 * P, name="A")
        reaped = await w.mm.reap(0, 4 * P)
        outcome = await w.ctx.fault(umem, P, write=True)
        return {"reaped": reaped, "fault": outcome.value}

    run = run_world(body, protocol=protocol)
    assert run.violations == ()
    assert run.sim.value == {"reaped": False, "fault": "resolved"}


def test_a_bad_core_rule_is_a_one_line_error() -> None:
    world = World.build("odp2014")
    with pytest.raises(InvalidArgument, match="nonblock_failure_rule must be one of today, 2018"):
        world.mm.nonblock_failure_rule = "2019"


def test_subscribers_check_their_arguments() -> None:
    world = World.build("odp2014")
    with pytest.raises(InvalidArgument, match="non-empty table name"):
        KvmMmu(world.mm, world.checker, "")
    with pytest.raises(InvalidArgument, match="undo_on_refusal must be a bool"):
        HmmMirror(world.mm, world.checker, undo_on_refusal="yes")  # type: ignore[arg-type]
