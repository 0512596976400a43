"""Mechanisms of `odp_async.mm` that no other test pinned (found by mutation testing,
tools/mutation.sh mm): the messages of bad calls, the value types' texts, the frame
allocator's bookkeeping."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async import checkpoint
from odp_async._runtime import sim
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.check import Checker
from odp_async.errors import InvalidArgument, WouldBlock
from odp_async.mm import (
    AddressSpace,
    FaultError,
    File,
    Frame,
    InvalidateEvent,
    Invalidation,
    PhysicalMemory,
    Vma,
)
from odp_async.sync import Completion, Mutex
from odp_async.world import World, run_world

P = PAGE_SIZE


def _error(body: Callable[[World], Awaitable[Any]]) -> str:
    """The message of the InvalidArgument/FaultError `body` raises in a fresh world."""
    with pytest.raises((InvalidArgument, FaultError)) as info:
        run_world(body).sim.unwrap()
    return str(info.value)


def test_value_types_read_as_the_kernel_would_print_them() -> None:
    inv = Invalidation(3, AddrRange.pages(2, 2), InvalidateEvent.MIGRATE)
    assert str(inv) == "inv3 migrate [0x2000, 0x4000)"
    assert inv.blockable
    frame = Frame(5)
    assert (frame.id, repr(frame)) == ((5, 0), "<Frame 5.0 refs=0>")
    anon = Vma(AddrRange.pages(0, 2), writable=False)
    assert str(anon) == "[0x0, 0x2000) ro anon"


def test_physical_memory_reuses_the_last_freed_frame_under_a_new_generation() -> None:
    memory = PhysicalMemory(Checker())
    a, b = memory.alloc(), memory.alloc()
    assert (a.id, b.id, a.refcount, memory.frames_in_use) == ((0, 1), (1, 1), 1, 2)
    memory.get(a)
    memory.put(a, "test")
    assert memory.is_live(a.id)  # one reference left
    memory.put(a, "test")
    assert not memory.is_live((0, 1))
    assert memory.frames_in_use == 1
    assert not memory.is_live((7, 1))  # never allocated
    c = memory.alloc()
    assert c is a
    assert c.id == (0, 2)
    assert memory.is_live((0, 2))
    assert not memory.is_live((0, 1))  # the old use of the frame is gone


def test_file_pages_and_their_limits() -> None:
    memory = PhysicalMemory(Checker())
    with pytest.raises(InvalidArgument) as info:
        File("f", -1, memory)
    assert str(info.value) == "file size must be a non-negative page count, got -1"
    f = File("f", 2, memory)
    assert f.i_mmap.name == "f.i_mmap"
    assert f.page(1) is f.page(1)
    with pytest.raises(FaultError) as fault:
        f.page(2)
    assert str(fault.value) == "f: page 2 is beyond EOF (2 pages)"
    vma = Vma(AddrRange.pages(10, 4), writable=True, file=f, pgoff=1)
    assert str(vma) == "[0xa000, 0xe000) rw f+1"
    assert vma.pgoff_of(12) == 3
    assert vma.pages_from_pgoff(2) == AddrRange.pages(11, 3)
    assert vma.pages_from_pgoff(0) == AddrRange.pages(10, 4)
    assert vma.pages_from_pgoff(5) is None


def test_bad_mapping_calls_are_named() -> None:
    async def mmap_past_eof(w: World) -> None:
        f = File("f", 2, w.memory)
        await w.mm.mmap(0, 2 * P, file=f, pgoff=1)

    assert _error(mmap_past_eof) == "mmap of f pages [1, 3) is past its 2 pages"

    async def mremap_outside(w: World) -> None:
        await w.mm.mmap(0, 2 * P)
        await w.mm.mremap(P, 2 * P, 8 * P)

    assert _error(mremap_outside) == "mremap source [0x1000, 0x3000) is not inside one mapping"

    async def mremap_onto_a_mapping(w: World) -> None:
        await w.mm.mmap(0, 2 * P)
        await w.mm.mmap(4 * P, 2 * P)
        await w.mm.mremap(0, 2 * P, 3 * P)

    assert _error(mremap_onto_a_mapping) == (
        "mremap destination [0x3000, 0x5000) overlaps a mapping"
    )

    async def mprotect_nothing(w: World) -> None:
        await w.mm.mprotect(0, P, writable=False)

    assert _error(mprotect_nothing) == "mprotect of [0x0, 0x1000): nothing is mapped there"

    async def truncate_negative(w: World) -> None:
        await File("f", 2, w.memory).truncate(-1)

    assert _error(truncate_negative) == "truncate() needs a non-negative page count, got -1"

    async def mmap_after_exit(w: World) -> None:
        await w.mm.exit()
        await w.mm.mmap(0, P)

    assert _error(mmap_after_exit) == "mmap: the process has exited"


def test_mremap_moves_the_pages_and_keeps_the_file_offset() -> None:
    async def body(w: World) -> list[object]:
        f = File("f", 4, w.memory)
        await w.mm.mmap(0, 4 * P, file=f)
        await w.mm.mmap(16 * P, 2 * P)
        await w.mm.cpu_fault(16 * P, write=True)
        anon_before = w.mm.lookup(16)
        await w.mm.mremap(16 * P, 2 * P, 24 * P)  # anonymous: the frames move with the ptes
        await w.mm.mremap(2 * P, 2 * P, 8 * P)  # file pages 2..3 now at vpn 8..9
        await w.mm.cpu_fault(8 * P)
        file_frame = f.page_cache[2]
        out = [
            anon_before == w.mm.lookup(24),
            w.mm.lookup(16),
            sorted(str(v) for v in w.mm.vmas),
            w.mm.lookup(8) == (file_frame.pfn, file_frame.gen, True),
        ]
        await f.truncate(2)  # the moved mapping is the file's too: its pages go
        return [*out, w.mm.lookup(8)]

    moved, old, vmas, file_page, truncated = run_world(body).sim.unwrap()
    assert (moved, old, file_page, truncated) == (True, None, True, None)
    assert vmas == [
        "[0x0, 0x2000) rw f+0",
        "[0x18000, 0x1a000) rw anon",
        "[0x8000, 0xa000) rw f+2",
    ]

    async def mremap_after_exit(w: World) -> None:
        await w.mm.exit()
        await w.mm.mremap(0, P, 4 * P)

    assert _error(mremap_after_exit) == "mremap: the process has exited"


class _Sub:
    """A subscriber whose callbacks run what a test gives them."""

    def __init__(self, on_start: Callable[[], Awaitable[None]] | None = None) -> None:
        self.on_start = on_start
        self.on_release: Callable[[], Awaitable[None]] | None = None

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if self.on_start is not None:
            await self.on_start()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        pass

    async def release(self) -> None:
        if self.on_release is not None:
            await self.on_release()

    def __repr__(self) -> str:
        return "<sub>"


def test_is_registered_follows_register_and_unregister() -> None:
    async def body(w: World) -> list[bool]:
        sub = _Sub()
        out = [w.mm.is_registered(sub)]
        await w.mm.register_notifier(sub)
        out.append(w.mm.is_registered(sub))
        await w.mm.unregister_notifier(sub)
        out.append(w.mm.is_registered(sub))
        return out

    assert run_world(body).sim.unwrap() == [False, True, False]


def test_unregistering_from_inside_its_own_callback_waits_on_itself() -> None:
    """The srcu wait of unregister names the tasks inside the subscriber's callbacks."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, P)
        sub = _Sub()

        async def unregister_myself() -> None:
            await w.mm.unregister_notifier(sub)

        sub.on_start = unregister_myself
        await w.mm.register_notifier(sub)
        await w.mm.madvise_dontneed(0, P)

    deadlock = run_world(body).sim.deadlock
    assert deadlock is not None
    (blocked,) = deadlock.cycle
    assert blocked.waits_for == "notifier callbacks to return (srcu)"
    assert blocked.holders == (blocked.task,)


