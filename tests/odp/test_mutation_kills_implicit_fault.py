"""The implicit MR's fault path and release walk in detail (found lacking by mutation
testing, ``tools/mutation.sh odp``): what a fault accepts, where it checks what it uses,
how it finds or creates a chunk's child, and how the release walk counts as a running
invalidation beside others."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.choosers import ScriptChooser
from odp_async.addr import PAGE_SIZE as P
from odp_async.addr import AddrRange
from odp_async.errors import InvalidArgument
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp.implicit import ImplicitMr
from odp_async.world import World, run_world

TOP = 1 << 47


async def _mapped_imr(w: World, npages: int = 8, **options: bool | int) -> ImplicitMr:
    await w.mm.mmap(0, npages * P)
    for page in range(npages):
        await w.mm.cpu_fault(page * P, write=True)
    imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4, **options)
    await imr.register()
    return imr


def _use_after_free(run: Any) -> list[str]:
    return [v.detail for v in run.violations if v.kind == "use-after-free"]


# --- what a fault accepts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "npages", "message"),
    [
        (0, 0, "npages must be a positive int, got 0"),
        (0, True, "npages must be a positive int, got True"),
        (0, 2.0, "npages must be a positive int, got 2.0"),
        (0, "1", "npages must be a positive int, got '1'"),
        (-1, 1, "fault address must be in [0, 0x800000000000), got -1"),
        (TOP, 1, f"fault address must be in [0, 0x800000000000), got {TOP}"),
        (True, 1, "fault address must be in [0, 0x800000000000), got True"),
        (1.0, 1, "fault address must be in [0, 0x800000000000), got 1.0"),
        ("0", 1, "fault address must be in [0, 0x800000000000), got '0'"),
    ],
)
def test_a_fault_s_bad_address_or_count_is_refused_by_name(
    address: object, npages: object, message: str
) -> None:
    async def body(w: World) -> str:
        imr = await _mapped_imr(w)
        try:
            await imr.fault(address, npages=npages)  # type: ignore[arg-type]
        except InvalidArgument as e:
            return str(e)
        return "accepted"

    assert run_world(body).sim.value == message


def test_a_fault_is_a_checkpoint_labelled_with_the_mr_and_its_first_page() -> None:
    """The fault's lookup of the MR (``xa_load(odp_mkeys)``) comes after a checkpoint
    labelled ``("fault", mr, first page)``: a deregistration may run before it."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        await imr.fault(5 * P + 123)

    run = run_world(body, trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    labels = [label for (_, _, op, label) in run.sim.trace if op == sim.CHECKPOINT]
    assert ("fault", "imr", 5 * P) in labels


def test_a_fault_checks_the_mr_where_it_takes_its_reference() -> None:
    """A fault touches the MR when it takes its reference (``mmkey.usecount``): an MR
    the checker knows freed is a use-after-free named there, by the fault."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        w.checker.freed(imr.key, "freed by hand")
        await imr.fault(0)

    details = _use_after_free(run_world(body))
    assert "a fault touched implicit MR imr after it was freed by hand" in details


# --- finding or creating a chunk's child -----------------------------------------------


def test_a_fault_in_a_chunk_with_a_child_uses_it_without_allocating_another() -> None:
    """``implicit_get_child_mr`` runs only for a chunk with no child in the xarray: a
    second fault in the chunk takes a reference on the child there, allocating none
    (no allocation checkpoint, no child made and freed)."""

    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        first = imr.children[0]
        await imr.fault(P, npages=3)
        return [imr.children[0] is first, first.key, first.usecount, sorted(first.table.entries)]

    run = run_world(body, trace=True)
    assert run.violations == ()
    assert run.sim.unwrap() == [True, "imr child 0#1", 1, [0, 1, 2, 3]]
    assert run.sim.trace is not None
    allocs = [
        label
        for (_, _, op, label) in run.sim.trace
        if op == sim.CHECKPOINT and isinstance(label, tuple) and label[0] == "alloc child"
    ]
    assert allocs == [("alloc child", "imr", 0)]
    assert [e.detail for e in run.events if e.kind == "free"] == []
    assert [(e.key, e.detail) for e in run.events if e.kind == "child-created"] == [
        ("imr child 0#1", "imr child 0#1 created [0x0, 0x4000)")
    ]


def test_two_faults_racing_to_create_a_chunk_s_child_keep_the_first_and_free_the_other() -> None:
    """Both faults allocate a child (the allocation sleeps); the first to insert wins,
    the other frees its own child, saying why, and faults through the winner's."""

    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        outcomes: list[str] = []

        async def fault(page: int) -> None:
            outcomes.append((await imr.fault(page * P)).value)

        async with rt.task_group() as tg:
            tg.start_soon(fault, 0, name="a")
            tg.start_soon(fault, 1, name="b")
        child = imr.children[0]
        return [outcomes, child.key, sorted(child.table.entries), child.usecount]

    chooser = ScriptChooser([("a", "alloc child"), ("b", "alloc child"), ("a", None)])
    run = run_world(body, chooser=chooser)
    assert chooser.is_done
    assert run.violations == ()
    assert run.sim.unwrap() == [["resolved", "resolved"], "imr child 0#1", [0, 1], 1]
    assert [(e.key, e.detail) for e in run.events if e.kind == "free"] == [
        ("imr child 0#2", "imr child 0#2 freed: lost the race to create it")
    ]
    assert [e.key for e in run.events if e.kind == "child-created"] == ["imr child 0#1"]


def test_a_child_created_after_its_mr_was_freed_is_a_use_after_free_there() -> None:
    """With the ``no_usecount_wait`` mistake a deregistration frees the MR while a fault
    still sleeps in a child's allocation: the fault's insert into the freed MR's xarray
    is the use-after-free, named as the child's creation."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w, no_usecount_wait=True)
        async with rt.task_group() as tg:
            tg.start_soon(imr.fault, 0, name="fault")
            tg.start_soon(imr.deregister, name="dereg")

    chooser = ScriptChooser([("fault", "alloc child"), ("dereg", None), ("fault", None)])
    run = run_world(body, chooser=chooser)
    assert chooser.is_done
    assert "a child's creation touched implicit MR imr after it was deregistered" in (
        _use_after_free(run)
    )


# --- a child's fault ----------------------------------------------------------------------


class _InvalidatedOnce:
    """The mm as an implicit MR sees it, with one ``madvise(DONTNEED)`` of `rng` run
    right after the first `get_user_pages` returns: an invalidation inside the fault's
    window, between its ``read_begin`` and its ``read_retry``."""

    def __init__(self, mm: Any, start: int, length: int) -> None:
        self._mm = mm
        self._range = (start, length)
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mm, name)

    async def get_user_pages(self, rng: AddrRange, *, write: bool) -> Any:
        pages = await self._mm.get_user_pages(rng, write=write)
        if not self.fired:
            self.fired = True
            await self._mm.madvise_dontneed(*self._range)
        return pages


def test_a_child_fault_s_retry_is_a_checkpoint_labelled_retry() -> None:
    """Each attempt of a child's fault starts at a checkpoint labelled with the child,
    the first page and ``begin`` for the first attempt, ``retry`` for the others; the
    install under the lock is labelled ``update``."""

    async def body(w: World) -> str:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        imr.mm = _InvalidatedOnce(w.mm, 2 * P, P)  # type: ignore[assignment]
        return (await imr.fault(P)).value

    run = run_world(body, trace=True)
    assert run.violations == ()
    assert run.sim.unwrap() == "resolved"
    assert run.sim.trace is not None
    steps = [
        label[3]
        for (_, _, op, label) in run.sim.trace
        if op == sim.CHECKPOINT
        and isinstance(label, tuple)
        and label[:3] == ("fault", "imr child 0#1", P)
    ]
    assert steps == ["begin", "retry", "update"]


def test_a_retry_on_a_child_freed_by_the_invalidation_is_a_use_after_free() -> None:
    """With the ``free_in_invalidate`` mistake the invalidation that empties a child
    frees it while a fault is in its window: the fault's commit and its retry each touch
    the freed child, and each is named."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w, 4, free_in_invalidate=True)
        imr.mm = _InvalidatedOnce(w.mm, 0, 4 * P)  # type: ignore[assignment]
        await imr.fault(P)

    details = _use_after_free(run_world(body))
    why = "after it was freed by the invalidation that emptied it"
    assert f"a fault's commit touched imr child 0#1 {why}" in details
    assert f"a fault touched imr child 0#1 {why}" in details


class _InvalidatedEachTime(_InvalidatedOnce):
    """As `_InvalidatedOnce`, the ``madvise(DONTNEED)`` after every `get_user_pages`."""

    async def get_user_pages(self, rng: AddrRange, *, write: bool) -> Any:
        self.fired = False
        return await super().get_user_pages(rng, write=write)


def test_a_child_fault_refused_max_retries_times_starves_on_the_child_s_table() -> None:
    """A child's fault whose every attempt is refused (an invalidation of its chunk in
    each window) gives up after ``max_retries`` attempts: starvation, named by the
    child's table and the fault's range."""

    async def body(w: World) -> str:
        imr = await _mapped_imr(w, max_retries=3)
        await imr.fault(0)
        imr.mm = _InvalidatedEachTime(w.mm, 2 * P, P)  # type: ignore[assignment]
        return (await imr.fault(P)).value

    run = run_world(body)
    assert run.sim.unwrap() == "starved"
    assert [(v.kind, v.detail) for v in run.violations] == [
        ("starvation", "a fault on imr/0#1 [0x1000, 0x2000) retried 3 times")
    ]


# --- the release walk -------------------------------------------------------------------


def test_the_release_walk_counts_as_one_more_running_invalidation() -> None:
    """The mm's release runs while another invalidation is running: a child's notifier
    removal after the walk still waits for that invalidation's end (the walk's end is
    not the last), and once it ended the MR's deregistration removes its other child
    at once (no invalidation is left running)."""

    async def body(w: World) -> list[str]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        await imr.fault(4 * P)
        second = imr.children[1]
        inv = Invalidation(1, AddrRange.of(7 * P, P), InvalidateEvent.UNMAP)  # untranslated
        await imr.invalidate_range_start(inv)
        await imr.release()
        out: list[str] = []

        async def remove() -> None:
            del imr.children[1]
            await imr._destroy_child(second, "removed by the test")
            out.append("removed")

        async with rt.task_group() as tg:
            tg.start_soon(remove, name="remove")
            for _ in range(5):
                await rt.checkpoint("let the removal wait")
            out.append("ending")
            await imr.invalidate_range_end(inv)
        await imr.deregister()
        out.append("deregistered")
        return out

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.unwrap() == ["ending", "removed", "deregistered"]


def test_a_child_destroyed_during_the_release_walk_waits_for_it_after_earlier_ends() -> None:
    """A removal waiting for the release walk is let through by the walk's end also
    when invalidations ended before (the count of ends moves on from the one it saw)."""

    async def body(w: World) -> list[str]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        await imr.fault(4 * P)
        await w.mm.madvise_dontneed(7 * P, P)  # an invalidation that ended: one end seen
        first, second = imr.children[0], imr.children[1]
        await first.mutex.acquire()  # the walk waits at the first child
        out: list[str] = []

        async def destroy() -> None:
            del imr.children[1]
            await imr._destroy_child(second, "destroyed meanwhile")
            out.append("second freed")

        async def walk() -> None:
            await imr.release()
            out.append("walk ended")

        async with rt.task_group() as tg:
            tg.start_soon(walk, name="walk")
            while not first.mutex.statistics().tasks_waiting:
                await rt.checkpoint()
            tg.start_soon(destroy, name="destroy")
            for _ in range(20):
                await rt.checkpoint()
            out.append(f"freed before the walk ended: {w.checker.is_freed(second.key)}")
            first.mutex.release()
        return out

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.unwrap() == ["freed before the walk ended: False", "walk ended", "second freed"]


def test_the_release_walk_names_a_child_freed_while_it_waited() -> None:
    """With the ``free_in_invalidate`` mistake an invalidation frees a child while the
    release walk waits at another child's lock: the walk checks each child when it gets
    its lock, so the freed one is a use-after-free named as the walk's."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w, free_in_invalidate=True)
        await imr.fault(0)
        await imr.fault(4 * P)
        first = imr.children[0]
        await first.mutex.acquire()
        async with rt.task_group() as tg:
            tg.start_soon(imr.release, name="walk")
            while not first.mutex.statistics().tasks_waiting:
                await rt.checkpoint()
            inv = Invalidation(1, AddrRange.of(4 * P, 4 * P), InvalidateEvent.UNMAP)
            await imr.invalidate_range_start(inv)  # empties the second child: freed
            await imr.invalidate_range_end(inv)
            first.mutex.release()

    details = _use_after_free(run_world(body))
    assert (
        "the release walk touched imr child 1#2 after it was freed by the invalidation that "
        "emptied it"
    ) in details
