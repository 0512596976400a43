"""Which invalidation ends charge a pending fault (`UContext.invalidation_ended`,
`UContext._kept_off`; see "Liveness" in `odp_async.odp.ucontext`): the holders clause (an
invalidation in flight at the last charge whose task the scheduler then passed over) and
the faulting task's mark after a charge, found unpinned by mutation testing
(tools/mutation.sh).

The protocol holds every fault back until the body opens it; its fault parks on a wait
queue until woken.  A chooser of fixed preferences decides who runs: no randomness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.errors import WouldBlock
from odp_async.mm import Invalidation
from odp_async.odp import Umem
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.sync import WaitQueue
from odp_async.world import World, run_world

P = PAGE_SIZE
#: The range the task H invalidates, stopping at a checkpoint inside its start callback.
H_AT = 6 * P


class HeldUntilOpen(KvmSeq):
    """kvm-seq holding every fault back until `opened`; its fault parks on `gate` (spins
    once open); an invalidation of `H_AT` stops at a checkpoint in its start callback."""

    name = "kvm-seq-held-on-a-gate"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.opened = False
        self.gate = WaitQueue("gate")
        self.h_in_flight = False

    def holds_back(self, umem: Umem, rng: AddrRange) -> bool:
        return not self.opened

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        return not self.opened or super().must_retry(umem, rng, token)

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        if self.opened:
            await rt.checkpoint("spin")
        else:
            await self.gate.park()

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        await super().invalidate_range_start(inv)
        if inv.range.start == H_AT:
            self.h_in_flight = True
            await rt.checkpoint("H in flight")

    async def invalidate_range_start_nonblock(self, inv: Invalidation) -> None:
        """Accepts doing nothing (the fault is held back anyway): no account to close."""

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        if inv.blockable:
            await super().invalidate_range_end(inv)


class Prefer:
    """Runs the task `pick(names)` names among the runnable ones (the first if None)."""

    def __init__(self, pick: Callable[[list[str]], str | None]) -> None:
        self.pick = pick

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        names = [t.name for t in runnable]
        want = self.pick(names)
        return names.index(want) if want in names else 0

    def draw(self, n: int, label: object) -> int:
        return 0


def _run(
    pick: Callable[[HeldUntilOpen, list[str]], str | None],
    between: Callable[[World, HeldUntilOpen, int], Any] | None = None,
    with_h: bool = True,
    reap: bool = False,
) -> list[object]:
    out: list[object] = []
    worlds: list[World] = []

    async def body(w: World) -> None:
        worlds.append(w)
        p = w.protocol
        assert isinstance(p, HeldUntilOpen)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async def hold() -> None:
            if reap:
                out.append(await w.mm.reap(H_AT, P))
            else:
                await w.mm.madvise_dontneed(H_AT, P)

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            if with_h:
                tg.start_soon(hold, name="H")
            for i in range(3):
                await w.mm.madvise_dontneed(4 * P, P)
                if between is not None:
                    await between(w, p, i)
            # counted and provisional charges alike (a charge is provisional until its
            # window turns over: see "Liveness" in odp/ucontext.py)
            out.append([q.charged + q.provisional for q in w.ctx._pending])
            p.opened = True
            p.gate.wake_all()

    def choose(names: list[str]) -> str | None:
        p = worlds[0].protocol if worlds else None
        if not isinstance(p, HeldUntilOpen):
            return None
        return pick(p, names)

    run = run_world(body, protocol=HeldUntilOpen, chooser=Prefer(choose))
    run.sim.unwrap()
    assert run.violations == ()
    return out


def _f_then_h_then_others(p: HeldUntilOpen, names: list[str]) -> str | None:
    """F until it parks; H until its invalidation is in flight; then anyone but H."""
    if p.opened:
        return None
    if "F" in names:
        return "F"
    if not p.h_in_flight:
        return "H"
    others = [n for n in names if n != "H"]
    return others[0] if others else None


def test_an_end_while_a_passed_over_holder_stays_in_flight_charges_nothing() -> None:
    """The fault stays parked (the protocol holds it), charged once at the first end; H,
    in flight then, stays in flight and runnable, never chosen: the next two ends are the
    scheduler's, not the protocol's."""
    assert _run(_f_then_h_then_others) == [[1], FaultOutcome.RESOLVED]


def test_a_holder_that_ran_to_its_end_keeps_nobody_off() -> None:
    """H, in flight at the first charge, is let run to its end before the next ends:
    H's own end and each of them charge the fault (four in all)."""

    def pick(p: HeldUntilOpen, names: list[str]) -> str | None:
        if p.opened:
            return None
        if "F" in names:
            return "F"
        if not p.h_in_flight or p.ctx.invalidations_ended >= 1:
            return "H" if "H" in names else None
        others = [n for n in names if n != "H"]
        return others[0] if others else None

    assert _run(pick) == [[4], FaultOutcome.RESOLVED]