def test_a_last_mmput_whose_release_needs_a_held_lock_hangs_on_itself() -> None:
    async def body(w: World) -> None:
        lock = Mutex("driver lock")
        sub = _Sub()

        async def release() -> None:
            lock.acquire_nowait()

        sub.on_release = release
        await w.mm.register_notifier(sub)
        w.mm.mmget()
        await w.mm.exit()
        async with lock:
            await w.mm.mmput()  # the last reference: exit_mmap runs here

    deadlock = run_world(body).sim.deadlock
    assert deadlock is not None
    (blocked,) = deadlock.cycle
    assert blocked.waits_for.startswith(
        "itself (the last mmput runs exit_mmap in this task, and Mutex 'driver lock' is "
        "already held by the current task"
    )
    assert blocked.holders == (blocked.task,)


def test_migrate_after_exit_is_named() -> None:
    async def body(w: World) -> None:
        await w.mm.exit()
        await w.mm.migrate(0)

    assert _error(body) == "migrate: the process has exited"


def test_migrate_refuses_what_it_cannot_move() -> None:
    async def body(w: World) -> list[object]:
        f = File("f", 1, w.memory)
        await w.mm.mmap(0, P, file=f)
        await w.mm.mmap(4 * P, 2 * P)
        await w.mm.cpu_fault(0)
        await w.mm.cpu_fault(4 * P)
        file_page, anon_page = w.mm.lookup(0), w.mm.lookup(4)
        return [
            await w.mm.migrate(0),  # a file page
            w.mm.lookup(0) == file_page,
            await w.mm.migrate(5 * P),  # not populated
            w.mm.lookup(5),
            await w.mm.migrate(12 * P),  # not mapped
            await w.mm.migrate(4 * P),  # anonymous and populated: moves
            w.mm.lookup(4) != anon_page,
        ]

    run = run_world(body)
    assert run.sim.unwrap() == [False, True, False, None, False, True, True]
    # only the anonymous page was invalidated: a file page is refused before any change
    migrations = [e for e in run.events if e.kind == "invalidate-begin" and "migrate" in e.detail]
    assert [e.address for e in migrations] == [4 * P]


def test_a_migrated_page_is_mapped_on_a_new_frame_and_stays_usable() -> None:
    """A successful migrate maps the page on a newly allocated frame (not the old one,
    and not a migration entry left behind): a CPU fault after it finds the page present
    and changes nothing."""

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0, write=True)
        before = w.mm.lookup(0)
        moved = await w.mm.migrate(0)
        after = w.mm.lookup(0)
        await w.mm.cpu_fault(0, write=True)
        return [
            moved,
            before is not None,
            after is not None,
            after != before,
            w.mm.lookup(0) == after,
        ]

    assert run_world(body).sim.unwrap() == [True, True, True, True, True]


def test_mprotect_downgrades_the_ptes_and_can_grant_write_again() -> None:
    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0, write=True)
        await w.mm.mprotect(0, P, writable=False)
        ro = w.mm.lookup(0)
        vma_ro = str(w.mm.vmas[0])
        await w.mm.mprotect(0, P, writable=True)
        await w.mm.cpu_fault(0, write=True)  # allowed again
        rw = w.mm.lookup(0)
        return [ro is not None and ro[2] is False, vma_ro, str(w.mm.vmas[0]), rw and rw[2]]

    assert run_world(body).sim.unwrap() == [
        True,
        "[0x0, 0x1000) ro anon",
        "[0x0, 0x1000) rw anon",
        True,
    ]

    async def mprotect_after_exit(w: World) -> None:
        await w.mm.exit()
        await w.mm.mprotect(0, P, writable=False)

    assert _error(mprotect_after_exit) == "mprotect: the process has exited"


