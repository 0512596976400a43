"""What the mm's checks say, found unpinned by mutation testing (tools/mutation.sh): an
unmatched mmput while the process runs (in process, where mutmut's selection runs it;
tests/model/test_refcount_underflow.py checks it in a fresh process), a madvise after the
process exited, and a put of a free frame."""

from __future__ import annotations

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.errors import InvalidArgument
from odp_async.mm import HPAGE_PAGES, File
from odp_async.sync import Completion
from odp_async.world import World, run_world

P = PAGE_SIZE


def test_an_unmatched_mmput_while_the_process_runs_is_an_underflow_not_applied() -> None:
    async def body(w: World) -> list[int]:
        await w.mm.mmput()  # no mmget: it would put the process's own reference
        return [w.mm.mm_users, w.mm.mm_count]

    run = run_world(body)
    assert run.sim.unwrap() == [1, 2]  # not applied; the world holds an mmgrab
    assert [(v.kind, v.detail) for v in run.violations] == [
        (
            "refcount-underflow",
            "mm: mmput() without a matching mmget: it would drop the process's own "
            "mm_users reference while the process runs (exit_mmap under it, "
            "mm_users -1 at its exit)",
        )
    ]


def test_a_madvise_after_the_exit_is_refused_naming_it() -> None:
    async def body(w: World) -> str:
        await w.mm.mmap(0, 4 * P)
        await w.mm.exit()
        try:
            await w.mm.madvise_dontneed(0, P)
        except InvalidArgument as e:
            return str(e)
        return "accepted"

    assert run_world(body).sim.unwrap() == "madvise: the process has exited"


def test_a_put_of_a_free_frame_is_a_model_bug() -> None:
    memory = World.build("naive").mm.memory
    frame = memory.alloc()
    memory.put(frame, "the last user")
    with pytest.raises(AssertionError, match="put\\(\\) of free"):
        memory.put(frame, "once more")


def test_a_read_fault_on_a_write_protected_page_leaves_it_read_only() -> None:
    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 4 * P)
        rng = AddrRange.of(0, P)
        w.mm.put_pages(await w.mm.get_user_pages(rng, write=True))
        seen: list[object] = [w.mm.lookup(0)]
        await w.mm.mprotect(0, 4 * P, writable=False)
        w.mm.put_pages(await w.mm.get_user_pages(rng, write=False))
        seen.append(w.mm.lookup(0))
        return seen

    first, after = run_world(body).sim.unwrap()
    assert first is not None
    assert first[2] is True
    assert after == (first[0], first[1], False)


class _NoEnd:
    async def invalidate_range_start(self, inv: object) -> None:
        pass

    def __repr__(self) -> str:
        return "<NoEnd>"


class _Sync(_NoEnd):
    def invalidate_range_start(self, inv: object) -> None:  # type: ignore[override]
        pass

    def invalidate_range_end(self, inv: object) -> None:
        pass

    async def release(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<Sync>"


def test_a_subscriber_missing_callbacks_or_with_sync_ones_is_refused_naming_them() -> None:
    """``register_notifier`` names every missing callback, else every callback not
    defined with ``async def``, and registers nothing."""

    async def body(w: World) -> list[str]:
        out = []
        for sub in (_NoEnd(), _Sync()):
            with pytest.raises(InvalidArgument) as info:
                await w.mm.register_notifier(sub)  # type: ignore[arg-type]
            out.append(str(info.value))
            assert not w.mm.is_registered(sub)  # type: ignore[arg-type]
        return out

    assert run_world(body).sim.unwrap() == [
        "register_notifier(): <NoEnd> has no invalidate_range_end / release method",
        "register_notifier(): <Sync> has invalidate_range_start / invalidate_range_end not "
        "defined with async def (callbacks are awaited)",
    ]


def test_outside_any_task_only_the_process_holds_a_user_reference() -> None:
    """Asked from no task at all, ``holds_user_ref`` is the process's reference alone:
    after the exit, a task's own ``mmget`` keeps the mm for that task, not for the
    caller."""

    async def body(w: World) -> tuple[World, bool]:
        w.mm.mmget()
        await w.mm.exit()
        return w, w.mm.holds_user_ref()

    w, in_the_task = run_world(body).sim.unwrap()
    assert in_the_task is True
    assert not w.mm.is_dead
    assert w.mm.holds_user_ref() is False


def test_huge_mappings_anywhere_aligned_and_the_refusal_of_a_file_names_it() -> None:
    async def body(w: World) -> list[object]:
        vma = await w.mm.mmap(HPAGE_PAGES * P, HPAGE_PAGES * P, huge=True)  # not at 0
        f = File("f", 2 * HPAGE_PAGES, w.memory)
        with pytest.raises(InvalidArgument) as info:
            await w.mm.mmap(4 * HPAGE_PAGES * P, HPAGE_PAGES * P, file=f, huge=True)
        return [sorted(vma.huge_blocks), str(info.value)]

    assert run_world(body).sim.unwrap() == [
        [HPAGE_PAGES],
        f"a huge mapping must be anonymous and aligned to {HPAGE_PAGES} pages, "
        f"got {AddrRange.of(4 * HPAGE_PAGES * P, HPAGE_PAGES * P)} of f",
    ]


class _Quiet:
    async def invalidate_range_start(self, inv: object) -> None:
        pass

    async def invalidate_range_end(self, inv: object) -> None:
        pass

    async def release(self) -> None:
        pass


@pytest.mark.parametrize("call", ["mmgrab", "mmu_notifier_register"])
def test_a_call_on_a_freed_mm_is_a_use_after_free_naming_it(call: str) -> None:
    async def body(w: World) -> None:
        await w.mm.exit()
        while not w.checker.is_freed(w.mm.key):
            w.mm.mmdrop()  # down to the last mm_count: the mm is freed
        if call == "mmgrab":
            w.mm.mmgrab()
        else:
            await w.mm.register_notifier(_Quiet())  # type: ignore[arg-type]

    run = run_world(body)
    run.sim.unwrap()
    assert [v.detail for v in run.violations if v.kind == "use-after-free"][:1] == [
        f"{call} touched mm after it was freed by the last mmdrop"
    ], run.violations


def test_a_migrate_inside_an_mremap_window_finds_no_mapping_and_moves_nothing() -> None:
    """mremap moves the ptes inside its invalidation and maps the new range only after
    it: a migrate of the new address in between (it takes no mmap_sem) finds a present
    pte with no VMA, and must leave it (False), not read the missing VMA's file."""

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0)
        tried = Completion("migrate tried")
        out: list[object] = []

        class HoldsTheEnd(_Quiet):
            async def invalidate_range_end(self, inv: object) -> None:
                await tried.wait()  # mremap's new VMA is not inserted yet

        await w.mm.register_notifier(HoldsTheEnd())  # type: ignore[arg-type]

        async def migrator() -> None:
            while w.mm.lookup(8) is None:
                await rt.checkpoint("until the pte moved")
            out.append((w.mm.find_vma(8 * P), await w.mm.migrate(8 * P)))
            tried.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.mremap, 0, P, 8 * P, name="mremap")
            tg.start_soon(migrator, name="migrator")
        out.append(w.mm.lookup(8) is not None and w.mm.find_vma(8 * P) is not None)
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [(None, False), True]
    assert run.violations == ()
