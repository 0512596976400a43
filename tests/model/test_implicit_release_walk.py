"""The implicit MR's release walk against a child's destruction (trial 19b audit, after
finding f2).  The walk takes each child's lock in turn; a child destroyed meanwhile must
not be freed under it: in the kernel ``mn_itree_release`` opens the itree's invalidation,
so ``mmu_interval_notifier_remove`` waits for it to end.  The walk counts as a running
invalidation, and checks each child when its lock is granted."""

from __future__ import annotations

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.odp.implicit import ImplicitMr
from odp_async.world import World, run_world


def test_a_child_destroyed_during_the_release_walk_is_freed_after_it() -> None:
    seen: list[str] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        for page in range(8):
            await w.mm.cpu_fault(page * P, write=True)
        imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4)
        await imr.register()
        await imr.fault(0, write=True)
        await imr.fault(4 * P, write=True)
        first, second = imr.children[0], imr.children[1]
        await first.mutex.acquire()  # the walk waits at the first child

        async def destroy() -> None:
            del imr.children[1]
            await imr._destroy_child(second, "destroyed meanwhile")
            seen.append("second freed")

        async def walk() -> None:
            await imr.release()
            seen.append("walk ended")

        async with rt.task_group() as tg:
            tg.start_soon(walk, name="walk")
            while not first.mutex.statistics().tasks_waiting:
                await rt.checkpoint()
            tg.start_soon(destroy, name="destroy")
            for _ in range(20):
                await rt.checkpoint()
            seen.append(f"freed before the walk ended: {w.checker.is_freed(second.key)}")
            first.mutex.release()

    for seed in range(5):
        seen.clear()
        run = run_world(body, seed=seed)
        run.sim.unwrap()
        assert run.violations == (), (seed, run.violations)
        assert seen == ["freed before the walk ended: False", "walk ended", "second freed"]