def test_unregister_no_release_of_an_unregistered_subscriber_is_a_no_op() -> None:
    async def body(w: World) -> bool:
        sub = _Sub()
        await w.mm.unregister_notifier_no_release(sub)
        return w.mm.is_registered(sub)

    assert run_world(body).sim.unwrap() is False


def test_put_notifier_frees_after_the_grace_period_even_if_already_unhashed() -> None:
    async def body(w: World) -> list[object]:
        sub = _Sub()
        freed: list[str] = []

        async def free() -> None:
            freed.append("freed")

        w.mm.put_notifier(sub, free)  # never registered: nothing to unhash
        while not freed:
            await checkpoint()
        return [*freed, w.mm.is_registered(sub)]

    assert run_world(body).sim.unwrap() == ["freed", False]

    bare = AddressSpace(PhysicalMemory(Checker()), Checker())
    with pytest.raises(InvalidArgument) as info:
        bare.put_notifier(_Sub(), _nothing)
    assert str(info.value) == "put_notifier(): this mm was built without a workqueue"


async def _nothing() -> None:
    pass


def test_truncating_to_the_same_size_takes_no_lock() -> None:
    async def body(w: World) -> int:
        f = File("f", 2, w.memory)
        async with f.i_mmap:  # a truncate that shrinks nothing does not need it
            await f.truncate(2)
            await f.truncate(3)
        return f.npages

    assert run_world(body).sim.unwrap() == 3


