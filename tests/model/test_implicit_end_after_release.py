"""An invalidation in flight across the mm's release walk still ends at an `ImplicitMr`.

`ImplicitMr` stands for mlx5's interval notifiers (its ``release`` "opens the itree's
invalidation"), so it declares ``INTERVAL_NOTIFIER``: the mm sends it the end of every
invalidation whose start it got, even when the release walk unhashed it in between
(``mn_itree_inv_end`` runs for every invalidation that began the itree, whatever
``mmu_notifier_release`` did to the hlist; mm/mmu_notifier.c, v6.6).  Without that, its
count of running invalidations stayed at 1 and a child-free work item waiting in
``_destroy_child`` (``mmu_interval_notifier_remove``) for the next quiescence waited
forever: the world's final workqueue flush reported a deadlock the kernel does not have.
An interval notifier's unregister waits for the ends it is owed (as
``mmu_interval_notifier_remove`` does), so a teardown right after it frees nothing an end
still reaches.  A plain subscriber unhashed meanwhile still gets no end."""

from __future__ import annotations

import re

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.mm import Invalidation
from odp_async.odp.implicit import ImplicitMr
from odp_async.sync import Completion
from odp_async.world import World, WorldRun, run_world


class _HoldsItsStart:
    """A subscriber registered after the ImplicitMr: its start, which runs after the
    ImplicitMr's, waits for `gate`, keeping the invalidation open there."""

    def __init__(self, gate: Completion) -> None:
        self.gate = gate

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        await self.gate.wait()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        pass

    async def release(self) -> None:
        pass


async def _until(predicate: object) -> None:
    for _ in range(10_000):
        if predicate():  # type: ignore[operator]
            return
        await rt.checkpoint("until")
    raise AssertionError("never held")


def _child0_freed_by_its_work(run: WorldRun) -> bool:
    return any(
        (e.kind, e.key, e.task) == ("free", "imr child 0#1", "kworker:free imr child 0#1")
        for e in run.events
    )


async def _exit_with_an_invalidation_in_flight(w: World, *, end_first: bool = False) -> None:
    await w.mm.mmap(0, 8 * P)
    for page in range(8):
        await w.mm.cpu_fault(page * P, write=True)
    imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4)
    await imr.register()
    await imr.fault(0)
    await imr.fault(4 * P)
    child0 = imr.children[0]
    child0.usecount += 1  # a fault still on child 0: its free work waits for it
    await w.mm.madvise_dontneed(0, 4 * P)
    gate = Completion("x may end")
    await w.mm.register_notifier(_HoldsItsStart(gate))
    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 4 * P, 4 * P, name="X")
        await _until(lambda: imr._active == 1)  # X's start reached the ImplicitMr
        imr._deref_child(child0)  # the fault ends: the work goes on to remove child 0
        await _until(lambda: imr._removing >= 1)  # ...and waits for X to end
        gate.complete_all()
        if end_first:
            await _until(lambda: imr._active == 0)  # X ended there; exit may come next
        await w.mm.exit()
    assert imr._active == 0, imr._active  # one end per start, none twice


def test_an_invalidation_in_flight_across_exit_still_ends_at_the_implicit_mr() -> None:
    runs = [run_world(_exit_with_an_invalidation_in_flight, seed=s) for s in range(20)]
    stuck = [str(r.sim.deadlock) for r in runs if r.sim.outcome == "deadlock"]
    assert stuck == [], stuck[0]
    assert {r.sim.outcome for r in runs} == {"ok"}
    assert all(_child0_freed_by_its_work(r) for r in runs)


async def _exit_right_after_the_end(w: World) -> None:
    await _exit_with_an_invalidation_in_flight(w, end_first=True)


def test_a_work_item_woken_by_an_end_still_sees_the_quiescence_after_the_release_walk() -> None:
    # X's end wakes the child-free work, and the release walk (itself counted as an
    # invalidation) may run before the work re-checks: each of them must move the count of
    # quiescences forward, or the work finds it where it started waiting and parks forever.
    runs = [run_world(_exit_right_after_the_end, seed=s) for s in range(20)]
    stuck = [str(r.sim.deadlock) for r in runs if r.sim.outcome == "deadlock"]
    assert stuck == [], stuck[0]
    assert {r.sim.outcome for r in runs} == {"ok"}
    assert all(_child0_freed_by_its_work(r) for r in runs)


class _Counts:
    """A subscriber counting its callbacks; its start waits for `gate`."""

    def __init__(self, gate: Completion) -> None:
        self.gate = gate
        self.starts = self.ends = self.releases = 0
        self.ended: list[Invalidation] = []  # the invalidations its ends were given

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.starts += 1
        await self.gate.wait()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.ends += 1
        self.ended.append(inv)

    async def release(self) -> None:
        self.releases += 1


class _IntervalCounts(_Counts):
    INTERVAL_NOTIFIER = True


@pytest.mark.parametrize(("kind", "ends"), [(_Counts, 0), (_IntervalCounts, 1)])
def test_only_an_interval_notifier_gets_the_end_after_the_release_walk_unhashed_it(
    kind: type[_Counts], ends: int
) -> None:
    async def scenario(w: World) -> tuple[int, int, int]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0, write=True)
        gate = Completion("may end")
        sub = kind(gate)
        await w.mm.register_notifier(sub)
        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")
            await _until(lambda: sub.starts == 1)
            await w.mm.exit()  # the release walk unhashes it while X is in its start
            gate.complete_all()
        # the late end is the invalidation's own
        assert [str(inv) for inv in sub.ended] == ["inv0 madvise-dontneed [0x0, 0x1000)"] * ends
        return sub.starts, sub.ends, sub.releases

    run = run_world(scenario, seed=0)
    assert run.sim.outcome == "ok", run.sim.deadlock
    assert run.sim.value == (1, ends, 1)


