"""Mechanisms of a blockable invalidation (`AddressSpace._invalidate`) that no other test
pinned (the survivors of the mutation run of 2026-12-02 16:05-17:05 UTC,
``tools/mutation-equivalents.md``): its shield, its numbering, the listing of its range
after the start callbacks, its end callbacks as SRCU readers, and the use-after-free the
chain walk reports after a callback of a freed subscriber; and what a registration
takes (the files' locks of ``mm_take_all_locks``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from odp_async import _runtime as rt
from odp_async import checkpoint
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.mm import File, Invalidation
from odp_async.sync import Completion, WaitQueue
from odp_async.world import World, run_world
from tests.odp.test_mutation_kills_kept_off import Prefer

P = PAGE_SIZE

Hook = Callable[[Invalidation], Awaitable[None]]


class _Sub:
    """A subscriber logging ``"start <inv>"`` / ``"end <inv>"`` and running the hooks a
    test gives it inside each callback (after the log line)."""

    def __init__(self, on_start: Hook | None = None, on_end: Hook | None = None) -> None:
        self.on_start, self.on_end = on_start, on_end
        self.log: list[str] = []

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.log.append(f"start {inv}")
        if self.on_start is not None:
            await self.on_start(inv)

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.log.append(f"end {inv}")
        if self.on_end is not None:
            await self.on_end(inv)

    async def release(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<sub>"


def test_an_invalidation_cancelled_meanwhile_still_finishes() -> None:
    """A blockable invalidation is shielded, as the reap's is: a cancel arriving while a
    start callback runs takes effect only after the zap and the ends (no subscriber left
    without its end, no range left listed)."""
    scopes: list[Any] = []

    async def cancel(inv: Invalidation) -> None:
        scopes[0].cancel()

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 2 * P)
        await w.mm.cpu_fault(0, write=True)
        sub = _Sub(on_start=cancel)
        await w.mm.register_notifier(sub)
        out: list[object] = []
        with rt.cancel_scope() as scope:
            scopes.append(scope)
            await w.mm.madvise_dontneed(0, 2 * P)
            out.append("returned")
            await checkpoint()
            out.append("not cancelled")
        out += [w.mm.lookup(0) is None, w.mm.active_ranges.snapshot(), sub.log]
        return out

    assert run_world(body).sim.unwrap() == [
        "returned",
        True,
        (),
        ["start inv0 madvise-dontneed [0x0, 0x2000)", "end inv0 madvise-dontneed [0x0, 0x2000)"],
    ]


def test_invalidations_are_numbered_in_the_order_they_begin() -> None:
    """Each invalidation of an mm gets the next number (its key in the checker's events
    and reports, ``inv<N>``)."""

    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 4 * P)
        sub = _Sub()
        await w.mm.register_notifier(sub)
        for page in range(3):
            await w.mm.madvise_dontneed(page * P, P)
        return [line for line in sub.log if line.startswith("start")]

    run = run_world(body)
    assert run.sim.unwrap() == [
        "start inv0 madvise-dontneed [0x0, 0x1000)",
        "start inv1 madvise-dontneed [0x1000, 0x2000)",
        "start inv2 madvise-dontneed [0x2000, 0x3000)",
    ]
    begun = [e for e in run.events if e.kind == "invalidate-begin"]
    assert [e.key for e in begun] == ["inv0", "inv1", "inv2"]


def test_an_mm_listing_ranges_after_the_callbacks_lists_each_once_the_starts_returned() -> None:
    """With ``range_list_after_callbacks`` (the order `range-list`'s ``literal_order``
    models) a start callback still finds its own range valid; the range is listed from
    the return of the last start until before the ends.  Seen from a split nested in the
    zap (its callbacks run inside the outer invalidation's body)."""
    rng = AddrRange(0, P)

    async def body(w: World) -> list[str]:
        w.mm.range_list_after_callbacks = True
        await w.mm.mmap(0, 4 * P, huge=True)
        seen: list[str] = []

        async def start(inv: Invalidation) -> None:
            seen.append(f"start {inv.event.value}: {w.mm.range_is_valid(rng)}")

        async def end(inv: Invalidation) -> None:
            seen.append(f"end {inv.event.value}: {w.mm.range_is_valid(rng)}")

        await w.mm.register_notifier(_Sub(on_start=start, on_end=end))
        await w.mm.madvise_dontneed(0, P)  # cuts the huge page: a split nested in it
        return seen

    assert run_world(body).sim.unwrap() == [
        "start madvise-dontneed: True",  # not listed yet
        "start clear: False",  # the zap's range listed once its starts returned
        "end clear: False",
        "end madvise-dontneed: True",  # unlisted before the ends
    ]


def test_unregister_waits_for_an_end_callback_running_in_its_subscriber() -> None:
    """End callbacks are SRCU readers as starts are: an unregister of the subscriber
    returns only once its running end has returned."""
    order: list[str] = []
    inside = Completion("inside")

    async def end(inv: Invalidation) -> None:
        inside.complete_all()
        for _ in range(50):  # plenty of steps for an unregister that would not wait
            await checkpoint()
        order.append("end returns")

    sub = _Sub(on_end=end)

    async def body(w: World) -> None:
        await w.mm.mmap(0, 2 * P)
        await w.mm.register_notifier(sub)

        async def unregister() -> None:
            await inside.wait()
            await w.mm.unregister_notifier(sub)
            order.append("unregistered")

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, 2 * P, name="madvise")
            tg.start_soon(unregister, name="unregister")

    run = run_world(body, max_steps=20_000)
    run.sim.unwrap()
    assert run.violations == ()
    assert order == ["end returns", "unregistered"]