def _checkpoint_labels(body: Callable[[World], Awaitable[Any]]) -> list[object]:
    """The labels of the checkpoints a traced run of `body` passed, in order."""
    run = run_world(body, trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    return [label for (_, _, op, label) in run.sim.trace if op == sim.CHECKPOINT]


def test_migrate_growing_truncate_and_unregister_no_release_label_their_checkpoints() -> None:
    """A trace names what each step did: the copy step of a migration, a truncate that
    grows the file, an unregister_no_release (the labels a replay's trace shows)."""

    async def body(w: World) -> None:
        await w.mm.mmap(4 * P, P)
        await w.mm.cpu_fault(4 * P, write=True)
        await w.mm.migrate(4 * P)
        await File("f", 1, w.memory).truncate(3)
        await w.mm.unregister_notifier_no_release(_Sub())

    labels = _checkpoint_labels(body)
    for label in [("migrate", "copy", 4), ("truncate", "f"), ("unregister_no_release", "<sub>")]:
        assert label in labels, label


def test_a_device_translation_of_a_migrated_page_is_stale_and_says_why() -> None:
    """The frame a migration leaves is freed as "migrated away": a device still
    translating it has a stale translation whose report names the migration."""

    async def body(w: World) -> None:
        await w.mm.mmap(4 * P, P)
        await w.mm.cpu_fault(4 * P, write=True)
        pfn, gen, _ = w.mm.lookup(4) or (0, 0, False)
        w.checker.translation_installed("dev", 4, (pfn, gen), True)
        await w.mm.migrate(4 * P)

    run = run_world(body)
    stale = [v.detail for v in run.violations if v.kind == "stale-translation"]
    assert stale == ["frame 0.1 was migrated away while dev still translates 0x4000 to it"]


def test_an_empty_file_is_allowed() -> None:
    f = File("empty", 0, PhysicalMemory(Checker()))
    assert f.npages == 0
    with pytest.raises(FaultError):
        f.page(0)


def test_a_shrinking_truncate_labels_its_page_cache_step_and_names_the_free() -> None:
    """Pass 2 of a truncate has its own checkpoint, and the page-cache frames it frees
    are "truncated from <file>": a device still translating one reports that."""

    async def body(w: World) -> None:
        f = File("f", 2, w.memory)
        await w.mm.mmap(8 * P, 2 * P, file=f)
        await w.mm.cpu_fault(9 * P)
        pfn, gen, _ = w.mm.lookup(9) or (0, 0, False)
        w.checker.translation_installed("dev", 9, (pfn, gen), False)
        await f.truncate(1)

    assert ("truncate", "f", "page cache") in _checkpoint_labels(body)
    run = run_world(body)
    stale = [v.detail for v in run.violations if v.kind == "stale-translation"]
    assert any("was truncated from f while dev still translates 0x9000" in d for d in stale), stale


def test_reference_calls_on_a_freed_mm_are_use_after_free_naming_the_call() -> None:
    async def body(w: World) -> list[str]:
        await w.mm.exit()
        while not w.checker.is_freed(w.mm.key):
            w.mm.mmdrop()  # down to the last mm_count: the mm is freed
        errors = []
        for call in (w.mm.mmget, w.mm.mmput_async):
            try:
                call()
            except InvalidArgument as e:
                errors.append(str(e))
        return errors

    run = run_world(body)
    # mmget on 0 is a usage error; a put past the last is the program's refcount bug
    assert run.sim.unwrap() == ["mmget() of an mm whose mm_users is 0: use mmget_not_zero()"]
    assert [v.detail for v in run.violations if v.kind == "refcount-underflow"] == [
        "mm: mmput_async() after its last mm_users reference was put: mm_users would go to -1"
    ]
    uaf = [v.detail for v in run.violations if v.kind == "use-after-free"]
    assert uaf[:2] == [
        "mmget touched mm after it was freed by the last mmdrop",
        "mmput_async touched mm after it was freed by the last mmdrop",
    ], uaf

    bare = AddressSpace(PhysicalMemory(Checker()), Checker())
    with pytest.raises(InvalidArgument) as info:
        bare.mmput_async()
    assert str(info.value) == "mmput_async(): this mm was built without a workqueue"


@pytest.mark.parametrize("how", ["unregister", "put", "no-release"])
def test_teardown_frees_the_subscriber_under_its_first_key_saying_how(how: str) -> None:
    """The subscriber's checker key is fixed when its teardown starts (``#0`` here), and
    its free says which teardown freed it: a second free names both."""

    async def body(w: World) -> list[object]:
        w.mm.notifier_teardown = how
        sub = _Sub()
        freed: list[str] = []

        async def free() -> None:
            freed.append("freed")

        await w.mm.register_notifier(sub)
        await w.mm.teardown_notifier(sub, free)
        assert not w.mm.is_registered(sub)
        at_return = list(freed)
        while not freed:
            await checkpoint()
        w.mm.free_subscriber(sub)  # a second free
        return at_return

    run = run_world(body)
    at_return = run.sim.unwrap()
    if how != "put":  # "put" frees after a grace period, on the workqueue
        assert at_return == ["freed"]
    doubles = [v.detail for v in run.violations if v.kind == "double-free"]
    assert doubles == [
        f"subscriber <sub>#0 freed (freed by its owner) after it was freed by its teardown ({how})"
    ]
    if how == "put":
        assert ("mmu_notifier_put", "<sub>") in _checkpoint_labels(body)


def test_each_waiting_step_of_the_mm_is_labelled() -> None:
    """A trace names the steps: an invalidation's two callback points, a huge page's
    split, a reap that found mmap_sem busy, a synchronize and a wait for a valid range."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P, huge=True)
        await w.mm.madvise_dontneed(P, P)  # cuts the first huge block: split, then zap
        await w.mm.synchronize_notifiers()
        await w.mm.range_wait_valid(AddrRange.pages(4, 1))
        released = False

        async def writer() -> None:
            async with w.mm.mmap_sem.write_locked():
                await _until(lambda: released)

        async with rt.task_group() as tg:
            tg.start_soon(writer, name="writer")
            await _until(lambda: w.mm.mmap_sem.writer is not None)
            assert not await w.mm.reap(0, 8 * P)
            released = True

    labels = _checkpoint_labels(body)
    for label in [
        ("split", 0, "done"),
        ("mmu_notifier_synchronize",),
        ("range_wait_valid", 4 * P),
        ("reap", "mmap_sem busy"),
    ]:
        assert label in labels, label
    steps = [x for x in labels if isinstance(x, tuple) and x[:1] == ("invalidate",)]
    # the split's invalidation (1) runs nested inside the zap's (0)
    assert steps == [
        ("invalidate", 0, "after start"),
        ("invalidate", 1, "after start"),
        ("invalidate", 1, "before end"),
        ("invalidate", 0, "before end"),
    ], steps


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await checkpoint()


def test_two_unregisters_of_one_subscriber_both_wait_for_its_callback() -> None:
    """Every task waiting for a subscriber's running callbacks waits on the same SRCU
    queue, so the callback's return wakes them all."""

    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, P)
        inside, release = Completion("inside"), Completion("release")
        done: list[str] = []

        async def start() -> None:
            inside.complete()
            await release.wait()

        sub = _Sub(start)
        await w.mm.register_notifier(sub)

        async def unregister(name: str) -> None:
            await inside.wait()
            inside.complete()  # let the other one in too
            await w.mm.unregister_notifier(sub)
            done.append(name)

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="invalidate")
            tg.start_soon(unregister, "a", name="a")
            tg.start_soon(unregister, "b", name="b")
            await _until(lambda: len(w.mm._srcu(sub)) == 2)
            release.complete()
        return sorted(done)

    run = run_world(body, max_steps=20_000)
    assert run.sim.deadlock is None
    assert run.sim.unwrap() == ["a", "b"]


# --- the non-blockable invalidation (the OOM reaper's) -----------------------------------


