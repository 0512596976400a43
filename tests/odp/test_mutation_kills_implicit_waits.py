"""`odp_async.odp.implicit`'s waits, pinned for the last survivors of the mutation runs
(``tools/mutation-equivalents.md``): each wait queue and lock of an implicit MR says what
it is in a deadlock report, and concurrent child removals unsubscribe the MR once, after
the last of them."""

from __future__ import annotations

from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.addr import AddrRange
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp.implicit import ImplicitMr
from odp_async.world import World, run_world


async def _mapped_imr(w: World, cls: type[ImplicitMr] = ImplicitMr) -> ImplicitMr:
    await w.mm.mmap(0, 8 * P)
    for page in range(8):
        await w.mm.cpu_fault(page * P, write=True)
    imr = cls(w.mm, w.checker, w.workqueue, "imr", child_pages=4)
    await imr.register()
    await imr.fault(0)
    await imr.fault(4 * P)
    return imr


def _inv(n: int, first: int, npages: int) -> Invalidation:
    return Invalidation(n, AddrRange.of(first * P, npages * P), InvalidateEvent.UNMAP)


def _hang(body: Any) -> list[str]:
    """The lines of the deadlock report of `body`, which never ends an invalidation."""
    deadlock = run_world(body).sim.deadlock
    assert deadlock is not None
    return sorted(deadlock.describe().split("; "))


def test_a_fault_waiting_for_invalidations_to_end_names_the_wait() -> None:
    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        await imr.invalidate_range_start(_inv(1, 7, 1))
        await imr.fault(0)  # mmu_interval_read_begin: waits for the end that never comes

    assert _hang(body) == ["main waits for WaitQueue 'imr no invalidation running'"]


def test_a_deregister_waiting_for_the_usecount_names_the_wait() -> None:
    """The invalidation empties child 0: its free work holds the MR and waits (removing
    the notifier) for the invalidation's end, so deregistration waits for the work."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        await imr.invalidate_range_start(_inv(1, 0, 4))
        await imr.deregister()

    assert _hang(body) == [
        "kworker:free imr child 0#1 waits for WaitQueue 'imr no invalidation running'",
        "main waits for WaitQueue 'imr usecount == 0'",
    ]


def test_a_child_free_waiting_for_a_fault_names_the_wait() -> None:
    """A fault on child 0 waits for a running invalidation; a second one empties the
    child, whose free work then waits for that fault's reference."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        await imr.invalidate_range_start(_inv(1, 7, 1))
        async with rt.task_group() as tg:
            tg.start_soon(imr.fault, 0, name="fault")
            for _ in range(5):
                await rt.checkpoint("let the fault wait")
            await imr.invalidate_range_start(_inv(2, 0, 4))

    assert _hang(body) == [
        "fault waits for WaitQueue 'imr no invalidation running'",
        "kworker:free imr child 0#1 waits for WaitQueue 'imr child usecount == 0'",
        "main waits for its task group's children to finish: fault",
    ]


def test_a_child_s_umem_mutex_is_named_after_the_child() -> None:
    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        child = imr.children[0]
        await imr.invalidate_range_start(_inv(1, 7, 1))
        await imr.invalidate_range_end(_inv(1, 7, 1))
        async with child.mutex:
            await imr.fault(P)  # its commit takes the child's umem_mutex again

    assert _hang(body) == [
        "main waits for Mutex 'imr/0#1.umem_mutex' held by main itself (recursive locking)"
    ]


class _Logged(ImplicitMr):
    """An implicit MR noting which children's free work is pending when it leaves the mm."""

    log: list[object]

    async def release(self) -> None:
        self.log.append(sorted(child.key for child in self._freeing))
        await super().release()


def test_concurrent_child_removals_unsubscribe_the_mr_after_the_last_one() -> None:
    """One invalidation empties both children: their free works each wait (removing the
    notifier) for its end while the MR is deregistered.  Only the last removal to finish
    unsubscribes the MR (``release`` runs once, with no other child's free pending)."""

    async def body(w: World) -> list[object]:
        imr = await _mapped_imr(w, _Logged)
        assert isinstance(imr, _Logged)
        imr.log = []
        inv = _inv(1, 0, 8)
        await imr.invalidate_range_start(inv)
        async with rt.task_group() as tg:
            tg.start_soon(imr.deregister, name="deregister")
            for _ in range(10):
                await rt.checkpoint("let the works and the deregistration wait")
            imr.log.append("ending")
            await imr.invalidate_range_end(inv)
        imr.log.append(w.mm.is_registered(imr))
        return imr.log

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.value == ["ending", ["imr child 0#1"], False]
