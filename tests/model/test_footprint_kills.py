"""Footprints the model's steps note (`odp_async.tracked`), pinned where a mutant changed
only what a step notes, never a verdict (tools/mutation-survivors.md): DPOR orders two
steps exactly when their noted footprints conflict, so a lost write loses orders and a
stray read adds conflicts.

- `AddressSpace.register_notifier` inserts the subscriber's (empty) list of running
  callbacks into the mm's in-flight map: a write of the map's key set, which
  `AddressSpace.synchronize_notifiers` reads (it iterates the map), so a registration
  and a synchronize are ordered against each other, for every subscriber registered.
- A fault leaving the protocol's ``fault_wait`` is out of the protocol's wait
  (`_Pending.waiting` False) until its next attempt's ``fault_begin``: the step that
  leaves the wait notes that write of the mark the core reads when it observes a
  protocol (`UContext._held`).
- An invalidation end that finds the fault kept off by a passed-over holder
  (`UContext._kept_off`) asks nothing about the ending invalidation itself, which is
  never in flight at its own end (`UContext._in_flight`): the end notes no read of the
  mm's active range list there.

Each footprint is read from the running step (`current_runtime()._fp`: what the step
has noted so far) in a run whose chooser keeps footprints; a chooser of fixed
preferences decides who runs: no randomness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from odp_async import _runtime as rt
from odp_async._runtime import current_runtime
from odp_async._runtime.footprint import FieldOf, Footprint, ReadOf, independent
from odp_async.addr import PAGE_SIZE as P
from odp_async.addr import AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp import Umem
from odp_async.odp.protocols.base import OdpProtocol
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.world import World, run_world
from tests.odp.test_mutation_kills_kept_off import Prefer as _Prefer

from .test_mutation_kills_mm import _Quiet  # a subscriber whose callbacks do nothing


class Prefer(_Prefer):
    """Keeps footprints; runs the task `pick(names)` names among the runnable ones (the
    first if it names none)."""

    wants_footprints = True  # read by the sim: note each step's accesses

    def __init__(self, pick: Callable[[list[str]], str | None] = lambda names: None) -> None:
        super().__init__(pick)


async def _noted(call: Callable[[], Awaitable[object]]) -> set[object]:
    """What the step in which `call` returns has noted of `call`'s accesses: all it
    noted after `call`'s last checkpoint, or since `call` began if it had none."""
    runtime: Any = current_runtime()
    before_fp = runtime._fp
    assert before_fp is not None, "the chooser keeps no footprints"
    before = set(before_fp)
    await call()
    after_fp = runtime._fp
    return set(after_fp) - before if after_fp is before_fp else set(after_fp)


def _as_step(noted: set[object]) -> Footprint:
    return Footprint(writes=frozenset(noted))  # as the sim records a step's notes


def _owner(resource: object) -> object:
    if type(resource) is ReadOf:
        resource = resource.read_of
    return resource.owner if type(resource) is FieldOf else None


# --- register_notifier and synchronize_notifiers ---------------------------------------


def test_every_registration_conflicts_with_a_synchronize_of_the_notifiers() -> None:
    """Two subscribers registered one after the other: the step that registers the
    second (as the first) inserts its list of running callbacks, a write of the
    in-flight map's key set, which a synchronize reads: the two steps are not
    independent, so DPOR orders a registration against a concurrent synchronize."""
    seen: dict[str, Any] = {}

    async def body(w: World) -> None:
        first, second = _Quiet(), _Quiet()
        seen["first"] = _as_step(await _noted(lambda: w.mm.register_notifier(first)))
        await rt.checkpoint("registered one")
        seen["second"] = _as_step(await _noted(lambda: w.mm.register_notifier(second)))
        await rt.checkpoint("registered two")
        seen["synchronize"] = _as_step(await _noted(w.mm.synchronize_notifiers))
        seen["registered"] = (w.mm.is_registered(first), w.mm.is_registered(second))

    run = run_world(body, chooser=Prefer())
    run.sim.unwrap()
    assert seen["registered"] == (True, True)
    assert not independent(seen["first"], seen["synchronize"])
    assert not independent(seen["second"], seen["synchronize"])


# --- the fault's waiting mark ----------------------------------------------------------


class _ObservedKvm(KvmSeq):
    """kvm-seq keeping the base's `holds_back` (the core observes its waits instead of
    asking), recording what the running step has noted when each attempt's
    ``fault_begin`` begins."""

    name = "kvm-seq-observed-noting"
    holds_back = OdpProtocol.holds_back

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.at_begin: list[set[object]] = []

    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        runtime: Any = current_runtime()
        self.at_begin.append(set(runtime._fp))
        return await super().fault_begin(umem, rng)


