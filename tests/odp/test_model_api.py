"""The model's parts one by one: the mm, the device, the checker, the protocols' API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from odp_async import sim, task_group
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.check import Checker
from odp_async.device import DmaError, FaultOutcome
from odp_async.errors import InvalidArgument
from odp_async.mm import FaultError, InvalidateEvent, Invalidation
from odp_async.odp import PROTOCOLS, TreeProtocol, Umem, resolve_protocol
from odp_async.world import World, run_world

P = PAGE_SIZE


def in_world(
    body: Callable[[World], Awaitable[Any]], protocol: str = "odp2014", **kwargs: Any
) -> Any:
    run = run_world(body, protocol=protocol, **kwargs)
    return run.sim.unwrap(), run


# --- bad input ---------------------------------------------------------------------------


def test_overlapping_mmap_names_the_mapping() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        await w.mm.mmap(2 * P, 4 * P)

    with pytest.raises(InvalidArgument, match=r"overlaps the existing mapping \[0x0, 0x4000\)"):
        in_world(body)


@pytest.mark.parametrize(
    ("start", "length", "needle"),
    [(0x1001, P, "0x1001"), (0, 100, "length"), (0, 0, "positive"), (-P, P, "negative")],
)
def test_misaligned_ranges_are_refused(start: int, length: int, needle: str) -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(start, length)

    with pytest.raises(InvalidArgument, match=needle):
        in_world(body)


def test_a_fault_outside_the_region_names_both() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        await w.ctx.fault(b, 6 * P)

    with pytest.raises(InvalidArgument, match=r"\[0x6000, 0x7000\) is outside B \[0x0, 0x4000\)"):
        in_world(body)


def test_registering_over_unmapped_memory_is_refused() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 2 * P)
        await w.ctx.register_mr(0, 4 * P, name="B")

    with pytest.raises(InvalidArgument, match=r"not inside a mapping: 0x2000"):
        in_world(body)


def test_unknown_protocol_and_option_are_named() -> None:
    with pytest.raises(
        InvalidArgument, match=r"unknown protocol 'odp2015'; expected one of naive"
    ):
        World.build("odp2015")
    with pytest.raises(InvalidArgument, match=r"no option 'clmap' \(its options: clamp\)"):
        World.build("odp2014", options={"clmap": False})
    with pytest.raises(InvalidArgument, match=r"option 'pool_size' must be a int, got '1'"):
        World.build("hmm-pool", options={"pool_size": "1"})


def test_duplicate_mr_name_and_double_deregistration() -> None:
    async def twice(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        await w.ctx.register_mr(0, 4 * P, name="B")
        await w.ctx.register_mr(0, 4 * P, name="B")

    with pytest.raises(InvalidArgument, match="'B' is already registered"):
        in_world(twice)

    async def dereg(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        await w.ctx.deregister_mr(b)
        await w.ctx.deregister_mr(b)

    with pytest.raises(InvalidArgument, match=r"deregister_mr\(B\): it is deregistered"):
        in_world(dereg)


def test_addr_range_rules() -> None:
    r = AddrRange.of(0x2000, 3 * P)
    assert (str(r), r.npages, r.closed(), list(r.vpns())) == (
        "[0x2000, 0x5000)",
        3,
        (0x2000, 0x4FFF),
        [2, 3, 4],
    )
    assert r.intersection(AddrRange(0x4000, 0x8000)) == AddrRange(0x4000, 0x5000)
    assert r.intersection(AddrRange(0x5000, 0x6000)) is None
    with pytest.raises(InvalidArgument, match="empty or reversed"):
        AddrRange(0x3000, 0x2000)


# --- the mm ------------------------------------------------------------------------------


class Recorder:
    """A subscriber that records every callback it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.calls.append(f"start {inv.event.value} {inv.range}")

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.calls.append(f"end {inv.event.value} {inv.range}")

    async def release(self) -> None:
        self.calls.append("release")


