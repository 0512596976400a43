"""How `odp_async.odp.implicit` frees its children (found by mutation testing,
``tools/mutation.sh odp``): a child's notifier removal waits for the invalidation running
now (not one that ended before), and what an emptied child's free records and detaches."""

from __future__ import annotations

from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.addr import AddrRange
from odp_async.errors import InvalidArgument
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp.implicit import ImplicitMr
from odp_async.world import World, run_world


async def _mapped_imr(w: World, npages: int = 8, **options: bool) -> ImplicitMr:
    await w.mm.mmap(0, npages * P)
    for page in range(npages):
        await w.mm.cpu_fault(page * P, write=True)
    imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4, **options)
    await imr.register()
    return imr


def test_a_child_removed_during_an_invalidation_waits_for_that_one_to_end() -> None:
    """``mmu_interval_notifier_remove`` waits for the invalidation running now: a removal
    that starts after an earlier invalidation ended waits for the second one's end (and
    no longer), whichever count of earlier invalidations there was."""

    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        await imr.fault(4 * P)
        child = imr.children[1]
        out: list[Any] = []
        for n in (1, 2):  # a second round: one invalidation has ended before it
            inv = Invalidation(n, AddrRange.of(7 * P, P), InvalidateEvent.UNMAP)
            await imr.invalidate_range_start(inv)

            async def remove(n: int = n) -> None:
                await imr._destroy_child(child, "removed by the test")
                out.append(f"removed {n}")

            async with rt.task_group() as tg:
                tg.start_soon(remove, name="remove")
                for _ in range(5):
                    await rt.checkpoint("let the removal wait")
                out.append(f"ending {n}")
                await imr.invalidate_range_end(inv)
        return out

    run = run_world(body)
    assert run.sim.value == ["ending 1", "removed 1", "ending 2", "removed 2"]


def test_an_emptied_child_s_detach_checks_the_mr() -> None:
    """The invalidation that empties a child detaches it (``destroy_unused_implicit_child_mr``),
    touching the MR: an MR the checker knows freed is a use-after-free named there."""

    async def body(w: World) -> None:
        imr = await _mapped_imr(w, 4)
        await imr.fault(0)
        w.checker.freed(imr.key, "freed by hand")
        await w.mm.madvise_dontneed(0, 4 * P)

    run = run_world(body)
    details = [v.detail for v in run.violations if v.kind == "use-after-free"]
    assert (
        "destroy_unused_implicit_child_mr touched implicit MR imr after it was freed by hand"
        in details
    )


def test_a_child_freed_in_the_invalidation_leaves_the_notified_set_and_the_ksm() -> None:
    """With the ``free_in_invalidate`` mistake the child is freed on the spot, its free
    naming the invalidation, and its notifier and KSM entry go with it: a later
    invalidation of the same range does not reach it."""

    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w, 4, free_in_invalidate=True)
        await imr.fault(0)
        child = imr.children[0]
        before = sorted(imr.ksm)
        await w.mm.madvise_dontneed(0, 4 * P)
        out: list[Any] = [before, sorted(imr.ksm), child in imr.notified]
        await w.mm.madvise_dontneed(0, 4 * P)
        return out

    run = run_world(body)
    assert run.sim.value == [[0], [], False]
    assert [v.detail for v in run.violations] == []
    frees = [e.detail for e in run.events if e.kind == "free"]
    assert frees == ["imr child 0#1 freed: freed by the invalidation that emptied it"]


def test_a_reap_is_refused_with_the_reason() -> None:
    """The OOM reaper's non-blockable invalidation: the implicit MR refuses it, saying
    why (it takes the sleeping umem_mutex), and the refusal's event carries the reason."""

    async def body(w: World) -> bool:
        imr = await _mapped_imr(w, 4)
        await imr.fault(0)
        return await w.mm.reap(0, 4 * P)

    run = run_world(body)
    assert run.sim.value is False
    refused = [e.detail for e in run.events if e.kind == "invalidate-refused"]
    assert len(refused) == 1
    assert refused[0].endswith(": implicit MR imr takes umem_mutex (it sleeps)")