def test_a_callback_returning_into_a_freed_subscriber_is_a_use_after_free_of_the_walk() -> None:
    """A subscriber unhashed without a wait and freed while its own start runs: the chain
    walk reads its link when the start returns, a use-after-free said so."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, P)
        sub = _Sub()

        async def free_myself(inv: Invalidation) -> None:
            await w.mm.unregister_notifier_no_release(sub)
            w.mm.free_subscriber(sub, "kfree(sub)")

        sub.on_start = free_myself
        await w.mm.register_notifier(sub)
        await w.mm.madvise_dontneed(0, P)

    run = run_world(body)
    run.sim.unwrap()
    assert [(v.kind, v.detail) for v in run.violations] == [
        (
            "use-after-free",
            "the notifier chain walk after its callback touched subscriber <sub>#0 "
            "after it was kfree(sub)",
        )
    ]


def test_a_subscriber_registered_again_while_its_unregister_waits_is_still_called() -> None:
    """U unregisters the subscriber while its start runs in a zap and waits for it; R
    registers it again meanwhile (mmap_sem lets R in once the zap is over, before U, woken
    by the start's return, runs).  U then drops the subscriber's SRCU bookkeeping under
    R's registration: the next invalidation still calls it, its callers counted anew."""
    gate = WaitQueue("gate")
    opened: list[bool] = []
    unregistered = Completion("unregistered")

    async def park(inv: Invalidation) -> None:
        if not opened:
            await gate.park()

    sub = _Sub(on_start=park)

    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 2 * P)
        await w.mm.register_notifier(sub)

        async def unregister() -> None:
            await w.mm.unregister_notifier(sub)
            unregistered.complete()

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="madvise")
            tg.start_soon(unregister, name="U")
            tg.start_soon(w.mm.register_notifier, sub, name="R")
            await checkpoint()  # the start parks, U waits for it, R for mmap_sem
            opened.append(True)
            gate.wake_all()
            await unregistered.wait()
        await w.mm.madvise_dontneed(P, P)
        return sub.log

    def pick(names: list[str]) -> str | None:
        for name in ("madvise", "U", "R") if not opened else ("madvise", "R"):
            if name in names:
                return name
        others = [n for n in names if n != "U"]  # U last once the gate is open
        return others[0] if others else None

    run = run_world(body, chooser=Prefer(pick))
    assert run.sim.unwrap() == [
        "start inv0 madvise-dontneed [0x0, 0x1000)",
        "start inv1 madvise-dontneed [0x1000, 0x2000)",
        "end inv1 madvise-dontneed [0x1000, 0x2000)",
    ]
    assert run.violations == ()
    assert [e.kind for e in run.events if e.kind.startswith("invalidate")] == [
        "invalidate-begin",
        "invalidate-end",
        "invalidate-begin",
        "invalidate-end",
    ]


def test_a_registration_waits_for_the_i_mmap_lock_of_every_mapped_file() -> None:
    """``mm_take_all_locks``: registering takes the i_mmap lock of each file the mm maps
    (two files here, each held in turn by the body): it returns only once that lock is
    let go."""

    async def body(w: World) -> list[str]:
        files = [File("a", 1, w.memory), File("b", 1, w.memory)]
        for i, f in enumerate(files):
            await w.mm.mmap(i * P, P, file=f)
        order: list[str] = []
        for held in files:
            sub = _Sub()
            await held.i_mmap.acquire()

            async def register(sub: _Sub) -> None:
                await w.mm.register_notifier(sub)
                order.append("registered")

            async with rt.task_group() as tg:
                tg.start_soon(register, sub, name="register")
                for _ in range(20):  # plenty of steps for a registration that would not wait
                    await checkpoint()
                order.append(f"{held.name} let go")
                held.i_mmap.release()
            await w.mm.unregister_notifier(sub)
        return order

    assert run_world(body, max_steps=20_000).sim.unwrap() == [
        "a let go",
        "registered",
        "b let go",
        "registered",
    ]