def test_every_mapping_change_is_bracketed() -> None:
    async def body(w: World) -> list[str]:
        rec = Recorder()
        await w.mm.register_notifier(rec)
        await w.mm.mmap(0, 8 * P)
        for i in range(8):
            await w.mm.cpu_fault(i * P, write=True)
        await w.mm.madvise_dontneed(0, 2 * P)
        await w.mm.mprotect(2 * P, P, writable=False)
        await w.mm.mprotect(2 * P, P, writable=True)  # granting: no invalidation
        assert await w.mm.migrate(4 * P)
        await w.mm.mremap(6 * P, 2 * P, 16 * P)
        await w.mm.munmap(0, 4 * P)
        await w.mm.exit()
        return rec.calls

    calls, run = in_world(body)
    assert calls == [
        "start madvise-dontneed [0x0, 0x2000)",
        "end madvise-dontneed [0x0, 0x2000)",
        "start protection [0x2000, 0x3000)",
        "end protection [0x2000, 0x3000)",
        "start migrate [0x4000, 0x5000)",
        "end migrate [0x4000, 0x5000)",
        "start unmap [0x6000, 0x8000)",
        "end unmap [0x6000, 0x8000)",
        "start unmap [0x0, 0x4000)",
        "end unmap [0x0, 0x4000)",
        "release",
    ]
    assert run.violations == ()


def test_munmap_splits_mappings_and_frees_frames() -> None:
    async def body(w: World) -> tuple[list[str], int]:
        await w.mm.mmap(0, 8 * P)
        for i in range(8):
            await w.mm.cpu_fault(i * P)
        await w.mm.munmap(2 * P, 2 * P)
        return [str(v) for v in w.mm.vmas], w.memory.frames_in_use

    (vmas, in_use), _ = in_world(body)
    assert vmas == ["[0x0, 0x2000) rw anon", "[0x4000, 0x8000) rw anon"]
    assert in_use == 6


def test_gup_errors_and_exit() -> None:
    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 2 * P, writable=False)
        errors = []
        for rng, write in ((AddrRange(0, P), True), (AddrRange(4 * P, 5 * P), False)):
            try:
                await w.mm.get_user_pages(rng, write=write)
            except FaultError as e:
                errors.append(str(e))
        await w.mm.exit()
        try:
            await w.mm.get_user_pages(AddrRange(0, P), write=False)
        except FaultError as e:
            errors.append(str(e))
        return errors

    errors, run = in_world(body)
    assert errors == [
        "write to the read-only mapping [0x0, 0x2000) ro anon",
        "no mapping at 0x4000",
        "get_user_pages: the mm has exited",
    ]
    assert run.violations == ()


def test_migration_backs_off_while_the_page_is_pinned() -> None:
    async def body(w: World) -> tuple[bool, bool]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0)
        pages = await w.mm.get_user_pages(AddrRange(0, P), write=False)
        pinned = await w.mm.migrate(0)
        w.mm.put_pages(pages)
        return pinned, await w.mm.migrate(0)

    assert in_world(body)[0] == (False, True)


def test_truncate_unmaps_then_drops_the_page_cache() -> None:
    async def body(w: World) -> tuple[list[str], int]:
        rec = Recorder()
        await w.mm.register_notifier(rec)
        f = w.file("data", 8)
        await w.mm.mmap(0, 8 * P, file=f)
        for i in range(8):
            await w.mm.cpu_fault(i * P)
        await f.truncate(4)
        return rec.calls, len(f.page_cache)

    (calls, cached), _ = in_world(body)
    assert calls == ["start truncate [0x4000, 0x8000)", "end truncate [0x4000, 0x8000)"]
    assert cached == 4


def test_unregistering_mid_invalidation_loses_the_end() -> None:
    async def body(w: World) -> list[str]:
        rec = Recorder()
        await w.mm.register_notifier(rec)
        await w.mm.mmap(0, 4 * P)

        async with task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, 4 * P, name="madvise")
            tg.start_soon(w.mm.unregister_notifier, rec, name="unregister")
        return rec.calls

    chooser = sim.ScriptChooser([("madvise", "after start"), ("unregister", None)])
    calls, _ = in_world(body, chooser=chooser)
    assert calls == ["start madvise-dontneed [0x0, 0x4000)", "release"]


def test_range_list_tracks_running_invalidations() -> None:
    async def body(w: World) -> list[bool]:
        await w.mm.mmap(0, 8 * P)
        seen: list[bool] = []

        class Probe(Recorder):
            async def invalidate_range_start(self, inv: Invalidation) -> None:
                seen.append(w.mm.range_is_valid(AddrRange(0, P)))
                seen.append(w.mm.range_is_valid(AddrRange(4 * P, 5 * P)))

        await w.mm.register_notifier(Probe())
        await w.mm.madvise_dontneed(0, 2 * P)
        seen.append(w.mm.range_is_valid(AddrRange(0, P)))
        return seen

    assert in_world(body)[0] == [False, True, True]