class _Logged:
    """A subscriber that logs its callbacks as ``(name, callback, blockable)``, refuses a
    non-blockable start when `refuses`, and runs `on_start` inside its start."""

    def __init__(
        self,
        name: str,
        log: list[tuple[str, str, bool]],
        *,
        refuses: bool = False,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name, self.log, self.refuses, self.on_start = name, log, refuses, on_start

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.log.append((self.name, "start", inv.blockable))
        if self.on_start is not None:
            await self.on_start()
        if self.refuses and not inv.blockable:
            raise WouldBlock("busy")

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.log.append((self.name, "end", inv.blockable))

    async def release(self) -> None:
        self.log.append((self.name, "release", True))

    def __repr__(self) -> str:
        return f"<{self.name}>"


def test_a_reap_numbers_its_invalidation_and_records_its_begin_and_refusal() -> None:
    """A reap's invalidation takes the next id, as every invalidation does, and the event
    history shows its begin (kind, key, text, address), a refusal and its end."""

    async def body(w: World) -> list[bool]:
        await w.mm.mmap(0, 2 * P)
        await w.mm.cpu_fault(P, write=True)
        reaped = [await w.mm.reap(P, P)]  # nobody subscribed: inv0 zaps
        await w.mm.register_notifier(_Logged("dev", [], refuses=True))
        reaped.append(await w.mm.reap(0, 2 * P))  # inv1: refused
        await w.mm.madvise_dontneed(0, P)  # inv2, blockable
        return reaped

    run = run_world(body)
    assert run.sim.unwrap() == [True, False]
    events = [
        (e.kind, e.key, e.detail, e.address) for e in run.events if e.kind.startswith("invalidate")
    ]
    assert events == [
        ("invalidate-begin", "inv0", "inv0 unmap [0x1000, 0x2000) (non-blockable)", P),
        ("invalidate-end", "inv0", "inv0 unmap [0x1000, 0x2000)", P),
        ("invalidate-begin", "inv1", "inv1 unmap [0x0, 0x2000) (non-blockable)", 0),
        ("invalidate-refused", "inv1", "<dev> refused inv1 unmap [0x0, 0x2000): busy", None),
        ("invalidate-end", "inv1", "inv1 unmap [0x0, 0x2000) refused", 0),
        ("invalidate-begin", "inv2", "inv2 madvise-dontneed [0x0, 0x1000)", 0),
        ("invalidate-end", "inv2", "inv2 madvise-dontneed [0x0, 0x1000)", 0),
    ], events


def test_a_nonblockable_start_that_may_sleep_names_the_wait_the_subscriber_and_the_range() -> None:
    """The sleep-in-nonblock violation names the primitive (its type, and its name if it
    has one), whose start it was, which invalidation, and what to do instead."""

    unnamed, named = Mutex(), Mutex("pt_lock")

    async def take_both() -> None:
        for lock in (unnamed, named):
            await lock.acquire()  # free: no wait, but it may sleep
            lock.release()

    async def body(w: World) -> bool:
        await w.mm.mmap(0, 2 * P)
        await w.mm.register_notifier(_Logged("dev", [], on_start=take_both))
        return await w.mm.reap(0, 2 * P)

    run = run_world(body)
    assert run.sim.unwrap() is True
    why = (
        "<dev>'s invalidate_range_start of the non-blockable inv0 unmap [0x0, 0x2000) "
        "(it must trylock and raise WouldBlock) may sleep on "
    )
    assert [(v.kind, v.detail) for v in run.violations] == [
        ("sleep-in-nonblock", why + "Mutex"),
        ("sleep-in-nonblock", why + "Mutex 'pt_lock'"),
    ]


def test_a_subscriber_unhashed_during_a_reaps_walk_is_skipped_and_the_walk_goes_on() -> None:
    """While the first subscriber's non-blockable start runs, another task unregisters the
    second: the walk skips it and still starts the third (which then gets its end)."""

    log: list[tuple[str, str, bool]] = []
    inside = Completion("inside")
    worlds: list[World] = []

    async def first_start() -> None:
        inside.complete_all()
        # released and unhashed (between the two, the walk may still reach b, as the
        # kernel's may: mmu_notifier_unregister unhashes after ->release returns)
        await _until(
            lambda: ("b", "release", True) in log and not worlds[0].mm.is_registered(subs[1])
        )

    subs = [_Logged("a", log, on_start=first_start), _Logged("b", log), _Logged("c", log)]

    async def body(w: World) -> bool:
        worlds.append(w)
        await w.mm.mmap(0, 2 * P)
        for sub in subs:
            await w.mm.register_notifier(sub)
        reaped: list[bool] = []

        async def reaper() -> None:
            reaped.append(await w.mm.reap(0, 2 * P))

        async def unregister() -> None:
            await inside.wait()
            await w.mm.unregister_notifier(subs[1])

        async with rt.task_group() as tg:
            tg.start_soon(reaper, name="reaper")
            tg.start_soon(unregister, name="unregister")
        return reaped[0]

    run = run_world(body, max_steps=20_000)
    assert run.sim.unwrap() is True
    assert log == [
        ("a", "start", False),
        ("b", "release", True),
        ("c", "start", False),
        ("a", "end", False),
        ("c", "end", False),
    ]


def test_unregister_waits_for_a_nonblockable_start_running_in_its_subscriber() -> None:
    """A reap's start callbacks are SRCU readers like any other: an unregister of the
    subscriber returns only once its running non-blockable start has returned."""

    log: list[tuple[str, str, bool]] = []
    inside = Completion("inside")

    async def start() -> None:
        inside.complete_all()
        for _ in range(50):  # plenty of steps for an unregister that would not wait
            await checkpoint()
        log.append(("dev", "start returns", False))

    sub = _Logged("dev", log, on_start=start)

    async def body(w: World) -> None:
        await w.mm.mmap(0, 2 * P)
        await w.mm.register_notifier(sub)

        async def unregister() -> None:
            await inside.wait()
            await w.mm.unregister_notifier(sub)
            log.append(("dev", "unregistered", True))

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.reap, 0, 2 * P, name="reaper")
            tg.start_soon(unregister, name="unregister")

    run = run_world(body, max_steps=20_000)
    run.sim.unwrap()
    assert run.violations == ()
    assert log.index(("dev", "start returns", False)) < log.index(("dev", "unregistered", True))


