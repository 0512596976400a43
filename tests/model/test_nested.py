"""Issue 10, items 2 and 3: nested invalidations (a zap that splits a transparent huge
page opens a second start/end inside its own, in the same task), seen by a subscriber a
user writes in a module of their own.

A subscriber that keeps a *flag* ("an invalidation is running") rather than a *count*
clears it at the nested end while the outer invalidation still runs; a fault then commits
a page the outer zap frees next: ``stale-translation``.  With a count it is clean.
"""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.errors import InvalidArgument
from odp_async.scenarios import Scenario
from odp_async.world import World, run_world
from tests.conftest import UserModule

from ._explore import CHOOSERS, assert_clean, assert_found

USER_MODULE = '''
"""A user's own subscriber: a flag or a count of running invalidations."""

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SHIFT, AddrRange
from odp_async.mm import FaultError
from odp_async.subscribers import Subscriber
from odp_async.sync import Mutex, WaitQueue


class Mirror(Subscriber):
    def __init__(self, mm, checker, *, counted):
        super().__init__(mm, checker, "mirror")
        self.counted = counted
        self.lock = Mutex("mirror.lock")
        self.busy = 0
        self.seq = 0
        self.idle = WaitQueue("mirror idle")

    async def invalidate_range_start(self, inv):
        async with self.lock:
            self.busy = self.busy + 1 if self.counted else 1
            self.zap(inv.range)

    async def invalidate_range_end(self, inv):
        async with self.lock:
            self.busy = self.busy - 1 if self.counted else 0
            self.seq += 1
            if not self.busy:
                self.idle.wake_all()

    async def release(self):
        async with self.lock:
            self.dead = True
            self.zap_all()

    async def fault(self, address):
        rng = AddrRange.pages(address >> PAGE_SHIFT, 1)
        for _ in range(12):
            while self.busy:
                await self.idle.park()
            seq = self.seq
            try:
                pages = await self.mm.get_user_pages(rng, write=True)
            except FaultError:
                return "failed"
            try:
                async with self.lock:
                    if not self.busy and self.seq == seq:
                        self.install(pages)
                        return "resolved"
            finally:
                self.mm.put_pages(pages)
        return "starved"
'''


@pytest.fixture
def mirror_module(user_module: UserModule) -> Any:
    return user_module(USER_MODULE, "my_mirror")


def _thp_zap(mirror_cls: Any, counted: bool) -> Scenario:
    async def body(w: World) -> dict[str, Any]:
        await w.mm.mmap(0, 8 * P, huge=True)
        for i in range(8):
            await w.mm.cpu_fault(i * P, write=True)
        mirror = mirror_cls(w.mm, w.checker, counted=counted)
        await mirror.register()
        out: dict[str, Any] = {}

        async def fault() -> None:
            out["fault"] = await mirror.fault(P)
            mirror.access(P)

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, 2 * P, name="madvise")
            tg.start_soon(fault, name="fault")
        return out

    return Scenario(f"thp-zap-{'count' if counted else 'flag'}", "", body, ("madvise", "fault"))


def _logging(mirror_cls: Any) -> Any:
    """`mirror_cls` logging each start and end it is sent (``"start <event> <range>"``)."""

    class Log(mirror_cls):  # type: ignore[misc]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.log: list[str] = []

        async def invalidate_range_start(self, inv: Any) -> None:
            self.log.append(f"start {inv.event.value} {inv.range}")
            await super().invalidate_range_start(inv)

        async def invalidate_range_end(self, inv: Any) -> None:
            self.log.append(f"end {inv.event.value} {inv.range}")
            await super().invalidate_range_end(inv)

    return Log


def test_a_zap_that_cuts_a_huge_page_nests_the_split_inside_itself(mirror_module: Any) -> None:
    Log = _logging(mirror_module.Mirror)

    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 8 * P, huge=True)
        sub = Log(w.mm, w.checker, counted=True)
        await sub.register()
        await w.mm.madvise_dontneed(0, 2 * P)  # cuts huge page 0: split nested
        await w.mm.madvise_dontneed(4 * P, 4 * P)  # covers huge page 1: no split
        return sub.log

    run = run_world(body, protocol="odp2014")
    assert run.sim.value == [
        "start madvise-dontneed [0x0, 0x2000)",
        "start clear [0x0, 0x4000)",
        "end clear [0x0, 0x4000)",
        "end madvise-dontneed [0x0, 0x2000)",
        "start madvise-dontneed [0x4000, 0x8000)",
        "end madvise-dontneed [0x4000, 0x8000)",
    ]


def test_a_huge_page_split_once_is_not_split_again(mirror_module: Any) -> None:
    # After its split the block is mapped by ptes: a second cut of it nests no split
    # (mutation testing: the block left in `huge_blocks` split it at every cut).
    Log = _logging(mirror_module.Mirror)

    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 8 * P, huge=True)
        sub = Log(w.mm, w.checker, counted=True)
        await sub.register()
        await w.mm.madvise_dontneed(0, P)
        await w.mm.madvise_dontneed(2 * P, P)
        return sub.log

    run = run_world(body, protocol="odp2014")
    assert run.sim.value == [
        "start madvise-dontneed [0x0, 0x1000)",
        "start clear [0x0, 0x4000)",
        "end clear [0x0, 0x4000)",
        "end madvise-dontneed [0x0, 0x1000)",
        "start madvise-dontneed [0x2000, 0x3000)",
        "end madvise-dontneed [0x2000, 0x3000)",
    ]


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_flag_is_cleared_by_the_nested_end(mirror_module: Any, chooser: str) -> None:
    result = assert_found(_thp_zap(mirror_module.Mirror, False), chooser, "stale-translation")
    assert result.failure is not None
    assert result.failure.violation.tasks == ("madvise",)


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_count_survives_nesting(mirror_module: Any, chooser: str) -> None:
    assert_clean(_thp_zap(mirror_module.Mirror, True), chooser)


def test_a_huge_mapping_must_be_aligned_and_anonymous() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(P, 4 * P, huge=True)

    run = run_world(body, protocol="odp2014")
    assert isinstance(run.sim.error, InvalidArgument)
    assert str(run.sim.error) == (
        "a huge mapping must be anonymous and aligned to 4 pages, got [0x1000, 0x5000)"
    )


def test_a_zap_that_only_touches_a_huge_pages_edge_splits_nothing(mirror_module: Any) -> None:
    # A zap ending where a huge page starts, or starting where one ends, does not cut it
    # (mutation testing: `block <= end`, `first <= block + HPAGE_PAGES` split them).
    Log = _logging(mirror_module.Mirror)

    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 12 * P, huge=True)
        sub = Log(w.mm, w.checker, counted=True)
        await sub.register()
        await w.mm.madvise_dontneed(4 * P, 4 * P)  # huge page 1 exactly: 0 and 2 touch it
        return sub.log

    run = run_world(body, protocol="odp2014")
    assert run.sim.value == [
        "start madvise-dontneed [0x4000, 0x8000)",
        "end madvise-dontneed [0x4000, 0x8000)",
    ]
