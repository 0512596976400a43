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

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.starts += 1
        await self.gate.wait()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.ends += 1

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
