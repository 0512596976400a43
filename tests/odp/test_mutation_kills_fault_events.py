"""The fault path's events: each attempt and each way a fault ends is recorded under the
fault's key and address (found lacking by mutation testing: tools/mutation.sh).  A fault
can be aborted at its begin, its commit or its wait; the probes below make the region die
at the chosen point, as a concurrent mm exit would."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import InvalidateEvent, Invalidation, PinnedPage
from odp_async.odp import Umem
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.odp.protocols.naive import Naive
from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.world import World, run_world

P = PAGE_SIZE
KEY = "fault A 0x3000"


class _DiesBeforeCommit(Odp2014):
    name = "odp2014-dies-before-commit"

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        umem.dying = True
        return await super().fault_commit(umem, rng, token, pages)


class _DiesWhileRetrying(Odp2014):
    name = "odp2014-dies-while-retrying"

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        umem.dying = True
        return True


@pytest.mark.parametrize(
    ("protocol", "exit_first", "ends"),
    [
        ("odp2014", False, [("fault-end", f"{KEY} resolved")]),
        ("odp2014", True, [("fault-end", f"{KEY} failed: A is dying")]),
        ("naive", True, [("fault-end", f"{KEY} failed: get_user_pages: the mm has exited")]),
        (_DiesBeforeCommit, False, [("fault-end", f"{KEY} failed: A is dying")]),
        (
            _DiesWhileRetrying,
            False,
            [("fault-end", f"{KEY} must retry"), ("fault-end", f"{KEY} failed: A is dying")],
        ),
    ],
)
def test_each_way_a_fault_ends_is_recorded_under_its_key_and_address(
    protocol: str | type[Odp2014], exit_first: bool, ends: list[tuple[str, str]]
) -> None:
    out: list[FaultOutcome] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        if exit_first:
            await w.mm.exit()
        out.append(await w.ctx.fault(a, 3 * P + 5, write=True))

    run = run_world(body, protocol=protocol)
    run.sim.unwrap()
    resolved = ends[-1][1].endswith("resolved")
    assert out == [FaultOutcome.RESOLVED if resolved else FaultOutcome.FAILED]
    events = [(e.kind, e.key, e.detail, e.address) for e in run.events if "fault" in e.kind]
    assert events == [("fault-begin", KEY, f"{KEY} attempt 1", 3 * P)] + [
        (kind, KEY, detail, 3 * P) for kind, detail in ends
    ]


class _ExitsBeforeCommit(Naive):
    """naive, with the mm exiting between get_user_pages and the commit."""

    name = "naive-exits-before-commit"

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        await self.ctx.mm.exit()
        return await super().fault_commit(umem, rng, token, pages)


def test_a_fault_that_commits_after_the_exit_is_reported_with_its_range() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.ctx.fault(a, 3 * P)

    run = run_world(body, protocol=_ExitsBeforeCommit)
    run.sim.unwrap()
    assert "a fault on A [0x3000, 0x4000) succeeded after the mm was released" in [
        v.detail for v in run.violations
    ]
    assert len(run.violations) == 3  # and the stale translation it installed, twice


class _StormBeforeCommit(KvmSeq):
    """kvm-seq, with an invalidation X left running and three others ending while the
    fault is between its get_user_pages and its commit."""

    name = "kvm-seq-storm-before-commit"

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        await self.before_start(Invalidation(99, AddrRange(0, P), InvalidateEvent.UNMAP))
        for _ in range(3):
            await self.ctx.mm.madvise_dontneed(6 * P, P)
        return await super().fault_commit(umem, rng, token, pages)


def test_a_refused_commit_past_the_bound_starves_the_fault() -> None:
    out: list[FaultOutcome] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        out.append(await w.ctx.fault(a, 3 * P))

    run = run_world(body, protocol=_StormBeforeCommit, starvation_bound=2)
    run.sim.unwrap()
    assert out == [FaultOutcome.STARVED]
    assert [v.detail for v in run.violations] == [
        "a fault on A [0x3000, 0x4000) was held back by the protocol across 3 invalidations"
    ]
    assert [e.detail for e in run.events if e.kind.startswith("fault")] == [
        f"{KEY} attempt 1",
        f"{KEY} must retry",
    ]


class _RecordsTokens(Odp2014):
    """A user protocol that records the token each hook is given."""

    name = "odp2014-records-tokens"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.tokens: list[tuple[str, object]] = []

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        self.tokens.append(("commit", token))
        return len(self.tokens) == 1  # refuse the first attempt

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        self.tokens.append(("wait", token))
        umem.seq += 1  # the next attempt reads a new seq


def test_the_hooks_get_the_token_of_their_attempt_and_reads_default_to_read_only() -> None:
    out: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        out.append(await w.ctx.fault(a, 3 * P))  # a read: no write=...
        p = w.protocol
        assert isinstance(p, _RecordsTokens)
        out.append(p.tokens)
        t = a.table.get(3)
        out.append(t.writable if t else None)

    run_world(body, protocol=_RecordsTokens).sim.unwrap()
    assert out == [
        FaultOutcome.RESOLVED,
        [("commit", 0), ("wait", 0), ("commit", 1)],
        False,
    ]


def test_a_read_fault_on_a_read_only_region_and_one_after_deregistration() -> None:
    out: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        r = await w.ctx.register_mr(0, 8 * P, writable=False, name="A")
        out.append(await w.ctx.fault(r, 3 * P))
        await w.ctx.deregister_mr(r)
        out.append(await w.ctx.fault(r, 3 * P))

    run = run_world(body)
    run.sim.unwrap()
    assert out == [FaultOutcome.RESOLVED, FaultOutcome.FAILED]
    assert [v.detail for v in run.violations] == ["a fault touched A after its deregistration"]