def test_a_removal_waits_until_every_overlapping_invalidation_has_ended() -> None:
    """Two invalidations run at once: the first one's end does not let a child's
    notifier removal through, the second one's does."""

    async def body(w: World) -> list[str]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        await imr.fault(4 * P)
        child = imr.children[1]
        first = Invalidation(1, AddrRange.of(7 * P, P), InvalidateEvent.UNMAP)
        second = Invalidation(2, AddrRange.of(6 * P, P), InvalidateEvent.UNMAP)
        await imr.invalidate_range_start(first)
        await imr.invalidate_range_start(second)
        out: list[str] = []

        async def remove() -> None:
            await imr._destroy_child(child, "removed by the test")
            out.append("removed")

        async with rt.task_group() as tg:
            tg.start_soon(remove, name="remove")
            for end in (first, second):
                for _ in range(5):
                    await rt.checkpoint("let the removal wait")
                out.append(f"ending inv{end.id}")
                await imr.invalidate_range_end(end)
        return out

    run = run_world(body)
    assert run.sim.value == ["ending inv1", "ending inv2", "removed"]


def test_an_invalidation_through_a_freed_child_is_a_use_after_free() -> None:
    async def body(w: World) -> None:
        imr = await _mapped_imr(w, 4)
        await imr.fault(0)
        w.checker.freed(imr.children[0].key, "freed by hand")
        await w.mm.madvise_dontneed(P, P)

    run = run_world(body)
    details = [v.detail for v in run.violations if v.kind == "use-after-free"]
    assert "an invalidation touched imr child 0#1 after it was freed by hand" in details


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


def test_a_fault_raced_by_an_invalidation_retries_after_earlier_ones_too() -> None:
    """``mmu_interval_read_retry``: an invalidation inside the fault's window makes it
    retry, also when earlier invalidations already bumped the child's seq; the retry maps
    the page the CPU has now, so the device never keeps the zapped frame."""

    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        await w.mm.madvise_dontneed(2 * P, P)  # an earlier invalidation: seq 1
        child = imr.children[0]
        racing = _InvalidatedOnce(w.mm, P, P)
        imr.mm = racing
        outcome = await imr.fault(P)
        imr.mm = w.mm
        entry = child.table.get(1)
        pte = w.mm.page_table.get(1)
        return [
            racing.fired,
            outcome.value,
            entry is not None
            and pte is not None
            and pte.frame is not None
            and entry.frame == pte.frame.id,
        ]

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.value == [True, "resolved", True]


def test_the_constructor_s_defaults_and_each_refusal_word_for_word() -> None:
    """An implicit MR is named "imr", in chunks of 4 pages, a fault retrying up to 12
    times, unless told otherwise; 1 is the least chunk and retry count; each bad argument
    is refused with a message naming it and its value."""

    async def body(w: World) -> list[Any]:
        def make(*args: Any, **kwargs: Any) -> Any:
            try:
                return ImplicitMr(w.mm, w.checker, w.workqueue, *args, **kwargs)
            except InvalidArgument as e:
                return str(e)

        plain = ImplicitMr(w.mm, w.checker, w.workqueue)
        least = ImplicitMr(w.mm, w.checker, w.workqueue, "x", child_pages=1, max_retries=1)
        out: list[Any] = [
            (plain.name, plain.key, plain.child_pages, plain.max_retries),
            (least.child_pages, least.max_retries),
            [plain.free_in_invalidate, plain.no_usecount_wait, plain.plain_store],
        ]
        out += [
            make(""),
            make(None),
            make(7),
            make("x", child_pages=0),
            make("x", child_pages=True),
            make("x", child_pages=2.0),
            make("x", max_retries=0),
            make("x", max_retries=False),
            make("x", max_retries="3"),
            make("x", free_in_invalidat=True),
            make("x", plain_store=1),
            make("x", no_usecount_wait=None),
        ]
        given = make("x", free_in_invalidate=True, no_usecount_wait=True, plain_store=True)
        out.append([given.free_in_invalidate, given.no_usecount_wait, given.plain_store])
        return out

    run = run_world(body)
    assert run.sim.error is None, run.sim.error
    assert run.sim.value == [
        ("imr", "implicit MR imr", 4, 12),
        (1, 1),
        [False, False, False],
        "an implicit MR needs a non-empty name, got ''",
        "an implicit MR needs a non-empty name, got None",
        "an implicit MR needs a non-empty name, got 7",
        "child_pages must be a positive int, got 0",
        "child_pages must be a positive int, got True",
        "child_pages must be a positive int, got 2.0",
        "max_retries must be a positive int, got 0",
        "max_retries must be a positive int, got False",
        "max_retries must be a positive int, got '3'",
        "implicit MR has no option 'free_in_invalidat' (its options: free_in_invalidate, "
        "no_usecount_wait, plain_store)",
        "implicit MR option 'plain_store' must be a bool, got 1",
        "implicit MR option 'no_usecount_wait' must be a bool, got None",
        [True, True, True],
    ]


