"""Mechanisms of `odp_async.mm` pinned for the survivors of the mutation run of
2026-11-30 05:38-05:54 UTC (``tools/mutation-equivalents.md``): a new mm's defaults,
each task's own ``mm_users`` references, what munmap leaves of a file mapping, why a
pinned page is freed, the bad calls after exit, the frame allocator's edges."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.check import Checker
from odp_async.errors import InvalidArgument
from odp_async.mm import AddressSpace, FaultError, File, Invalidation, PhysicalMemory
from odp_async.world import World, run_world

P = PAGE_SIZE


class _Probe:
    """A subscriber whose start callback records what `probe` returns."""

    def __init__(self, probe: Any) -> None:
        self.probe = probe
        self.seen: list[object] = []

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.seen.append(self.probe(inv))

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        pass

    async def release(self) -> None:
        pass


def test_a_new_mm_lists_an_invalidation_before_its_start_callbacks() -> None:
    """``range_list_after_callbacks`` is off unless asked for: a start callback already
    finds its own range listed (not valid), and only that range."""

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 4 * P)
        sub = _Probe(
            lambda inv: (
                w.mm.range_is_valid(inv.range),
                w.mm.range_is_valid(AddrRange.pages(3, 1)),
            )
        )
        await w.mm.register_notifier(sub)
        await w.mm.madvise_dontneed(0, P)
        return [*sub.seen, w.mm.range_is_valid(AddrRange.pages(0, 1))]

    assert run_world(body).sim.unwrap() == [(False, True), True]
    bare = AddressSpace(PhysicalMemory(Checker()), Checker())
    assert bare.range_list_after_callbacks is False


def test_each_task_counts_its_own_mm_users_references() -> None:
    """After the process exits, a task may use the mm exactly while it holds references
    of its own (``mmget``): two gets need two puts, and another task holds none."""

    async def body(w: World) -> list[object]:
        out: list[object] = []

        async def other() -> None:
            out.append(("other", w.mm.holds_user_ref()))

        w.mm.mmget()
        w.mm.mmget()
        await w.mm.exit()
        out.append((w.mm.users, w.mm.holds_user_ref()))
        async with rt.task_group() as tg:
            tg.start_soon(other, name="other")
        await w.mm.mmput()
        out.append((w.mm.users, w.mm.holds_user_ref()))
        await w.mm.mmput()  # the last reference: the teardown runs here
        out.append((w.mm.users, w.mm.holds_user_ref(), w.mm.is_dead))
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [(2, True), ("other", False), (1, True), (0, False, True)]
    assert run.violations == ()


def test_munmap_of_a_file_mapping_keeps_the_file_s_other_mappings_and_offsets() -> None:
    """munmap drops only the unmapped VMA from the file's mappings (a later truncate
    still reaches the others), and the piece left of a cut mapping keeps its file
    offset."""

    async def body(w: World) -> list[object]:
        f = File("f", 4, w.memory)
        await w.mm.mmap(0, 4 * P, file=f)  # pages 0..3 map f[0..3]
        await w.mm.mmap(8 * P, 2 * P, file=f, pgoff=2)  # pages 8, 9 map f[2], f[3]
        await w.mm.munmap(0, P)  # cut the first: [0x1000, 0x4000) maps f[1..3]
        out: list[object] = [sorted(str(v) for m, v in f.mappings if m is w.mm)]
        await w.mm.cpu_fault(1 * P)
        await w.mm.cpu_fault(8 * P)
        out.append(w.mm.lookup(1) == (*f.page_cache[1].id, True))
        out.append(w.mm.lookup(8) == (*f.page_cache[2].id, True))
        await f.truncate(2)  # f[2], f[3] go: every mapping of them is zapped
        out.append([w.mm.lookup(vpn) is None for vpn in (1, 8)])
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [
        ["[0x1000, 0x4000) rw f+1", "[0x8000, 0xa000) rw f+2"],
        True,
        True,
        [False, True],
    ]
    assert run.violations == ()


def test_a_pinned_page_is_freed_by_its_last_user_and_says_so() -> None:
    """A page unmapped while get_user_pages pins it is freed by put_pages, as "released
    by its last user": a device still translating it reports that."""

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, P)
        pages = await w.mm.get_user_pages(AddrRange.pages(0, 1), write=True)
        (page,) = pages
        w.checker.translation_installed("dev", 0, page.frame_id, True)
        await w.mm.munmap(0, P)
        live = [w.memory.is_live(page.frame_id)]
        w.mm.put_pages(pages)
        return [*live, w.memory.is_live(page.frame_id)]

    run = run_world(body)
    assert run.sim.unwrap() == [True, False]
    stale = [v.detail for v in run.violations if v.kind == "stale-translation"]
    assert stale == [
        "frame 0.1 was released by its last user while dev still translates 0x0 to it"
    ]


