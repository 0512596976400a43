"""`odp_async.odp.implicit` mechanisms no other test pinned (found by mutation testing,
``tools/mutation.sh odp``): what a DMA through an implicit MR checks, records and
refuses."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async.addr import PAGE_SIZE as P
from odp_async.errors import InvalidArgument
from odp_async.odp.implicit import ImplicitChild, ImplicitMr
from odp_async.world import World, run_world

TOP = 1 << 47


async def _mapped_imr(w: World, npages: int = 8) -> ImplicitMr:
    await w.mm.mmap(0, npages * P)
    for page in range(npages):
        await w.mm.cpu_fault(page * P, write=True)
    imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4)
    await imr.register()
    return imr


@pytest.mark.parametrize("bad", [-1, TOP, TOP + P, "0x1000", 1.0, None])
def test_a_dma_address_outside_the_address_space_is_refused(bad: object) -> None:
    async def body(w: World) -> str:
        imr = await _mapped_imr(w)
        try:
            await imr.dma(bad)  # type: ignore[arg-type]
        except InvalidArgument as e:
            return str(e)
        return "accepted"

    assert run_world(body).sim.value == f"DMA address must be in [0, 0x800000000000), got {bad!r}"


def test_the_first_and_last_addresses_are_dma_addresses() -> None:
    async def body(w: World) -> list[str]:
        imr = await _mapped_imr(w)
        # the last page is not mapped: the DMA's fault fails, but the address is accepted
        return [await imr.dma(0), await imr.dma(TOP - 1)]

    assert run_world(body).sim.value == ["ok", "error: page fault failed"]


def test_a_dma_reads_unless_told_to_write_and_records_each_access() -> None:
    async def body(w: World) -> list[str]:
        imr = await _mapped_imr(w)
        return [await imr.dma(2 * P), await imr.dma(2 * P, write=True)]

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.value == ["ok", "ok"]
    dmas = [(e.kind, e.key, e.detail, e.address) for e in run.events if e.kind == "dma"]
    assert dmas == [
        ("dma", "imr/0#1", "DMA read imr/0#1[0x2000]", 2 * P),
        ("dma", "imr/0#1", "DMA write imr/0#1[0x2000]", 2 * P),
    ]


def test_a_read_only_translation_is_faulted_again_for_a_write() -> None:
    """A read fault maps the page read-only on the device; a DMA write through it faults
    (for write) first, then goes through a writable translation."""

    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        await imr.fault(P)  # read: a read-only translation
        child = imr.children[0]
        before = child.table.get(1)
        assert before is not None
        out: list[Any] = [before.writable, await imr.dma(P, write=True)]
        after = child.table.get(1)
        assert after is not None
        out.append(after.writable)
        return out

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.value == [False, "ok", True]


def test_a_dma_to_a_page_of_an_existing_child_without_a_translation_faults_first() -> None:
    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        await imr.fault(0)  # child 0 exists, with page 0 only
        child = imr.children[0]
        out: list[Any] = [sorted(child.table.entries)]
        out.append(await imr.dma(3 * P))
        out.append(sorted(child.table.entries))
        return out

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.value == [[0], "ok", [0, 3]]


def test_each_dma_attempt_is_a_labelled_checkpoint() -> None:
    async def body(w: World) -> str:
        imr = await _mapped_imr(w)
        return await imr.dma(2 * P)  # no child yet: attempt, fault, attempt

    run = run_world(body, trace=True)
    assert run.sim.value == "ok"
    assert run.sim.trace is not None
    labels = [step[3] for step in run.sim.trace]
    assert labels.count(("dma", "imr", 2)) == 2


def test_a_dma_through_a_child_the_checker_knows_freed_is_a_use_after_free() -> None:
    async def body(w: World) -> str:
        imr = await _mapped_imr(w)
        await imr.fault(P)
        child = imr.children[0]
        w.checker.freed(child.key, "freed by hand")
        return await imr.dma(P)

    run = run_world(body)
    assert run.sim.value == "ok"
    details = [v.detail for v in run.violations if v.kind == "use-after-free"]
    assert details == ["a DMA touched imr child 0#1 after it was freed by hand"]


def test_deregister_records_its_begin_the_children_s_and_the_mr_s_frees() -> None:
    async def body(w: World) -> list[Any]:
        imr = await _mapped_imr(w)
        await imr.fault(0)
        await imr.fault(5 * P)
        await imr.deregister()
        return [imr.live, sorted(imr.children), sorted(imr.ksm)]

    run = run_world(body, trace=True)
    assert run.violations == ()
    assert run.sim.value == [False, [], []]
    begin = [(e.key, e.detail) for e in run.events if e.kind == "deregister-begin"]
    assert begin == [("imr", "deregister implicit MR imr")]
    end = [(e.key, e.detail) for e in run.events if e.kind == "deregister-end"]
    assert end == [("imr", "implicit MR imr destroyed")]
    frees = [e.detail for e in run.events if e.kind == "free"]
    assert frees == [
        "imr child 0#1 freed: destroyed with its implicit MR",
        "imr child 1#2 freed: destroyed with its implicit MR",
        "implicit MR imr freed: deregistered",
    ]
    assert run.sim.trace is not None
    labels = [step[3] for step in run.sim.trace]
    assert ("deregister implicit", "imr") in labels


def test_deregister_of_an_mr_the_checker_knows_freed_is_a_use_after_free() -> None:
    async def body(w: World) -> None:
        imr = await _mapped_imr(w)
        w.checker.freed(imr.key, "freed by hand")
        await imr.deregister()

    run = run_world(body)
    details = [v.detail for v in run.violations if v.kind == "use-after-free"]
    assert details == ["deregister touched implicit MR imr after it was freed by hand"]


def test_the_child_free_work_frees_the_child_and_checks_the_mr() -> None:
    """An emptied child is freed by its work item (the reason its free names); the work
    touches the MR, so an MR the checker knows freed is a use-after-free there."""

    async def body(w: World, free_mr: bool) -> None:
        imr = await _mapped_imr(w, 4)
        await imr.fault(0)
        if free_mr:
            w.checker.freed(imr.key, "freed by hand")
        await w.mm.madvise_dontneed(0, 4 * P)  # the child is emptied: work queued

    run = run_world(lambda w: body(w, False))
    assert run.violations == ()
    frees = [e.detail for e in run.events if e.kind == "free"]
    assert frees == ["imr child 0#1 freed: freed by its work item"]
    run = run_world(lambda w: body(w, True))
    details = [v.detail for v in run.violations if v.kind == "use-after-free"]
    assert (
        "the child-free work's KSM update touched implicit MR imr after it was freed by hand"
        in (details)
    )


def test_the_mm_s_release_marks_the_mr_dead() -> None:
    async def body(w: World) -> list[bool]:
        imr = await _mapped_imr(w, 4)
        await imr.fault(0)
        before = imr.dead
        await w.mm.exit()
        return [before, imr.dead]

    run = run_world(body)
    assert run.sim.value == [False, True]


class _Raced(ImplicitMr):
    """An implicit MR whose first `races` resolved faults each lose their translation to
    an invalidation (a madvise DONTNEED of the page) before the DMA looks again: the
    race a DMA retries."""

    races = 0
    faults = 0

    async def fault(self, address: int, *, npages: int = 1, write: bool = False) -> Any:
        outcome = await super().fault(address, npages=npages, write=write)
        self.faults += 1
        if self.faults <= self.races:
            await self.mm.madvise_dontneed(address, npages * P)
        return outcome


@pytest.mark.parametrize(
    ("races", "result", "faults"),
    [(2, "ok", 3), (3, "error: still faulting after retries", 4)],
)
def test_a_dma_gives_up_after_four_attempts_that_each_had_to_fault(
    races: int, result: str, faults: int
) -> None:
    """A DMA makes four attempts, each faulting when it finds no translation: after
    three translations taken away it faults a fourth time and gives up, with no look
    after that fault; after two, its fourth attempt goes through."""

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 8 * P)
        await w.mm.cpu_fault(2 * P, write=True)
        imr = _Raced(w.mm, w.checker, w.workqueue, "imr", child_pages=4)
        imr.races = races
        await imr.register()
        return [await imr.dma(2 * P), imr.faults]

    run = run_world(body)
    assert run.sim.unwrap() == [result, faults]
    assert [v.kind for v in run.violations] == []
    dmas = [e.detail for e in run.events if e.kind == "dma"]
    assert dmas == ([f"DMA read imr/0#{faults}[0x2000]"] if result == "ok" else [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "an implicit MR needs a non-empty name, got ''"),
        ({"name": 3}, "an implicit MR needs a non-empty name, got 3"),
        ({"child_pages": 0}, "child_pages must be a positive int, got 0"),
        ({"child_pages": True}, "child_pages must be a positive int, got True"),
        ({"child_pages": 2.0}, "child_pages must be a positive int, got 2.0"),
        ({"max_retries": 0}, "max_retries must be a positive int, got 0"),
        ({"max_retries": "3"}, "max_retries must be a positive int, got '3'"),
        (
            {"plain_stor": True},
            "implicit MR has no option 'plain_stor' (its options: free_in_invalidate, "
            "no_usecount_wait, plain_store)",
        ),
        ({"plain_store": 1}, "implicit MR option 'plain_store' must be a bool, got 1"),
    ],
)
def test_an_implicit_mr_names_its_bad_argument(kwargs: dict[str, Any], message: str) -> None:
    async def body(w: World) -> str:
        try:
            ImplicitMr(w.mm, w.checker, w.workqueue, **kwargs)
        except InvalidArgument as e:
            return str(e)
        return "accepted"

    assert run_world(body).sim.value == message


def test_an_implicit_mr_starts_unpublished_with_its_defaults_or_options() -> None:
    def state(m: ImplicitMr, w: World) -> dict[str, object]:
        return {
            "names": (m.name, m.key),
            "sizes": (m.child_pages, m.max_retries),
            "options": (m.free_in_invalidate, m.no_usecount_wait, m.plain_store),
            "wiring": (m.mm is w.mm, m.checker is w.checker, m.workqueue is w.workqueue),
            "empty": (m.children, m.ksm, dict(m.notified), m.usecount, m.live, m.dead),
        }

    async def body(w: World) -> list[dict[str, object]]:
        default = ImplicitMr(w.mm, w.checker, w.workqueue)
        chosen = ImplicitMr(
            w.mm,
            w.checker,
            w.workqueue,
            "one",
            child_pages=1,
            max_retries=1,
            free_in_invalidate=True,
            no_usecount_wait=True,
            plain_store=True,
        )
        return [state(default, w), state(chosen, w)]

    empty = ({}, {}, {}, 0, False, False)
    assert run_world(body).sim.value == [
        {
            "names": ("imr", "implicit MR imr"),
            "sizes": (4, 12),
            "options": (False, False, False),
            "wiring": (True, True, True),
            "empty": empty,
        },
        {
            "names": ("one", "implicit MR one"),
            "sizes": (1, 1),
            "options": (True, True, True),
            "wiring": (True, True, True),
            "empty": empty,
        },
    ]


def test_a_child_covers_its_chunk_names_itself_and_knows_its_parent() -> None:
    async def body(w: World) -> list[object]:
        imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4)
        child = ImplicitChild(imr, 2, 7)
        return [
            child.parent is imr,
            child.index,
            str(child.range),
            child.key,
            child.table.name,
            child.mutex.name,
            child.work,
            repr(child),
        ]

    assert run_world(body).sim.value == [
        True,
        2,
        "[0x8000, 0xc000)",
        "imr child 2#7",
        "imr/2#7",
        "imr/2#7.umem_mutex",
        None,
        "<ImplicitChild imr child 2#7 [0x8000, 0xc000) use=1>",
    ]


def test_an_mr_subscribes_at_register_and_leaves_the_mm_at_deregister() -> None:
    async def body(w: World) -> list[bool]:
        imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr")
        out = [w.mm.is_registered(imr)]
        await w.mm.mmap(0, 8 * P)
        await imr.register()
        out.append(w.mm.is_registered(imr))
        await imr.fault(0)
        await imr.deregister()
        out.append(w.mm.is_registered(imr))
        return out

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.value == [False, True, False]