def test_a_child_s_destruction_is_a_labelled_checkpoint_and_checks_the_child() -> None:
    """Destroying a child is a checkpoint labelled with the child, and it touches the
    child (its zap under the umem_mutex): a child the checker knows freed is a
    use-after-free named there."""

    async def body(w: World, free_child: bool) -> None:
        imr = await _mapped_imr(w, 4)
        await imr.fault(0)
        if free_child:
            w.checker.freed(imr.children[0].key, "freed by hand")
        await imr.deregister()

    run = run_world(lambda w: body(w, False), trace=True)
    assert run.violations == ()
    assert run.sim.trace is not None
    labels = [step[3] for step in run.sim.trace]
    assert ("destroy child", "imr child 0#1") in labels
    run = run_world(lambda w: body(w, True))
    details = [v.detail for v in run.violations if v.kind == "use-after-free"]
    assert "its destruction touched imr child 0#1 after it was freed by hand" in details


def test_an_mr_deregistered_during_an_invalidation_still_leaves_the_mm() -> None:
    """Deregistration waits for the running invalidation to remove each child's
    notifier, then unsubscribes the MR from the mm once no removal is pending."""

    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        inv = Invalidation(1, AddrRange.of(7 * P, P), InvalidateEvent.UNMAP)
        await imr.invalidate_range_start(inv)
        out: list[Any] = []

        async def deregister() -> None:
            await imr.deregister()
            out.append(w.mm.is_registered(imr))

        async with rt.task_group() as tg:
            tg.start_soon(deregister, name="deregister")
            for _ in range(5):
                await rt.checkpoint("let the deregistration wait")
            out.append("ending")
            await imr.invalidate_range_end(inv)
        return out

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.value == ["ending", False]


def test_a_child_s_table_is_named_after_the_mr_its_index_and_serial() -> None:
    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        await imr.fault(5 * P)

    run = run_world(body)
    installs = [(e.key, e.detail.split(" -> ")[0]) for e in run.events if e.kind == "install"]
    assert installs == [("imr/1#1", "imr/1#1[0x5000]")]


def test_a_child_s_creation_is_a_labelled_checkpoint_and_a_child_created_event() -> None:
    """The first fault in a chunk allocates its child: a checkpoint labelled
    ``("alloc child", mr, index)`` and a ``child-created`` event naming the child."""
    from odp_async._runtime import sim as _sim
    from odp_async.addr import PAGE_SIZE
    from odp_async.odp.implicit import ImplicitMr
    from odp_async.world import run_world

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * PAGE_SIZE)
        imr = ImplicitMr(w.mm, w.checker, w.workqueue, name="imr")
        await imr.register()
        await imr.fault(4 * PAGE_SIZE)

    run = run_world(body, trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    labels = [label for (_, _, op, label) in run.sim.trace if op == _sim.CHECKPOINT]
    allocs = [label for label in labels if isinstance(label, tuple) and "alloc" in str(label[0])]
    assert allocs == [("alloc child", "imr", 1)]
    created = [e for e in run.events if e.kind == "child-created"]
    assert len(created) == 1
    assert created[0].detail.startswith("imr child 1")


def test_an_implicit_mr_s_defaults_and_its_registration_event() -> None:
    """Built with no name, chunk size or retry bound, an implicit MR is ``imr``, with
    4-page children (a fault at page 4 makes chunk 1's child, [0x4000, 0x8000)) and 12
    attempts per child fault; its registration ends with a ``register-end`` event keyed by
    its name."""

    async def body(w: World) -> ImplicitMr:
        await w.mm.mmap(0, 8 * P)
        imr = ImplicitMr(w.mm, w.checker, w.workqueue)
        await imr.register()
        await imr.fault(4 * P)
        return imr

    run = run_world(body)
    imr = run.sim.unwrap()
    assert (imr.name, imr.child_pages, imr.max_retries) == ("imr", 4, 12)
    assert [(i, c.range) for i, c in imr.children.items()] == [(1, AddrRange(4 * P, 8 * P))]
    assert [(e.kind, e.key, e.detail) for e in run.events if e.kind == "register-end"] == [
        ("register-end", "imr", "implicit MR imr registered")
    ]