def test_a_cpu_fault_reads_unless_told_to_write() -> None:
    async def body(w: World) -> object:
        await w.mm.mmap(0, P, writable=False)
        await w.mm.cpu_fault(0)
        return w.mm.lookup(0)

    assert run_world(body).sim.unwrap() == (0, 1, False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda mm: mm.cpu_fault(0), "cpu fault: the process has exited"),
        (lambda mm: mm.munmap(0, P), "munmap: the process has exited"),
    ],
)
def test_cpu_fault_and_munmap_after_exit_are_named(call: Any, message: str) -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, P)
        await w.mm.exit()
        await call(w.mm)

    with pytest.raises((InvalidArgument, FaultError)) as info:
        run_world(body).sim.unwrap()
    assert str(info.value) == message


def test_the_frame_allocator_refuses_a_get_of_a_free_frame_and_knows_its_last_pfn() -> None:
    memory = PhysicalMemory(Checker())
    a = memory.alloc()
    memory.put(a, "test")
    with pytest.raises(AssertionError) as info:
        memory.get(a)
    assert str(info.value).splitlines()[0] == "get() of free <Frame 0.1 refs=0>"
    assert a.refcount == 0
    assert not memory.is_live((1, 1))  # the first pfn never allocated


def test_a_new_mm_is_today_s_kernel_with_one_user() -> None:
    mm = AddressSpace(PhysicalMemory(Checker()), Checker())
    options = (
        mm.nonblock_failure_rule,
        mm.release_order,
        mm.interval_remove_wait,
        mm.notifier_teardown,
    )
    assert options == ("today", "today", "today", "unregister")
    assert (mm.key, mm.mm_count, mm.mm_users, mm.is_dead) == ("mm", 1, 1, False)
    assert mm.holds_user_ref()
    assert (mm.vmas, mm.page_table, mm.active_ranges) == ([], {}, [])


class _Stuck:
    """A subscriber whose start (or end) callback awaits `call` (one wait of the mm's
    own that can never end from there)."""

    def __init__(self, call: Any, *, at_end: bool = False) -> None:
        self.call = call
        self.at_end = at_end

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if not self.at_end:
            await self.call(inv)

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        if self.at_end:
            await self.call(inv)

    async def release(self) -> None:
        pass


def _waits_for(call: Any, change: Any, *, at_end: bool = False) -> str:
    """What the task hanging in `call` (from inside a subscriber's callback of the
    invalidation `change` starts) waits for: the deadlock report."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 2 * P)
        await w.mm.cpu_fault(0, write=True)
        await w.mm.register_notifier(_Stuck(lambda inv: call(w.mm, inv), at_end=at_end))
        await change(w.mm)

    deadlock = run_world(body).sim.deadlock
    assert deadlock is not None
    return deadlock.describe()


def test_the_mm_s_waits_are_named_in_a_deadlock_report() -> None:
    """Each lock and wait queue of the mm says what it is when a task hangs on it."""
    dontneed = lambda mm: mm.madvise_dontneed(0, P)  # noqa: E731
    migrate = lambda mm: mm.migrate(0)  # noqa: E731
    munmap = lambda mm: mm.munmap(0, P)  # noqa: E731
    reports = [
        _waits_for(lambda mm, inv: mm.range_wait_valid(inv.range), dontneed),
        _waits_for(lambda mm, inv: mm.synchronize_notifiers(), dontneed),
        _waits_for(lambda mm, inv: mm.cpu_fault(0), migrate, at_end=True),
        _waits_for(lambda mm, inv: mm.migrate(P), migrate),
        _waits_for(lambda mm, inv: mm.cpu_fault(P), munmap),
    ]
    assert reports == [
        "main waits for WaitQueue 'active ranges'",
        "main waits for WaitQueue 'notifier callbacks (mmu_notifier_synchronize)'",
        "main waits for WaitQueue 'migration entries'",
        "main waits for Mutex 'anon_vma' held by main itself (recursive locking)",
        "main waits for RWLock 'mmap_sem' held by main itself (recursive locking)",
    ]
