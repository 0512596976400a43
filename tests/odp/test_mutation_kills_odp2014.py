"""odp2014's count and completion, step by step (found lacking by mutation testing:
tools/mutation.sh): a start that raises the count from 0 re-arms the completion, so a
fault that must retry sleeps until the end instead of spinning; without the clamp an
unbalanced count is reported with the range of the callback that moved it."""

from __future__ import annotations

from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.world import World, run_world

P = PAGE_SIZE


def test_a_start_from_zero_re_arms_the_completion_a_retrying_fault_sleeps_on() -> None:
    out: list[Any] = []

    async def body(w: World) -> None:
        p = w.protocol
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.mm.madvise_dontneed(0, P)  # its end completed A's completion
        out.append(repr(a.completion))
        inv = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await p.start_account(a, inv)  # count 0 -> 1: re-armed
        out.append((a.count, repr(a.completion)))

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if "waiting=1" in repr(a.completion):
                    break
                await rt.checkpoint()
            out.append(repr(a.completion))
            await p.end_account(a, inv)  # count 1 -> 0: wakes the fault
            out.append(repr(a.completion))

    for seed in range(3):
        out.clear()
        run = run_world(body, protocol="odp2014", seed=seed)
        run.sim.unwrap()
        assert out == [
            "<Completion 'A.completion' all waiting=0>",
            (1, "<Completion 'A.completion' done=0 waiting=0>"),
            "<Completion 'A.completion' done=0 waiting=1>",
            "<Completion 'A.completion' all waiting=0>",
            FaultOutcome.RESOLVED,
        ]
        faults = [e.detail for e in run.events if e.kind.startswith("fault")]
        assert faults == [
            "fault A 0x0 attempt 1",
            "fault A 0x0 must retry",
            "fault A 0x0 attempt 2",
            "fault A 0x0 resolved",
        ]


def test_without_the_clamp_each_unbalanced_value_is_reported_once_with_its_range() -> None:
    out: list[Any] = []

    async def body(w: World) -> None:
        p = w.protocol
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        inv = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        for _ in range(3):
            await p.end_account(a, inv)
        await p.start_account(a, inv)  # back to -2: the same report as before
        await w.mm.exit()  # release raises it to -1, over the whole region
        out.append((a.count, a.seq))

    run = run_world(body, protocol="odp2014", options={"clamp": False})
    run.sim.unwrap()
    assert out == [(-1, 3)]
    assert [v.detail for v in run.violations] == [
        "invalidate_range_end() for [0x0, 0x1000) without a matching start: "
        f"A.notifiers_count went to {n}"
        for n in (-1, -2, -3)
    ] + [
        "invalidate_range_end() for [0x0, 0x8000) without a matching start: "
        "A.notifiers_count went to -1"
    ]


def test_a_clamped_end_without_a_start_warns_under_the_regions_name() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.protocol.end_account(a, Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP))

    run = run_world(body, protocol="odp2014")
    run.sim.unwrap()
    assert run.violations == ()
    assert [(e.key, e.detail) for e in run.events if e.kind == "warning"] == [
        ("A", "A: got notifier end call without a previous start call")
    ]