def test_leaving_the_protocol_s_wait_notes_a_write_of_the_fault_s_waiting_mark() -> None:
    """kvm-seq refuses the fault's commit while X runs and parks it in ``fault_wait``;
    X's end wakes it.  The step that leaves the wait and begins the next attempt took
    the fault out of the wait (`waiting` False) and into the next one: it notes a
    write of the mark, not a read, so an invalidation end's look at the mark is
    ordered against it."""

    async def body(w: World) -> tuple[object, ...]:
        p = w.protocol
        assert isinstance(p, _ObservedKvm)
        assert w.ctx.observes
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        x = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await p.before_start(x)
        out: list[object] = []

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            await rt.checkpoint("let F park in fault_wait")
            pending = w.ctx._pending[0]
            parked = (len(p.at_begin), pending.waiting, rt.task_blocked(pending.task))
            await p.after_end(x)
        return pending, parked, out, p.at_begin

    run = run_world(body, protocol=_ObservedKvm, chooser=Prefer(lambda names: "F"))
    run.sim.unwrap()
    assert run.violations == ()
    value: Any = run.sim.value
    pending, parked, out, at_begin = value
    assert parked == (1, True, True)  # one attempt begun, parked inside fault_wait
    assert out == [FaultOutcome.RESOLVED]
    assert len(at_begin) == 2
    assert FieldOf(pending, "waiting") in at_begin[1]


# --- an end kept off asks nothing about itself ---------------------------------------------


def test_an_end_kept_off_by_a_passed_over_holder_reads_nothing_of_the_mm_s_ranges() -> None:
    """kvm-seq: X (begun by the main task) and then H (its own task, never run again
    once H is in flight) are in flight on this context when E, a madvise, ends: the
    fault, parked in ``fault_wait``, is charged, with holders X and H.  Then X ends.
    The fault is still held (H runs), and H, still in flight, was passed over since that
    charge: the end is kept off, charges nothing, and asks nothing about X itself (an
    invalidation is never in flight at its own end): it notes no access of the mm's
    active range list (it took no snapshot of it either)."""
    gate = {"h_in_flight": False, "let_h_go": False}
    made: list[Invalidation] = []

    def pick(names: list[str]) -> str | None:
        if "F" in names:
            return "F"
        if "H" in names and (gate["let_h_go"] or not gate["h_in_flight"]):
            return "H"
        others = [n for n in names if n != "H"]
        return others[0] if others else None

    async def body(w: World) -> tuple[object, ...]:
        ctx = w.ctx
        await w.mm.mmap(0, 8 * P)
        a = await ctx.register_mr(0, 8 * P, name="A")
        x = Invalidation(
            100, AddrRange.of(6 * P, P), InvalidateEvent.UNMAP, task=rt.current_task()
        )
        made.append(x)
        await ctx.subscription.invalidate_range_start(x)
        out: list[object] = []

        async def fault() -> None:
            out.append(await ctx.fault(a, 0, write=True))

        async def hold() -> None:
            h = Invalidation(
                101, AddrRange.of(7 * P, P), InvalidateEvent.UNMAP, task=rt.current_task()
            )
            made.append(h)
            await ctx.subscription.invalidate_range_start(h)
            gate["h_in_flight"] = True
            await rt.checkpoint("H in flight")
            await ctx.subscription.invalidate_range_end(h)

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            tg.start_soon(hold, name="H")
            await rt.checkpoint("let F park and H start")
            await w.mm.madvise_dontneed(4 * P, P)  # E: charges the fault, holders X, H
            pending = ctx._pending[0]
            at_e = (pending.provisional, [h for h, _ in pending.holders])
            noted = await _noted(lambda: ctx.subscription.invalidate_range_end(x))
            at_x = (pending.provisional, pending.charged, ctx.invalidations_ended)
            gate["let_h_go"] = True
        return at_e, at_x, noted, out, ctx, w.mm.active_ranges

    run = run_world(body, protocol="kvm-seq", chooser=Prefer(pick))
    run.sim.unwrap()
    assert run.violations == ()
    value: Any = run.sim.value
    at_e, at_x, noted, out, ctx, mm_ranges = value
    x, h = made
    assert at_e == (1, [x, h])  # charged once, by E, with holders X and H
    assert at_x == (1, 0, 2)  # X's end charged nothing
    assert out == [FaultOutcome.RESOLVED]
    assert FieldOf(ctx, "invalidations_ended") in noted  # the step that ran X's end
    assert [r for r in noted if _owner(r) is mm_ranges] == []