def test_unregister_waits_for_the_end_a_refused_reap_sends_to_a_started_subscriber() -> None:
    """After a refusal, today's rule ends the subscribers that started; those ends are SRCU
    readers too: an unregister of such a subscriber waits for its running end."""

    log: list[tuple[str, str, bool]] = []
    inside = Completion("inside")

    class _SlowEnd(_Logged):
        async def invalidate_range_end(self, inv: Invalidation) -> None:
            await super().invalidate_range_end(inv)
            inside.complete_all()
            for _ in range(50):  # plenty of steps for an unregister that would not wait
                await checkpoint()
            log.append(("a", "end returns", inv.blockable))

    first = _SlowEnd("a", log)

    async def body(w: World) -> list[bool]:
        await w.mm.mmap(0, 2 * P)
        await w.mm.register_notifier(first)
        await w.mm.register_notifier(_Logged("b", log, refuses=True))
        reaped: list[bool] = []

        async def reaper() -> None:
            reaped.append(await w.mm.reap(0, 2 * P))

        async def unregister() -> None:
            await inside.wait()
            await w.mm.unregister_notifier(first)
            log.append(("a", "unregistered", True))

        async with rt.task_group() as tg:
            tg.start_soon(reaper, name="reaper")
            tg.start_soon(unregister, name="unregister")
        return reaped

    run = run_world(body, max_steps=20_000)
    assert run.sim.unwrap() == [False]
    assert run.violations == ()
    assert log[:3] == [("a", "start", False), ("b", "start", False), ("a", "end", False)]
    assert log.index(("a", "end returns", False)) < log.index(("a", "unregistered", True))


def test_a_reap_after_exit_is_named() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, P)
        await w.mm.exit()
        await w.mm.reap(0, P)

    assert _error(body) == "reap: the process has exited"


def test_a_reap_zaps_only_the_anonymous_pages_inside_its_range() -> None:
    """The reaper's invalidation spans the anonymous mappings clipped to the range asked
    for; file mappings are left alone, and a range with no anonymous memory is done."""

    async def body(w: World) -> list[object]:
        f = File("f", 2, w.memory)
        await w.mm.mmap(0, 2 * P, file=f)
        await w.mm.mmap(3 * P, 3 * P)
        for vpn in (0, 1, 3, 4, 5):
            await w.mm.cpu_fault(vpn * P, write=True)
        out: list[object] = []
        for start, length in ((0, 2 * P), (0, 5 * P), (5 * P, 4 * P)):
            out.append(await w.mm.reap(start, length))
            out.append([vpn for vpn in range(6) if w.mm.lookup(vpn) is not None])
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [True, [0, 1, 3, 4, 5], True, [0, 1, 5], True, [0, 1]]
    begins = [e.detail for e in run.events if e.kind == "invalidate-begin"]
    assert begins == [
        "inv0 unmap [0x3000, 0x5000) (non-blockable)",
        "inv1 unmap [0x5000, 0x6000) (non-blockable)",
    ]


def test_a_reap_cancelled_meanwhile_still_finishes_its_invalidation() -> None:
    """The reap's invalidation is shielded: a cancel that arrives while a start runs
    takes effect only after the zap and the ends (no subscriber is left without its
    end, no range stays listed)."""

    log: list[tuple[str, str, bool]] = []
    scopes: list[Any] = []

    async def cancel_the_reaper() -> None:
        scopes[0].cancel()

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 2 * P)
        await w.mm.cpu_fault(0, write=True)
        await w.mm.register_notifier(_Logged("dev", log, on_start=cancel_the_reaper))
        out: list[object] = []
        with rt.cancel_scope() as scope:
            scopes.append(scope)
            out.append(await w.mm.reap(0, 2 * P))
            await checkpoint()
            out.append("not cancelled")
        out.append(w.mm.lookup(0) is None)
        out.append(list(w.mm.active_ranges))
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [True, True, []]
    assert log == [("dev", "start", False), ("dev", "end", False)]


def test_exit_tears_the_mm_down_once_and_the_last_mmdrop_frees_it() -> None:
    """exit() drops the process's reference and runs exit_mmap (anonymous frames freed,
    the file's page cache kept, the file no longer mapped); a second exit is refused;
    the mm_count references then free the mm at zero, and one more drop is a
    double-free."""

    async def body(w: World) -> list[object]:
        f = File("f", 2, w.memory)
        await w.mm.mmap(0, 2 * P, file=f)
        await w.mm.mmap(4 * P, P)
        await w.mm.cpu_fault(0, write=True)
        await w.mm.cpu_fault(4 * P, write=True)
        w.mm.mmgrab()
        out: list[object] = [(w.mm.mm_count, w.mm.users, w.memory.frames_in_use)]
        await w.mm.exit()
        out.append((w.mm.mm_count, w.mm.users, w.memory.frames_in_use, list(f.mappings)))
        out.append([w.mm.lookup(vpn) for vpn in range(6)])
        try:
            await w.mm.exit()
        except InvalidArgument as e:
            out.append(str(e))
        for _ in range(3):
            w.mm.mmdrop()
            out.append((w.mm.mm_count, w.checker.is_freed(w.mm.key)))
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [
        (3, 1, 2),
        (2, 0, 1, []),
        [None] * 6,
        "exit() of a process that already exited",
        (1, False),
        (0, True),
        (-1, True),
    ]
    assert [(e.kind, e.key, e.detail) for e in run.events if e.kind != "violation"] == [
        ("exit-begin", "exit", "exit_mmap"),
        ("mm-release", "mm", "the address space was released"),
        ("exit-end", "exit", "exit_mmap done"),
        ("free", "mm", "mm freed: freed by the last mmdrop"),
    ]
    assert [(v.kind, v.detail) for v in run.violations] == [
        ("use-after-free", "mmdrop touched mm after it was freed by the last mmdrop"),
        ("double-free", "mm freed (mmdrop below zero) after it was freed by the last mmdrop"),
    ]


