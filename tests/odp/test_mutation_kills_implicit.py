"""`odp_async.odp.implicit` mechanisms no other test pinned (found by mutation testing,
``tools/mutation.sh odp``): what a DMA through an implicit MR checks, records and
refuses."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async.addr import PAGE_SIZE as P
from odp_async.errors import InvalidArgument
from odp_async.odp.implicit import ImplicitMr
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