def test_a_fault_woken_after_its_charge_then_passed_over_is_not_charged_again() -> None:
    """No holder: the fault is charged at the first end (parked), then woken and never
    chosen: the later ends find it passed over since that charge (its mark moved there)."""

    def pick(p: HeldUntilOpen, names: list[str]) -> str | None:
        if p.opened:
            return None
        if "F" in names and p.ctx.invalidations_ended == 0:
            return "F"
        others = [n for n in names if n != "F"]
        return others[0] if others else None

    async def wake(w: World, p: HeldUntilOpen, i: int) -> None:
        if i == 0:
            p.gate.wake_all()
        await rt.checkpoint("after a wake")

    assert _run(pick, wake, with_h=False) == [[1], FaultOutcome.RESOLVED]


def test_a_passed_over_non_blockable_holder_keeps_the_fault_from_being_charged() -> None:
    """As the first test, H being the OOM reaper's non-blockable invalidation (its task
    is known as a blockable one's is), stopped at the checkpoint after its starts."""

    def pick(p: HeldUntilOpen, names: list[str]) -> str | None:
        if p.opened:
            return None
        if "F" in names:
            return "F"
        listed = p.ctx.mm.active_ranges.snapshot()
        if not any(not inv.blockable for inv in listed):
            return "H" if "H" in names else None
        others = [n for n in names if n != "H"]
        return others[0] if others else None

    assert _run(pick, reap=True) == [[1], True, FaultOutcome.RESOLVED]


class _Accepts:
    """A second subscriber: accepts every start; its end stops at a checkpoint."""

    def __init__(self) -> None:
        self.ending = False

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        pass

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        if not inv.blockable:
            self.ending = True
            await rt.checkpoint("second subscriber's end")

    async def release(self) -> None:
        pass


class _Refuses(_Accepts):
    """A third subscriber: refuses every non-blockable start."""

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if not inv.blockable:
            raise WouldBlock("refused")


def test_a_refused_non_blockable_invalidation_is_no_holder_of_its_own_end() -> None:
    """The OOM reaper's invalidation H is refused by a third subscriber; under
    ``nonblock_failure_rule = "today"`` this context and a second subscriber get its end
    while the mm still lists it.  H's end here charges the fault without counting H among
    the holders: H, then passed over in the second subscriber's end, keeps nobody off at
    the next end (E1's), which charges; from then on H, still listed, is a holder."""
    out: dict[str, object] = {}
    worlds: list[World] = []
    second = _Accepts()

    async def body(w: World) -> None:
        worlds.append(w)
        p = w.protocol
        assert isinstance(p, HeldUntilOpen)
        w.mm.nonblock_failure_rule = "today"
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.mm.register_notifier(second)
        await w.mm.register_notifier(_Refuses())

        async def fault() -> None:
            out["fault"] = await w.ctx.fault(a, 0, write=True)

        async def hold() -> None:
            out["reap"] = await w.mm.reap(H_AT, P)

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            tg.start_soon(hold, name="H")
            for _ in range(2):
                await w.mm.madvise_dontneed(4 * P, P)
            out["charged"] = [q.charged for q in w.ctx._pending]
            p.opened = True
            p.gate.wake_all()

    def choose(names: list[str]) -> str | None:
        p = worlds[0].protocol if worlds else None
        if not isinstance(p, HeldUntilOpen) or p.opened:
            return None
        if "F" in names:
            return "F"
        if not second.ending:
            return "H" if "H" in names else None
        others = [n for n in names if n != "H"]
        return others[0] if others else None

    run = run_world(body, protocol=HeldUntilOpen, chooser=Prefer(choose))
    run.sim.unwrap()
    assert run.violations == ()
    assert out == {"charged": [2], "reap": False, "fault": FaultOutcome.RESOLVED}