@pytest.mark.parametrize("order", ["today", "pre-2013"])
def test_exit_releases_every_subscriber_once_and_unhashes_them(order: str) -> None:
    """exit_mmap's walk gives each hashed subscriber its release and unhashes it; one
    unregistered by an earlier release (which then got its release from the unregister)
    is skipped, and the walk goes on to the next."""

    log: list[tuple[str, str, bool]] = []

    class _Unregisters(_Logged):
        async def release(self) -> None:
            await super().release()
            await mm[0].unregister_notifier(subs[1])

    subs = [_Unregisters("a", log), _Logged("b", log), _Logged("c", log)]
    mm: list[AddressSpace] = []

    async def body(w: World) -> list[bool]:
        mm.append(w.mm)
        w.mm.release_order = order
        for sub in subs:
            await w.mm.register_notifier(sub)
        await w.mm.exit()
        return [w.mm.is_registered(sub) for sub in subs]

    run = run_world(body)
    assert run.sim.unwrap() == [False, False, False]
    assert log == [("a", "release", True), ("b", "release", True), ("c", "release", True)]


def test_a_teardown_cancelled_meanwhile_still_runs_to_the_end() -> None:
    """The last reference's teardown (exit_mmap, then the users' mm_count) is shielded,
    like the kernel's: a cancel that arrives while a subscriber's release runs takes
    effect only once the mm is torn down."""

    log: list[tuple[str, str, bool]] = []
    scopes: list[Any] = []

    class _CancelsInRelease(_Logged):
        async def release(self) -> None:
            await super().release()
            scopes[0].cancel()
            await checkpoint()
            log.append((self.name, "release returns", True))

    subs = [_CancelsInRelease("a", log), _Logged("b", log)]

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0, write=True)
        for sub in subs:
            await w.mm.register_notifier(sub)
        out: list[object] = []
        with rt.cancel_scope() as scope:
            scopes.append(scope)
            await w.mm.exit()
            await checkpoint()
            out.append("not cancelled")
        out.append((w.mm.is_dead, w.mm.lookup(0), w.memory.frames_in_use, w.mm.mm_count))
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [(True, None, 0, 1)]  # the world keeps one mm_count
    assert log == [("a", "release", True), ("a", "release returns", True), ("b", "release", True)]
    assert [e.kind for e in run.events if e.kind.startswith("exit")] == ["exit-begin", "exit-end"]


def test_exit_waits_out_an_unregister_racing_a_release_and_unregister_waits_for_it() -> None:
    """Today's release order runs ->release inside the SRCU read section: an unregister
    of that subscriber racing the walk waits for the release to return, and the walk's
    own unhash afterwards finds it gone without harm."""

    log: list[tuple[str, str, bool]] = []
    inside = Completion("inside")

    class _SlowRelease(_Logged):
        async def release(self) -> None:
            await super().release()
            if ("a", "release", True) in log[:-1]:  # the unregister's own (still hashed)
                return
            inside.complete_all()
            for _ in range(50):  # plenty of steps for an unregister that would not wait
                await checkpoint()
            log.append((self.name, "release returns", True))

    sub = _SlowRelease("a", log)

    async def body(w: World) -> list[bool]:
        await w.mm.register_notifier(sub)

        async def unregister() -> None:
            await inside.wait()
            await w.mm.unregister_notifier(sub)
            log.append(("a", "unregistered", True))

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.exit, name="exit")
            tg.start_soon(unregister, name="unregister")
        return [w.mm.is_dead, w.mm.is_registered(sub)]

    run = run_world(body, max_steps=20_000)
    assert run.sim.unwrap() == [True, False]
    assert run.violations == ()
    assert log[0] == ("a", "release", True)
    assert log.index(("a", "release returns", True)) < log.index(("a", "unregistered", True))


def test_a_pre_2013_release_freed_under_it_is_a_use_after_free_naming_the_release() -> None:
    """Before 2013 exit unhashed a subscriber, then ran its ->release outside SRCU: a
    teardown racing it does not wait and frees it under the running release."""

    log: list[tuple[str, str, bool]] = []
    inside = Completion("inside")

    class _SlowRelease(_Logged):
        async def release(self) -> None:
            await super().release()
            inside.complete_all()
            for _ in range(50):
                await checkpoint()

    sub = _SlowRelease("a", log)

    async def body(w: World) -> None:
        w.mm.release_order = "pre-2013"
        await w.mm.register_notifier(sub)

        async def teardown() -> None:
            await inside.wait()
            await w.mm.teardown_notifier(sub, _nothing)

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.exit, name="exit")
            tg.start_soon(teardown, name="teardown")

    run = run_world(body, max_steps=20_000)
    run.sim.unwrap()
    assert [(v.kind, v.detail) for v in run.violations] == [
        (
            "use-after-free",
            "its ->release (run outside SRCU by exit_mmap) touched subscriber <a>#0 after "
            "it was freed by its teardown (unregister)",
        )
    ]


def test_a_device_still_translating_a_page_freed_at_exit_reports_it() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(4 * P, P)
        await w.mm.cpu_fault(4 * P, write=True)
        pfn, gen, _ = w.mm.lookup(4) or (0, 0, False)
        w.checker.translation_installed("dev", 4, (pfn, gen), True)
        await w.mm.exit()

    run = run_world(body)
    stale = [v.detail for v in run.violations if v.kind == "stale-translation"]
    assert stale == ["frame 0.1 was unmapped at exit while dev still translates 0x4000 to it"]


def test_unregistering_an_unregistered_subscriber_is_a_no_op() -> None:
    log: list[tuple[str, str, bool]] = []
    sub = _Logged("a", log)

    async def body(w: World) -> list[bool]:
        await w.mm.unregister_notifier(sub)  # never registered
        await w.mm.register_notifier(sub)
        await w.mm.unregister_notifier(sub)
        await w.mm.unregister_notifier(sub)  # again
        return [w.mm.is_registered(sub)]

    run = run_world(body)
    assert run.sim.unwrap() == [False]
    assert run.violations == ()
    assert log == [("a", "release", True)]


