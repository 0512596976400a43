"""What the mm's checks say, found unpinned by mutation testing (tools/mutation.sh): an
unmatched mmput while the process runs (in process, where mutmut's selection runs it;
tests/model/test_refcount_underflow.py checks it in a fresh process), a madvise after the
process exited, and a put of a free frame."""

from __future__ import annotations

import pytest

from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.errors import InvalidArgument
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
