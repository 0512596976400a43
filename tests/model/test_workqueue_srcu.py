"""Issue 10, item 5: the kernel workqueue and SRCU, as protocols and scenarios use them."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.check import Checker
from odp_async.errors import InvalidArgument
from odp_async.scenarios import Scenario
from odp_async.srcu import Srcu
from odp_async.sync import Completion
from odp_async.workqueue import WorkItem, Workqueue
from odp_async.world import World, run_world

from ._explore import CHOOSERS, assert_clean, assert_found


def _run(body: Any) -> Any:
    return run_world(body, protocol="odp2014")


# --- mechanism ------------------------------------------------------------------------------


def test_queueing_a_pending_item_does_nothing_and_it_runs_once() -> None:
    async def body(w: World) -> dict[str, Any]:
        runs: list[str] = []

        async def fn() -> None:
            runs.append(rt.task_name(rt.current_task()))

        work = WorkItem("w", fn)
        first = w.workqueue.schedule_work(work)
        second = w.workqueue.schedule_work(work)
        waited = await w.workqueue.flush_work(work)
        again = await w.workqueue.flush_work(work)
        return {"queued": (first, second), "runs": runs, "waited": (waited, again)}

    run = _run(body)
    assert run.sim.value == {
        "queued": (True, False),
        "runs": ["kworker:w"],
        "waited": (True, False),
    }


def test_an_item_queued_while_it_runs_runs_again_afterwards_never_beside_itself() -> None:
    async def body(w: World) -> list[str]:
        log: list[str] = []
        started, gate = Completion("started"), Completion("gate")

        async def fn() -> None:
            log.append("begin")
            started.complete_all()
            await gate.wait()
            await rt.checkpoint("in the work")
            log.append("end")

        work = WorkItem("w", fn)
        w.workqueue.queue_work(work)
        await started.wait()
        assert w.workqueue.queue_work(work)  # running, not pending: queued again
        gate.complete_all()
        await w.workqueue.flush_work(work)
        return log

    for seed in range(20):
        run = run_world(body, protocol="odp2014", seed=seed)
        assert run.sim.value == ["begin", "end", "begin", "end"], seed


def test_cancel_work_sync_takes_a_pending_item_off_the_queue() -> None:
    async def body(w: World) -> dict[str, Any]:
        runs: list[int] = []

        async def fn() -> None:
            runs.append(1)

        work = WorkItem("w", fn)
        w.workqueue.queue_work(work)
        was_pending = await w.workqueue.cancel_work_sync(work)
        idle = await w.workqueue.cancel_work_sync(work)
        await w.workqueue.flush()
        return {"pending": (was_pending, idle), "runs": runs}

    assert _run(body).sim.value == {"pending": (True, False), "runs": []}


def test_queueing_outside_a_running_workqueue_is_a_one_line_error() -> None:
    wq = Workqueue(Checker(), "events")

    async def nothing() -> None:
        pass

    with pytest.raises(InvalidArgument, match="workqueue events is not running"):
        wq.queue_work(WorkItem("w", nothing))
    with pytest.raises(InvalidArgument, match="non-empty name"):
        WorkItem("", nothing)


def test_the_same_item_on_two_queues_or_reinitialised_while_pending_is_a_double_queue() -> None:
    async def body(w: World) -> None:
        async def fn() -> None:
            pass

        other = Workqueue(w.checker, "events_unbound")
        work = WorkItem("w", fn)
        async with other.running():
            w.workqueue.queue_work(work)
            assert not other.queue_work(work)
            work.init(w.checker, fn)  # INIT_WORK of a pending item
            await w.workqueue.flush_work(work)

    run = _run(body)
    assert run.kinds == ("double-queue",)
    assert [v.detail for v in run.violations] == [
        "work w queued on events_unbound while pending on system_wq",
        "work w re-initialised while it is pending",
    ]


# --- flush_work under a lock the work item takes: deadlock ----------------------------------


def _flush_under_lock(fixed: bool) -> Scenario:
    """Deregistration of A flushes A's prefetch work (mlx5's ODP prefetch takes the
    region's lock) -- while holding that lock (the mistake), or after cancelling the work
    and before taking it (the fix)."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")

        async def prefetch() -> None:
            async with a.mutex:
                a.touch("the prefetch work")

        work = WorkItem("prefetch", prefetch)

        async def requester() -> None:
            w.workqueue.queue_work(work)

        async def teardown() -> None:
            if fixed:
                await w.workqueue.cancel_work_sync(work)
                async with a.mutex:
                    pass
            else:
                async with a.mutex:
                    await w.workqueue.flush_work(work)

        async with rt.task_group() as tg:
            tg.start_soon(requester, name="requester")
            tg.start_soon(teardown, name="teardown")

    name = "flush-after-unlock" if fixed else "flush-under-lock"
    return Scenario(name, _flush_under_lock.__doc__ or "", body, ("requester", "teardown"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_flush_work_under_the_lock_the_work_takes_deadlocks(chooser: str) -> None:
    result = assert_found(_flush_under_lock(False), chooser, "deadlock")
    assert result.failure is not None
    assert "work prefetch to finish" in result.failure.violation.detail


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_cancel_work_sync_before_the_lock_is_clean(chooser: str) -> None:
    assert_clean(_flush_under_lock(True), chooser)


# --- freeing a work item without cancel_work_sync: use-after-free ---------------------------


def _free_work(fixed: bool) -> Scenario:
    """A context with a deferred job is destroyed: it stops new requests (``dying``) and
    frees the job's memory -- right away (the mistake: a pending worker then runs on freed
    memory) or after ``cancel_work_sync`` (the fix)."""

    async def body(w: World) -> None:
        dying = [False]

        async def job() -> None:
            w.checker.used("ctx", "the deferred job")

        work = WorkItem("job", job)

        async def requester() -> None:
            if not dying[0]:
                w.workqueue.queue_work(work)

        async def destroy() -> None:
            dying[0] = True
            await rt.checkpoint("destroy")
            if fixed:
                await w.workqueue.cancel_work_sync(work)
            w.checker.freed("ctx", "freed by destroy")
            work.free(w.checker)

        async with rt.task_group() as tg:
            tg.start_soon(requester, name="requester")
            tg.start_soon(destroy, name="destroy")

    name = "free-after-cancel" if fixed else "free-pending-work"
    return Scenario(name, _free_work.__doc__ or "", body, ("requester", "destroy"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_freeing_a_pending_work_item_is_a_use_after_free(chooser: str) -> None:
    result = assert_found(_free_work(False), chooser, "use-after-free")
    assert result.failure is not None
    assert result.failure.violation.tasks == ("kworker:job",)


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_cancel_work_sync_then_free_is_clean(chooser: str) -> None:
    assert_clean(_free_work(True), chooser)


# --- SRCU: freeing a subscriber that a callback walk may still use --------------------------


def _srcu_free(mode: str) -> Scenario:
    """The notifier core's pattern (``mm/mmu_notifier.c``, v6.6): callbacks walk the
    subscribers inside an SRCU read section; unregister unhashes a subscriber and frees it
    -- at once (the mistake), after ``synchronize_srcu``, or from ``call_srcu`` (the
    deferred free of ``mmu_notifier_put``)."""

    async def body(w: World) -> None:
        srcu = Srcu("mmu_notifier_srcu", w.workqueue)
        subs = ["S"]

        async def invalidate() -> None:
            with srcu.read_section():
                for sub in list(subs):
                    await rt.checkpoint(("callback", sub))
                    w.checker.used(f"subscriber {sub}", "invalidate_range_start")

        async def free() -> None:
            w.checker.freed("subscriber S", f"freed ({mode})")

        async def unregister() -> None:
            subs.remove("S")  # hlist_del_rcu
            if mode == "immediate":
                await free()
            elif mode == "synchronize":
                await srcu.synchronize()
                await free()
            else:
                srcu.call_srcu("free S", free)

        async with rt.task_group() as tg:
            tg.start_soon(invalidate, name="invalidate")
            tg.start_soon(unregister, name="unregister")

    return Scenario(f"srcu-{mode}", _srcu_free.__doc__ or "", body, ("invalidate", "unregister"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_freeing_at_once_after_unhashing_is_a_use_after_free(chooser: str) -> None:
    result = assert_found(_srcu_free("immediate"), chooser, "use-after-free")
    assert result.failure is not None
    assert result.failure.violation.tasks == ("invalidate",)


@pytest.mark.parametrize("mode", ["synchronize", "call_srcu"])
@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_grace_period_before_the_free_is_clean(chooser: str, mode: str) -> None:
    assert_clean(_srcu_free(mode), chooser)


def test_synchronize_srcu_inside_its_own_read_section_deadlocks() -> None:
    async def body(w: World) -> None:
        srcu = Srcu("s")
        with srcu.read_section():
            await srcu.synchronize()

    run = _run(body)
    assert run.kinds == ("deadlock",)
    assert "s readers (synchronize_srcu)" in run.violations[0].detail


def test_srcu_misuse_is_a_one_line_error() -> None:
    srcu = Srcu("s")

    async def nothing() -> None:
        pass

    with pytest.raises(InvalidArgument, match="srcu_read_unlock\\(3\\) of s: no such section"):
        srcu.read_unlock(3)
    with pytest.raises(InvalidArgument, match="built without a workqueue"):
        srcu.call_srcu("x", nothing)