def test_an_unregister_racing_another_ones_release_waits_for_it() -> None:
    """Two unregisters of one subscriber: the second, finding it still hashed while the
    first's ->release runs, releases it too and then waits (SRCU) for the first's
    release to return; the first then finds it unhashed already."""

    log: list[tuple[str, str, bool]] = []
    inside = Completion("inside")

    class _SlowFirstRelease(_Logged):
        async def release(self) -> None:
            await super().release()
            if ("a", "release", True) in log[:-1]:  # the second unregister's: quick
                return
            inside.complete_all()
            for _ in range(50):  # plenty of steps for an unregister that would not wait
                await checkpoint()
            log.append((self.name, "release returns", True))

    sub = _SlowFirstRelease("a", log)

    async def body(w: World) -> bool:
        await w.mm.register_notifier(sub)

        async def first() -> None:
            await w.mm.unregister_notifier(sub)
            log.append(("a", "first unregistered", True))

        async def second() -> None:
            await inside.wait()
            await w.mm.unregister_notifier(sub)
            log.append(("a", "second unregistered", True))

        async with rt.task_group() as tg:
            tg.start_soon(first, name="first")
            tg.start_soon(second, name="second")
        return w.mm.is_registered(sub)

    run = run_world(body, max_steps=20_000)
    assert run.sim.unwrap() is False
    assert run.violations == ()
    assert log.count(("a", "release", True)) == 2
    returns = log.index(("a", "release returns", True))
    assert returns < log.index(("a", "second unregistered", True))
    assert returns < log.index(("a", "first unregistered", True))


def test_the_walk_between_two_subscribers_is_a_labelled_checkpoint() -> None:
    """Between two subscribers' callbacks the walk holds only SRCU: a checkpoint labelled
    ``("invalidate", id, "next start" | "next end")``, once per gap, as the trace shows."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 2 * P)
        for name in ("a", "b"):
            await w.mm.register_notifier(_Logged(name, []))
        await w.mm.madvise_dontneed(0, P)

    run = run_world(body, trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    labels = [label for (_, _, op, label) in run.sim.trace if op == sim.CHECKPOINT]
    walk = [label for label in labels if isinstance(label, tuple) and "next" in str(label[-1])]
    assert walk == [("invalidate", 0, "next start"), ("invalidate", 0, "next end")]


def test_a_region_removed_from_the_tree_after_its_deregistration_is_named() -> None:
    """A tree remove of a deregistered region: a use-after-free that says what touched
    it and what freed it, and a double-free of the tree node."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        await w.ctx.deregister_mr(a)
        w.ctx.tree_remove(a)

    run = run_world(body, protocol="odp2014")
    run.sim.unwrap()
    assert [(v.kind, v.detail) for v in run.violations] == [
        (
            "use-after-free",
            "a region tree remove touched region A#0 after it was freed by deregister_mr",
        ),
        ("double-free", "region A#0 removed from the region tree twice"),
    ]


@pytest.mark.parametrize("bad", [True, 2.0, "3", None])
def test_a_file_size_that_is_not_an_int_is_refused_by_name(bad: object) -> None:
    """A file's size and a truncate's new size are page counts: an int (not a bool),
    refused by name otherwise, never taken as a number or left to a TypeError."""
    memory = PhysicalMemory(Checker())
    with pytest.raises(InvalidArgument) as info:
        File("f", bad, memory)  # type: ignore[arg-type]
    assert str(info.value) == f"file size must be a non-negative page count, got {bad!r}"

    async def truncate(w: World) -> None:
        await File("f", 2, w.memory).truncate(bad)  # type: ignore[arg-type]

    assert _error(truncate) == f"truncate() needs a non-negative page count, got {bad!r}"


def test_an_unregistered_subscriber_is_not_kept_by_its_mm() -> None:
    """``mmu_notifier_unregister`` leaves the mm holding nothing of the subscriber (its
    hash entry, its SRCU readers and their wait queue go), even one that waited for a
    running callback: once its owner drops it, it is freed while the mm lives on.  Its
    window between ``release`` and the unhash is a labelled checkpoint."""

    async def body(w: World) -> tuple[bool, bool]:
        await w.mm.mmap(0, P)
        inside, let_go, later = Completion("inside"), Completion("let go"), Completion("later")
        unregistered: list[bool] = []

        async def start() -> None:
            inside.complete()
            await let_go.wait()

        sub = _Sub(start)
        gone = weakref.ref(sub)
        await w.mm.register_notifier(sub)

        async def unregister(sub: _Sub) -> None:
            await inside.wait()
            await w.mm.unregister_notifier(sub)
            del sub
            unregistered.append(True)
            await later.wait()  # parked elsewhere: its last wait is not the SRCU one

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="invalidate")
            tg.start_soon(unregister, sub, name="unregister")
            del sub
            await _until(lambda: len(w.mm._srcu(gone())) == 1)  # type: ignore[arg-type]
            let_go.complete()
            await _until(lambda: bool(unregistered) and later.statistics().tasks_waiting == 1)
            gc.collect()
            freed = gone() is None
            later.complete()
        return freed, w.mm.is_dead

    run = run_world(body, trace=True)
    assert run.sim.unwrap() == (True, False)
    assert run.sim.trace is not None
    labels = [label for (_, _, op, label) in run.sim.trace if op == sim.CHECKPOINT]
    assert ("mmu_notifier_unregister", "<sub>", "unhash") in labels