class HeldWithAParkedHolder(HeldUntilOpen):
    """As `HeldUntilOpen`, but the invalidation of `H_AT` parks on `h_gate` in its start
    callback (in flight and parked: the scheduler cannot pass it over)."""

    name = "kvm-seq-held-with-a-parked-holder"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.h_gate = WaitQueue("h-gate")

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        await KvmSeq.invalidate_range_start(self, inv)
        if inv.range.start == H_AT:
            self.h_in_flight = True
            await self.h_gate.park()


def _charges(w: World) -> list[tuple[int, int, bool]]:
    """Each pending fault's counted and provisional charges, and whether its window is
    closed (None: none open)."""
    return [(q.charged, q.provisional, q.window is None) for q in w.ctx._pending]


def _with_a_parked_holder(
    then: Callable[[World, HeldWithAParkedHolder, list[object], list[bool]], Any],
) -> list[object]:
    """F faults and parks (held); one end charges it (no holder); H's invalidation then
    parks in flight (the next end turns the empty window over: a second charge, the
    window now H); `then` runs next (it may set `released` to let H run, or open the
    protocol).  F runs first while held, H until it is in flight or once released, and
    once the protocol is open the others before F (which spins while H is in flight)."""
    seen: list[object] = []
    worlds: list[World] = []
    released: list[bool] = []

    async def body(w: World) -> None:
        worlds.append(w)
        p = w.protocol
        assert isinstance(p, HeldWithAParkedHolder)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")

        async def fault() -> None:
            seen.append(await w.ctx.fault(a, 0, write=True))

        async def hold() -> None:
            await w.mm.madvise_dontneed(H_AT, P)
            seen.append(_charges(w))  # right after H's own end

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            await rt.checkpoint("F parks")
            await w.mm.madvise_dontneed(4 * P, P)
            seen.append(_charges(w))
            tg.start_soon(hold, name="H")
            await rt.checkpoint("H parks in flight")
            assert p.h_in_flight
            await then(w, p, seen, released)
            p.opened = True
            p.gate.wake_all()
            p.h_gate.wake_all()

    def pick(names: list[str]) -> str | None:
        p = worlds[0].protocol if worlds else None
        if not isinstance(p, HeldWithAParkedHolder):
            return None
        if p.opened:
            others = [n for n in names if n != "F"]
            return others[0] if others else None
        if "F" in names:
            return "F"
        if "H" in names and (not p.h_in_flight or released):
            return "H"
        return None

    run = run_world(body, protocol=HeldWithAParkedHolder, chooser=Prefer(pick))
    run.sim.unwrap()
    assert run.violations == ()
    return seen


def test_a_wait_let_go_before_its_window_turned_over_is_charged_once_more() -> None:
    """After the two charges, two ends while H stays in flight are provisional.  Then the
    protocol lets the fault go: the next end charges the provisional count, at most one,
    on top of the two (three in all, none left provisional, the window closed)."""

    async def let_go(w: World, p: HeldWithAParkedHolder, seen: list[object], _: object) -> None:
        for _ in range(3):
            await w.mm.madvise_dontneed(4 * P, P)
        seen.append(_charges(w))
        p.opened = True
        await w.mm.madvise_dontneed(4 * P, P)
        seen.append(_charges(w))

    seen = _with_a_parked_holder(let_go)
    assert seen[:3] == [[(1, 0, False)], [(2, 2, False)], [(3, 0, True)]]
    assert FaultOutcome.RESOLVED in seen


def test_a_window_turned_over_at_its_holders_own_end_charges_at_most_its_width_plus_one() -> None:
    """After the two charges, three ends while H stays in flight are provisional.  H is
    let run to its end: at its own end it is no longer in flight, so the window turns
    over there, charging the four provisional ones at most the window's width + 1 (two:
    four counted in all)."""

    async def run_h_out(
        w: World, p: HeldWithAParkedHolder, seen: list[object], released: list[bool]
    ) -> None:
        for _ in range(4):
            await w.mm.madvise_dontneed(4 * P, P)
        seen.append(_charges(w))
        released.append(True)
        p.h_gate.wake_all()
        while len(seen) < 3:
            await rt.checkpoint("H runs to its end")

    seen = _with_a_parked_holder(run_h_out)
    assert seen == [[(1, 0, False)], [(2, 3, False)], [(4, 0, False)], FaultOutcome.RESOLVED]