@pytest.mark.parametrize(("kind", "ends"), [(_Counts, 0), (_IntervalCounts, 1)])
def test_an_interval_notifier_unregister_waits_for_the_end_it_is_owed(
    kind: type[_Counts], ends: int
) -> None:
    async def scenario(w: World) -> tuple[int, int, bool]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0, write=True)
        sub = kind(Completion("no wait", gate=True))
        sub.gate.complete_all()
        await w.mm.register_notifier(sub)
        gate = Completion("x may end")
        await w.mm.register_notifier(_HoldsItsStart(gate))
        unregistered = Completion("unregistered")

        async def teardown() -> None:
            await w.mm.teardown_notifier(sub, _nothing)
            unregistered.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")
            await _until(lambda: sub.starts == 1)  # X's start returned at `sub`
            tg.start_soon(teardown, name="teardown")
            await _until(lambda: sub.releases == 1 and not w.mm.is_registered(sub))
            for _ in range(20):  # the teardown may go on now, if it does not wait
                await rt.checkpoint("let it")
            early = unregistered.statistics().completed_all
            gate.complete_all()
        return sub.starts, sub.ends, early

    for seed in range(10):
        run = run_world(scenario, seed=seed)
        assert run.sim.outcome == "ok", run.sim.deadlock
        assert run.violations == (), run.violations[0].describe()
        # the plain one is torn down at once and gets no end; the interval one is torn
        # down only after its end, so nothing reaches it freed
        assert run.sim.value == (1, ends, ends == 0)


async def _nothing() -> None:
    pass


class _HoldsByRange:
    """A subscriber whose start of an invalidation over page ``n`` waits for
    ``gates[n]``."""

    def __init__(self, gates: list[Completion]) -> None:
        self.gates = gates
        self.held = 0  # starts here: each came after the earlier subscriber's returned

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.held += 1
        await self.gates[inv.range.start // P].wait()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        pass

    async def release(self) -> None:
        pass


async def _owed_two_ends(w: World) -> tuple[_Counts, _HoldsByRange]:
    # `sub` (an interval notifier) got the starts of X (page 0) and Y (page 1); each of
    # them is held at the next subscriber until its gate opens
    await w.mm.mmap(0, 2 * P)
    for page in range(2):
        await w.mm.cpu_fault(page * P, write=True)
    sub = _IntervalCounts(Completion("no wait", gate=True))
    sub.gate.complete_all()
    await w.mm.register_notifier(sub)
    holder = _HoldsByRange([Completion(f"{name} may end") for name in ("X", "Y")])
    await w.mm.register_notifier(holder)
    return sub, holder


def test_an_interval_notifier_unregister_waits_for_every_end_it_is_owed() -> None:
    async def scenario(w: World) -> list[tuple[int, bool]]:
        sub, holder = await _owed_two_ends(w)
        unregistered = Completion("unregistered")
        seen = []

        async def teardown() -> None:
            await w.mm.teardown_notifier(sub, _nothing)
            unregistered.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")
            tg.start_soon(w.mm.madvise_dontneed, P, P, name="Y")
            await _until(lambda: holder.held == 2)
            tg.start_soon(teardown, name="teardown")
            for gate in holder.gates:
                gate.complete_all()
                for _ in range(30):  # the teardown may go on now, if it does not wait
                    await rt.checkpoint("let it")
                seen.append((sub.ends, unregistered.statistics().completed_all))
        return seen

    for seed in range(10):
        run = run_world(scenario, seed=seed)
        assert run.sim.outcome == "ok", run.sim.deadlock
        assert run.violations == (), run.violations[0].describe()
        assert run.sim.value == [(1, False), (2, True)]


def test_an_unregister_waiting_for_an_owed_end_is_named_in_a_deadlock() -> None:
    async def scenario(w: World) -> None:
        sub, holder = await _owed_two_ends(w)
        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")  # its gate never opens
            await _until(lambda: holder.held == 1)
            await w.mm.unregister_notifier(sub)

    run = run_world(scenario, seed=0)
    assert run.sim.outcome == "deadlock"
    assert (
        "main waits for invalidation ends owed to an interval notifier "
        "(mmu_interval_notifier_remove) held by X" in str(run.sim.deadlock)
    )


def test_an_interval_notifier_freed_at_once_is_reached_by_its_late_end() -> None:
    # the historical "no-release" teardown unhashes and frees without waiting: the end
    # the itree still owes it reaches freed memory
    async def scenario(w: World) -> str:
        w.mm.notifier_teardown = "no-release"
        sub, holder = await _owed_two_ends(w)
        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")
            await _until(lambda: holder.held == 1)  # its start at `sub` returned
            await w.mm.teardown_notifier(sub, _nothing)
            holder.gates[0].complete_all()
        return f"{sub!r}#0"

    run = run_world(scenario, seed=0)
    assert run.sim.outcome == "ok", run.sim.deadlock
    assert [re.sub(r"step \d+", "step N", v.describe()) for v in run.violations] == [
        "use-after-free (step N, X): the notifier chain walk after its callback touched "
        f"subscriber {run.sim.value} after it was freed by its teardown (no-release)"
    ]