# --- the device and the checker ------------------------------------------------------------


def test_dma_faults_through_the_queue_and_checks() -> None:
    async def body(w: World) -> tuple[int, str]:
        await w.mm.mmap(0, 4 * P, writable=False)
        b = await w.ctx.register_mr(0, 4 * P, writable=False, name="B")
        async with w.device.fault_handlers(1):
            await w.device.dma(b.table, 1 * P, write=False)
        try:
            await w.device.dma(b.table, 2 * P, write=True)
        except DmaError as e:
            return len(b.table), str(e)
        return len(b.table), ""

    (installed, error), run = in_world(body)
    assert installed == 1
    assert "page fault failed" in error
    assert run.violations == ()


def test_checker_install_time_and_free_checks() -> None:
    pte: dict[int, tuple[int, int, bool]] = {1: (7, 1, False)}
    live = {(7, 1)}
    checker = Checker(
        where=lambda: (3, "T"),
        page_lookup=pte.get,
        frame_live=lambda f: f in live,
    )
    checker.translation_installed("B", 1, (7, 1), writable=True)  # more than the pte allows
    checker.translation_installed("B", 2, (7, 1), writable=False)  # nothing mapped there
    checker.dma("B", 1, write=True)
    live.clear()
    checker.frame_freed((7, 1), "unmapped")
    assert [(v.kind, v.step, v.tasks, v.addresses) for v in checker.violations] == [
        ("stale-translation", 3, ("T",), (0x1000,)),
        ("stale-translation", 3, ("T",), (0x2000,)),
        ("stale-dma", 3, ("T",), (0x1000,)),
        ("stale-translation", 3, ("T",), (0x1000,)),
    ]
    assert "was unmapped while B still translates 0x1000" in checker.violations[-1].detail
    assert "writable, but the pte is read-only" in checker.violations[0].detail


def test_checker_count_and_release_records() -> None:
    checker = Checker()
    checker.count_changed("B", "notifiers_count", -1, "[0x0, 0x1000)")
    checker.table_released("B")
    checker.touched("B", "invalidate_range_end")
    checker.mm_released()
    checker.fault_succeeded("C", "[0x0, 0x1000)")
    assert checker.kinds() == ["unbalanced-notifier", "use-after-release"]
    assert len(checker.violations) == 3


# --- protocols -------------------------------------------------------------------------------


def test_resolve_protocol_accepts_names_and_classes() -> None:
    assert resolve_protocol("kvm-seq") is PROTOCOLS["kvm-seq"]
    assert resolve_protocol(PROTOCOLS["naive"]) is PROTOCOLS["naive"]
    with pytest.raises(InvalidArgument, match="unknown protocol 3"):
        resolve_protocol(3)  # type: ignore[arg-type]


class EpochProtocol(TreeProtocol):
    """A user-written protocol: one global epoch bumped at every start (coarse, correct)."""

    name: ClassVar[str] = "epoch"
    summary: ClassVar[str] = "one epoch per context, bumped at every start"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.epoch = 0
        self.running = 0

    async def before_start(self, inv: Invalidation) -> None:
        self.epoch += 1
        self.running += 1

    async def after_end(self, inv: Invalidation) -> None:
        self.running -= 1

    def read_token(self, umem: Umem) -> object:
        return self.epoch

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        return self.running > 0 or self.epoch != token

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        await sim_sleep()


async def sim_sleep() -> None:
    from odp_async import sleep

    await sleep(0.001)


def test_a_user_protocol_plugs_in_and_is_checked() -> None:
    from odp_async.scenarios import BUILTIN

    run = run_world(
        BUILTIN["registration-race"].body,
        protocol=EpochProtocol,
        chooser=sim.ScriptChooser(BUILTIN["registration-race"].script),
    )
    assert run.protocol == "epoch"
    assert run.violations == ()
    assert run.sim.value["fault"] == FaultOutcome.RESOLVED.value  # type: ignore[index]


def test_invalidation_events_cover_the_kernel_cases() -> None:
    assert {e.value for e in InvalidateEvent} == {
        "unmap",
        "madvise-dontneed",
        "protection",
        "migrate",
        "truncate",
        "release",
        "clear",  # a huge page split, nested in a zap (issue 10)
    }