def test_every_pending_fault_is_charged_at_an_end_not_only_the_first() -> None:
    """Two faults, F and G, parked (held); H parks in flight.  Each end charges both: the
    first opens each one's window on H, the second finds H in flight in each window
    (both provisional twice).  An end goes on to the next pending fault after one whose
    window it opened or kept open."""
    seen: list[object] = []
    worlds: list[World] = []

    async def body(w: World) -> None:
        worlds.append(w)
        p = w.protocol
        assert isinstance(p, HeldWithAParkedHolder)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")

        async def fault(page: int) -> None:
            seen.append(await w.ctx.fault(a, page * P, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, 0, name="F")
            tg.start_soon(fault, 1, name="G")
            tg.start_soon(w.mm.madvise_dontneed, H_AT, P, name="H")
            await rt.checkpoint("F and G park, H parks in flight")
            assert p.h_in_flight
            for _ in range(2):
                await w.mm.madvise_dontneed(4 * P, P)
                seen.append(_charges(w))
            p.opened = True
            p.gate.wake_all()
            p.h_gate.wake_all()

    def pick(names: list[str]) -> str | None:
        p = worlds[0].protocol if worlds else None
        if not isinstance(p, HeldWithAParkedHolder):
            return None
        if p.opened:  # H first (F and G spin while it is in flight)
            others = [n for n in names if n not in ("F", "G")]
            return others[0] if others else None
        for name in ("F", "G", "H"):
            if name in names:
                return name
        return None

    run = run_world(body, protocol=HeldWithAParkedHolder, chooser=Prefer(pick))
    run.sim.unwrap()
    assert run.violations == ()
    assert seen[:2] == [[(0, 1, False)] * 2, [(0, 2, False)] * 2]
    assert seen[2:] == [FaultOutcome.RESOLVED] * 2


class HeldWithAFlaggedReap(HeldUntilOpen):
    """As `HeldUntilOpen`, its non-blockable start (the reap's) setting `h_in_flight`."""

    name = "kvm-seq-held-with-a-flagged-reap"

    async def invalidate_range_start_nonblock(self, inv: Invalidation) -> None:
        self.h_in_flight = True


def test_a_refused_reap_in_the_window_turns_it_over_at_its_own_end() -> None:
    """The OOM reaper's H starts here, then stops before a later subscriber refuses it;
    meanwhile E1's end opens the fault's window on H (in flight).  H's end under the
    "today" rule reaches this context while the mm still lists H: at its own end H is no
    holder, so the window turns over there and both provisional charges count."""
    out: dict[str, object] = {}
    worlds: list[World] = []

    async def body(w: World) -> None:
        worlds.append(w)
        p = w.protocol
        assert isinstance(p, HeldWithAFlaggedReap)
        w.mm.nonblock_failure_rule = "today"
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.mm.register_notifier(_Refuses())

        async def fault() -> None:
            out["fault"] = await w.ctx.fault(a, 0, write=True)

        async def hold() -> None:
            out["reap"] = await w.mm.reap(H_AT, P)

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            tg.start_soon(hold, name="H")
            await rt.checkpoint("F parks, H stops between two starts")
            assert p.h_in_flight
            await w.mm.madvise_dontneed(4 * P, P)
            out["after E1"] = _charges(w)
            while "reap" not in out:
                await rt.checkpoint("H is refused and ends")
            out["after H"] = _charges(w)
            p.opened = True
            p.gate.wake_all()

    def pick(names: list[str]) -> str | None:
        p = worlds[0].protocol if worlds else None
        if not isinstance(p, HeldWithAFlaggedReap) or p.opened:
            return None
        if "F" in names:
            return "F"
        if p.h_in_flight and "after E1" not in out:
            others = [n for n in names if n != "H"]
            return others[0] if others else None
        return "H" if "H" in names else None

    run = run_world(body, protocol=HeldWithAFlaggedReap, chooser=Prefer(pick))
    run.sim.unwrap()
    assert run.violations == ()
    assert out == {
        "after E1": [(0, 1, False)],
        "after H": [(2, 0, False)],
        "reap": False,
        "fault": FaultOutcome.RESOLVED,
    }
