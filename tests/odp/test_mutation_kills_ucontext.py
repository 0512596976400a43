"""The ODP core's contract in detail (found lacking by mutation testing:
tools/mutation.sh): exact refusals of bad arguments, how unnamed regions are named, what
registration records, what a failed insert leaves behind, and the device's fault handler
on a table with no region or a write to a read-only one."""

from __future__ import annotations

import weakref

import pytest

from odp_async import _runtime as rt
from odp_async._runtime.choosers import ScriptChooser
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome, FaultRequest
from odp_async.errors import InvalidArgument
from odp_async.mm import InvalidateEvent, Invalidation, PinnedPage
from odp_async.odp import Umem
from odp_async.odp.protocols.base import OdpProtocol
from odp_async.odp.protocols.hmm_pool import HmmPool
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.odp.umem import UmemState
from odp_async.sync import Completion
from odp_async.world import World, run_world

P = PAGE_SIZE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_fault_retries": 0}, "max_fault_retries must be a positive int, got 0"),
        ({"starvation_bound": "3"}, "starvation_bound must be a positive int, got '3'"),
        ({"starvation_bound": 1.5}, "starvation_bound must be a positive int, got 1.5"),
    ],
)
def test_bounds_are_refused_with_their_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        World.build("odp2014", **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_the_smallest_bounds_are_accepted() -> None:
    w = World.build("odp2014", max_fault_retries=1, starvation_bound=1)
    assert (w.ctx.max_fault_retries, w.ctx.starvation_bound) == (1, 1)


def test_bad_faults_and_registrations_are_refused_with_one_line() -> None:
    errors: list[str] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        r = await w.ctx.register_mr(0, 4 * P, writable=False, name="R")
        for call in (
            lambda: w.ctx.fault(r, 0, npages=0),
            lambda: w.ctx.fault(r, 0, npages=1.0),  # type: ignore[arg-type]
            lambda: w.ctx.fault(r, 0, write=True),
            lambda: w.ctx.fault(r, 3 * P, npages=2),
            lambda: w.ctx.register_mr(2 * P, 4 * P, name="X"),
        ):
            try:
                await call()
            except InvalidArgument as e:
                errors.append(str(e))

    run_world(body).sim.unwrap()
    assert errors == [
        "npages must be a positive int, got 0",
        "npages must be a positive int, got 1.0",
        "write fault on the read-only MR R",
        "fault at [0x3000, 0x5000) is outside R [0x0, 0x4000)",
        "MR [0x2000, 0x6000) is not inside a mapping: 0x4000",
    ]


def test_unnamed_regions_are_numbered_by_registration() -> None:
    names: list[str] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        names.append((await w.ctx.register_mr(0, P)).name)
        names.append((await w.ctx.register_mr(P, P)).name)
        names.append((await w.ctx.register_mr(2 * P, P, name="B")).name)
        try:
            await w.ctx.register_mr(3 * P, P, name="B")
        except InvalidArgument as e:
            names.append(str(e))
        names.append((await w.ctx.register_mr(3 * P, P)).name)

    run_world(body).sim.unwrap()
    assert names == ["mr0", "mr1", "B", "an MR named 'B' is already registered", "mr3"]


def test_registration_records_its_span() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(4 * P, 2 * P, name="B")

    run = run_world(body)
    run.sim.unwrap()
    marks = [(e.kind, e.key, e.detail, e.address) for e in run.events if "register" in e.kind]
    assert marks == [
        ("register-begin", "B", "register B [0x4000, 0x6000)", 4 * P),
        ("register-end", "B", "B registered", 4 * P),
    ]


class _InsertFailsOnce(Odp2014):
    """A protocol whose first insert fails (after the tree insert it would have done)."""

    name = "odp2014-insert-fails-once"
    failed = False

    async def insert(self, umem: Umem) -> None:
        if not type(self).failed:
            type(self).failed = True
            raise RuntimeError("insert failed")
        await super().insert(umem)


def test_a_failed_insert_frees_the_name_and_the_table() -> None:
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        try:
            await w.ctx.register_mr(0, 8 * P, name="B")
        except RuntimeError as e:
            seen.append(str(e))
        seen.append((sorted(w.ctx.umems), sorted(w.device.tables)))
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        seen.append((sorted(w.ctx.umems), sorted(w.device.tables), b.state.value))

    _InsertFailsOnce.failed = False
    run_world(body, protocol=_InsertFailsOnce).sim.unwrap()
    assert seen == ["insert failed", ([], []), (["B"], ["B"], "registered")]


def test_the_device_fault_handler_fails_requests_it_cannot_serve() -> None:
    outcomes: list[FaultOutcome] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        r = await w.ctx.register_mr(0, 4 * P, writable=False, name="R")
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        ghost = w.device.create_table("ghost", AddrRange(0, 4 * P))
        for table, address, write in (
            (ghost, 0, False),  # no region owns this table
            (r.table, 0, True),  # a write to a read-only region
            (r.table, P, False),
            (b.table, 5 * P, True),
        ):
            outcomes.append(await w.ctx.handle_device_fault(FaultRequest(table, address, write)))
        outcomes.append(len(b.table))
        await w.ctx.handle_device_fault(FaultRequest(b.table, 6 * P, False))
        writable = [b.table.get(vpn) for vpn in (5, 6)]
        outcomes.append([t.writable if t else None for t in writable])

    run_world(body).sim.unwrap()
    assert outcomes == [
        FaultOutcome.FAILED,
        FaultOutcome.FAILED,
        FaultOutcome.RESOLVED,
        FaultOutcome.RESOLVED,
        1,
        [True, False],  # the write fault installed a writable translation, the read not
    ]


def test_a_regions_repr_and_liveness_follow_its_lifecycle() -> None:
    seen: list[tuple[str, bool]] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        seen.append((repr(b), b.is_live))
        await w.mm.madvise_dontneed(0, P)
        assert b.fault_enter()

        async def watch() -> None:
            while b.state is UmemState.REGISTERED:
                await rt.checkpoint()
            seen.append((repr(b), b.is_live))  # the deregistration drains this fault
            b.fault_exit()

        async with rt.task_group() as tg:
            tg.start_soon(w.ctx.deregister_mr, b, name="deregister")
            tg.start_soon(watch, name="watch")
        seen.append((repr(b), b.is_live))

    for seed in range(3):
        seen.clear()
        run_world(body, seed=seed).sim.unwrap()
        assert seen == [
            ("<Umem B [0x0, 0x8000) registered count=0 seq=0>", True),
            ("<Umem B [0x0, 0x8000) deregistering count=0 seq=1>", False),
            ("<Umem B [0x0, 0x8000) deregistered count=0 seq=1>", False),
        ]


def test_a_region_is_live_while_it_registers() -> None:
    seen: list[bool] = []

    class Watching(Odp2014):
        name = "odp2014-watching"

        async def insert(self, umem: Umem) -> None:
            seen.append(umem.is_live)
            await super().insert(umem)

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="B")

    run_world(body, protocol=Watching).sim.unwrap()
    assert seen == [True]


@pytest.mark.parametrize("ends", [2, 3])
def test_a_fault_starves_past_the_bound_of_invalidations_that_held_it_back(ends: int) -> None:
    """kvm-seq keeps F waiting while X runs; each other invalidation that ends meanwhile
    is charged to F.  At the bound (2) F still resolves; past it, it starves."""
    out: list[object] = []

    async def body(w: World) -> None:
        p = w.protocol
        assert isinstance(p, KvmSeq)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        x = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await p.before_start(x)

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if len(p._idle):
                    break
                await rt.checkpoint()
            for _ in range(ends):
                await w.mm.madvise_dontneed(4 * P, P)
            out.append((w.ctx.invalidations_ended, [q.charged for q in w.ctx._pending]))
            await p.after_end(x)
        out.append(w.ctx._pending)

    run = run_world(body, protocol="kvm-seq", starvation_bound=2)
    run.sim.unwrap()
    faults = [e.detail for e in run.events if e.kind.startswith("fault")]
    if ends == 2:
        assert out == [(2, [2]), FaultOutcome.RESOLVED, []]
        assert run.violations == ()
        assert faults[-1] == "fault A 0x0 resolved"
    else:
        assert out == [(3, [3]), FaultOutcome.STARVED, []]
        assert [v.detail for v in run.violations] == [
            "a fault on A [0x0, 0x1000) was held back by the protocol across 3 invalidations"
        ]
        assert faults == [
            "fault A 0x0 attempt 1",
            "fault A 0x0 must retry",
            "fault A 0x0 attempt 2",
        ]


def test_ends_charge_a_parked_fault_while_no_holder_is_passed_over() -> None:
    """kvm-seq keeps F waiting (an invalidation begun on the protocol alone, which nothing
    lists).  Z is listed in the mm only (its start callbacks not run: the mm lists a
    range first), X begun on this context only, both by the one task that runs.  F's task
    stays parked and no holder's task is passed over, so every end charges F: the two
    other ends while Z and X are in flight, then X's own end after Z is unlisted with no
    callback here (as when an earlier subscriber refuses a non-blockable start).  The
    first two charges are provisional (Z and X, the window of the first, still in
    flight); X's end turns the window over with F still held: all three confirmed."""
    out: list[object] = []

    async def body(w: World) -> None:
        p = w.protocol
        assert isinstance(p, KvmSeq)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await p.before_start(Invalidation(999, AddrRange(0, P), InvalidateEvent.UNMAP))
        z = Invalidation(1000, AddrRange(6 * P, 7 * P), InvalidateEvent.UNMAP)
        x = Invalidation(1001, AddrRange(7 * P, 8 * P), InvalidateEvent.UNMAP)

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if len(p._idle):
                    break
                await rt.checkpoint()
            w.mm.active_ranges.append(z)
            await w.ctx.subscription.invalidate_range_start(x)
            charged = []
            for _ in range(2):
                await w.mm.madvise_dontneed(4 * P, P)
                charged.append((w.ctx._pending[0].charged, w.ctx._pending[0].provisional))
            w.mm.active_ranges.remove(z)
            await w.ctx.subscription.invalidate_range_end(x)
            charged.append((w.ctx._pending[0].charged, w.ctx._pending[0].provisional))
            out.append(charged)
            await p.after_end(Invalidation(999, AddrRange(0, P), InvalidateEvent.UNMAP))

    run = run_world(body, protocol="kvm-seq")
    run.sim.unwrap()
    assert out == [[(0, 1), (0, 2), (3, 0)], FaultOutcome.RESOLVED]
    assert run.violations == ()


def test_a_fault_starves_after_its_last_refused_attempt() -> None:
    out: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        inv = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await w.protocol.start_account(a, inv)  # never ends: every commit is refused
        out.append(await w.ctx.fault(a, 0, write=True))

    run = run_world(body, protocol="odp2014", max_fault_retries=2)
    run.sim.unwrap()
    assert out == [FaultOutcome.STARVED]
    assert [v.detail for v in run.violations] == ["a fault on A [0x0, 0x1000) retried 2 times"]
    assert [e.detail for e in run.events if e.kind.startswith("fault")] == [
        "fault A 0x0 attempt 1",
        "fault A 0x0 must retry",
        "fault A 0x0 attempt 2",
        "fault A 0x0 must retry",
    ]


def test_hmm_pool_charges_a_waiting_fault_the_ends_while_its_range_is_busy() -> None:
    """The charge asks the protocol about the fault's own range: under hmm-pool only an
    active invalidation overlapping it holds it back."""
    out: list[object] = []

    async def body(w: World) -> None:
        p = w.protocol
        assert isinstance(p, HmmPool)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        x = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await p.before_start(x)

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if len(p._changed):
                    break
                await rt.checkpoint()
            for _ in range(2):
                await w.mm.madvise_dontneed(4 * P, P)
            out.append([(q.rng, q.charged) for q in w.ctx._pending])
            await p.after_end(x)

    run = run_world(body, protocol="hmm-pool", options={"pool_size": 2}, starvation_bound=2)
    run.sim.unwrap()
    assert run.violations == ()
    assert out == [[(AddrRange(0, P), 2)], FaultOutcome.RESOLVED]


def test_a_fault_is_a_labelled_choice_point() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.ctx.fault(a, 3 * P)

    run = run_world(body, trace=True)
    run.sim.unwrap()
    labels = [step[3] for step in run.sim.trace]
    assert ("fault", "A", 3 * P) in labels


def test_a_device_fault_is_one_read_page_unless_told_otherwise() -> None:
    """`UContext.device_fault` faults one page for reading by default (so on a
    read-only region it is no write fault), and `npages` pages when told."""

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 8 * P)
        for page in range(8):
            await w.mm.cpu_fault(page * P, write=True)
        ro = await w.ctx.register_mr(0, 4 * P, writable=False, name="RO")
        rw = await w.ctx.register_mr(4 * P, 4 * P, name="RW")
        out: list[object] = [(await w.ctx.device_fault(ro, P)).value, sorted(ro.table.entries)]
        out += [(await w.ctx.device_fault(rw, 4 * P)).value, sorted(rw.table.entries)]
        entry = rw.table.get(4)
        assert entry is not None
        out.append(entry.writable)
        out += [(await w.ctx.device_fault(rw, 5 * P, npages=3)).value, sorted(rw.table.entries)]
        return out

    run = run_world(body)
    assert run.violations == ()
    assert run.sim.unwrap() == [
        "resolved",
        [1],
        "resolved",
        [4],
        False,
        "resolved",
        [4, 5, 6, 7],
    ]


@pytest.mark.parametrize("phase", ["register", "deregister"])
def test_a_device_fault_on_a_key_not_live_is_dropped_before_its_arguments_are_read(
    phase: str,
) -> None:
    """While a region registers or deregisters, its key is not live: a device fault on
    it is dropped (``failed``) before anything else, so even a write to the read-only
    region or a range past its end, which a live region's fault refuses, is dropped."""

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 4 * P)
        out: list[object] = []

        async def register() -> None:
            await w.ctx.register_mr(0, 4 * P, writable=False, name="R")

        if phase == "deregister":
            await register()
        async with rt.task_group() as tg:
            if phase == "register":
                tg.start_soon(register, name="other")
            else:
                tg.start_soon(w.ctx.deregister_mr, w.ctx.umems["R"], name="other")
            await rt.checkpoint("spawned")
            umem = w.ctx.umems["R"]
            out.append(umem.state.value)
            for address, npages, write in ((0, 1, True), (3 * P, 2, False), (0, 1, False)):
                try:
                    outcome = await w.ctx.device_fault(umem, address, npages=npages, write=write)
                except InvalidArgument as e:
                    out.append(str(e))
                else:
                    out.append(outcome.value)
        return out

    until = "insert" if phase == "register" else "remove"
    chooser = ScriptChooser([("other", until), ("main", None)])
    run = run_world(body, chooser=chooser)
    assert chooser.is_done
    assert run.violations == ()
    assert run.sim.unwrap() == [f"{phase}ing", "failed", "failed", "failed"]


class _FreedWhileWaiting(Odp2014):
    """A broken deregistration that does not drain the region's faults: the region is
    freed (as `UContext.deregister_mr`'s last step does) while a refused fault waits."""

    name = "odp2014-freed-while-waiting"

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        umem.state = UmemState.DEREGISTERED
        umem.released = True
        umem.checker.table_released(umem.name)
        await rt.sleep(1.0)  # the world goes idle: the next refusal counts


def test_a_fault_s_next_attempt_on_a_freed_region_is_a_use_after_release() -> None:
    """Each attempt checks the region first: the one after the region was freed under the
    waiting fault reports ``a fault`` touching it, before anything else does."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        inv = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await w.protocol.start_account(a, inv)  # never ends: the first commit is refused
        await w.ctx.fault(a, 0, write=True)

    run = run_world(body, protocol=_FreedWhileWaiting, max_fault_retries=2)
    run.sim.unwrap()
    details = [v.detail for v in run.violations if v.kind == "use-after-release"]
    assert details[:1] == ["a fault touched A after its deregistration"]


def test_a_fault_s_refusals_count_from_its_first_whatever_the_clock_says() -> None:
    """A fault that starts late (the sim clock past 0) still has ``max_fault_retries``
    attempts: its first refusal counts one, not more."""
    out: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await rt.sleep(5.0)
        inv = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await w.protocol.start_account(a, inv)  # never ends: every commit is refused
        out.append(await w.ctx.fault(a, 0, write=True))

    run = run_world(body, protocol="odp2014", max_fault_retries=2)
    run.sim.unwrap()
    assert out == [FaultOutcome.STARVED]
    assert [v.detail for v in run.violations] == ["a fault on A [0x0, 0x1000) retried 2 times"]
    assert [e.detail for e in run.events if e.kind.startswith("fault")] == [
        "fault A 0x0 attempt 1",
        "fault A 0x0 must retry",
        "fault A 0x0 attempt 2",
        "fault A 0x0 must retry",
    ]


class _ObservedKvm(KvmSeq):
    """kvm-seq keeping the base's `holds_back` (found by identity): the core observes
    where the fault is parked instead of asking."""

    name = "kvm-seq-observed"
    holds_back = OdpProtocol.holds_back


def test_an_observed_fault_parked_in_fault_wait_is_charged_each_end() -> None:
    """Under a protocol the core observes, a fault parked in ``fault_wait`` (kvm-seq
    refused its commit while X runs and waits for X) is held by the protocol: each
    invalidation ending meanwhile is charged to it, so past the bound it starves."""
    out: list[object] = []

    async def body(w: World) -> None:
        p = w.protocol
        assert isinstance(p, KvmSeq)
        assert w.ctx.observes
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        x = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await p.before_start(x)

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if len(p._idle):
                    break
                await rt.checkpoint()
            for _ in range(3):
                await w.mm.madvise_dontneed(4 * P, P)
            out.append([q.charged for q in w.ctx._pending])
            await p.after_end(x)

    run = run_world(body, protocol=_ObservedKvm, starvation_bound=2)
    run.sim.unwrap()
    assert out == [[3], FaultOutcome.STARVED]
    assert [v.detail for v in run.violations] == [
        "a fault on A [0x0, 0x1000) was held back by the protocol across 3 invalidations"
    ]


class _ObservedWaitingKvm(_ObservedKvm):
    """An observed kvm-seq whose ``fault_begin`` itself waits for no invalidation in
    progress (as ``mmu_interval_read_begin`` does), and whose ``fault_commit`` first
    waits for `commit_gate` when one is set (once; a wait of the protocol's that is neither
    ``fault_begin`` nor ``fault_wait``)."""

    name = "kvm-seq-observed-waiting"
    commit_gate: Completion | None = None

    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        while self.in_progress > 0:
            await self._idle.park()
        return await super().fault_begin(umem, rng)

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        gate, self.commit_gate = self.commit_gate, None  # the first commit only
        if gate is not None:
            await gate.wait()
        return await super().fault_commit(umem, rng, token, pages)


def _observed_charges(commit_gate: bool) -> tuple[list[object], list[str]]:
    """F parks in ``fault_begin`` behind X (or, with `commit_gate`, in ``fault_commit``
    behind the gate); three other invalidations end meanwhile (bound 2)."""
    out: list[object] = []

    async def body(w: World) -> None:
        p = w.protocol
        assert isinstance(p, _ObservedWaitingKvm)
        assert w.ctx.observes
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        x = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        gate = Completion("commit gate")
        if commit_gate:
            p.commit_gate = gate
        else:
            await p.before_start(x)

        async def fault() -> None:
            out.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if w.ctx._pending and rt.task_blocked(w.ctx._pending[0].task):
                    break
                await rt.checkpoint()
            for _ in range(3):
                await w.mm.madvise_dontneed(4 * P, P)
            out.append([q.charged for q in w.ctx._pending])
            if commit_gate:
                gate.complete()
            else:
                await p.after_end(x)

    run = run_world(body, protocol=_ObservedWaitingKvm, starvation_bound=2)
    run.sim.unwrap()
    return out, [v.detail for v in run.violations]


def test_an_observed_fault_parked_in_its_fault_begin_is_charged_each_end() -> None:
    assert _observed_charges(commit_gate=False) == (
        [[3], FaultOutcome.STARVED],
        ["a fault on A [0x0, 0x1000) was held back by the protocol across 3 invalidations"],
    )


def test_an_observed_fault_parked_past_its_fault_begin_is_charged_nothing() -> None:
    """Parked in ``fault_commit`` (not a wait the core observes) the fault is not held:
    the ends are not charged, and it resolves."""
    assert _observed_charges(commit_gate=True) == ([[0], FaultOutcome.RESOLVED], [])


def test_a_spin_by_the_same_invalidation_after_a_new_one_refused_counts_once() -> None:
    """A spinning kvm-seq fault is refused by X0, then (X0 ended: the fault let go) by a
    new X1, which counts; X1, still running, refuses it four more times, which count
    nothing (the let-go was used up by X1's first refusal); when X1 ends it resolves."""
    out: list[object] = []
    rng = AddrRange(0, P)
    inv = [Invalidation(100, rng, InvalidateEvent.UNMAP)]

    class Spin(KvmSeq):
        name = "t-spin-after-new"

        async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
            await rt.checkpoint("cond_resched")
            waits = len(out)
            out.append("refused")
            if waits in (0, 5):
                await self.ctx.subscription.invalidate_range_end(inv[-1])
            if waits == 0:
                inv.append(Invalidation(101, rng, InvalidateEvent.UNMAP))
                await self.ctx.subscription.invalidate_range_start(inv[-1])

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.ctx.subscription.invalidate_range_start(inv[0])
        out.append(await w.ctx.fault(a, 0, write=True))

    run = run_world(body, protocol=Spin, max_fault_retries=3)
    run.sim.unwrap()
    assert out == ["refused"] * 6 + [FaultOutcome.RESOLVED]
    assert run.violations == ()


@pytest.mark.parametrize("new_each_time", [False, True])
def test_a_live_spin_by_the_same_invalidation_counts_once_within_the_wait_timeout(
    new_each_time: bool,
) -> None:
    """Live, the world going idle is a whole ``fault_wait_timeout`` (here an hour) between
    two refusals: a spinning fault refused six times by one running invalidation counts
    one refusal and resolves when it ends, where refusals by new invalidations each count
    (``max_fault_retries`` 2: the second is starvation)."""
    out: list[object] = []
    rng = AddrRange(0, P)
    inv = [Invalidation(100, rng, InvalidateEvent.UNMAP)]

    class Spin(KvmSeq):
        name = "t-live-spin"

        async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
            await rt.checkpoint("cond_resched")
            waits = len(out)
            out.append("refused")
            if new_each_time or waits == 5:
                await self.ctx.subscription.invalidate_range_end(inv[-1])
            if new_each_time:
                inv.append(Invalidation(101 + waits, rng, InvalidateEvent.UNMAP))
                await self.ctx.subscription.invalidate_range_start(inv[-1])

    async def main() -> None:
        w = World.build(Spin, max_fault_retries=2)
        w.ctx.fault_wait_timeout = 3600.0  # no refusal here waits that long
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.ctx.subscription.invalidate_range_start(inv[0])
        out.append(await w.ctx.fault(a, 0, write=True))
        out.append([v.detail for v in w.checker.violations])

    rt.run_live(main, backend="asyncio", timeout=60)
    if new_each_time:
        assert out == [
            "refused",
            FaultOutcome.STARVED,
            ["a fault on A [0x0, 0x1000) retried 2 times"],
        ]
    else:
        assert out == ["refused"] * 6 + [FaultOutcome.RESOLVED, []]


def test_a_live_refusal_a_whole_wait_timeout_after_the_last_counted_one_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Live, a refusal counts again once ``fault_wait_timeout`` passed since the last
    counted one, that long exactly included: with a clock read as 0, 0.25, 0.5, ... (a
    stand-in for anyio's, read only by the refusal count) and a timeout of 1.0, one
    running invalidation refuses the fault at 0 (counted) and 1.0 (counted: the second is
    starvation), the three between counting nothing."""
    out: list[object] = []
    inv = Invalidation(100, AddrRange(0, P), InvalidateEvent.UNMAP)
    ticks = iter(range(1000))
    monkeypatch.setattr(rt, "now", lambda: next(ticks) / 4)

    class Spin(KvmSeq):
        name = "t-live-exact-timeout"

        async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
            await rt.checkpoint("cond_resched")
            out.append("refused")

    async def main() -> None:
        w = World.build(Spin, max_fault_retries=2)
        assert w.ctx.fault_wait_timeout == 1.0
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.ctx.subscription.invalidate_range_start(inv)
        out.append(await w.ctx.fault(a, 0, write=True))
        out.append([v.detail for v in w.checker.violations])

    rt.run_live(main, backend="asyncio", timeout=60)
    assert out == [
        *["refused"] * 4,
        FaultOutcome.STARVED,
        ["a fault on A [0x0, 0x1000) retried 2 times"],
    ]
    assert next(ticks) == 5  # the clock was read once a refusal, by nothing else


def test_in_the_sim_a_refusal_after_the_clock_moved_at_all_counts() -> None:
    """In the sim the clock moves only when no task can run, so a refusal after any sleep
    (here half of ``fault_wait_timeout``) counts, even by the same running invalidation:
    the third is starvation, before that invalidation ends."""
    out: list[object] = []
    inv = Invalidation(100, AddrRange(0, P), InvalidateEvent.UNMAP)

    class Napping(KvmSeq):
        name = "t-napping"

        async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
            await rt.sleep(0.5)
            waits = len(out)
            out.append("refused")
            if waits == 5:
                await self.ctx.subscription.invalidate_range_end(inv)

    async def body(w: World) -> None:
        assert w.ctx.fault_wait_timeout == 1.0
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.ctx.subscription.invalidate_range_start(inv)
        out.append(await w.ctx.fault(a, 0, write=True))

    run = run_world(body, protocol=Napping, max_fault_retries=3)
    run.sim.unwrap()
    assert out == ["refused"] * 2 + [FaultOutcome.STARVED]
    assert [v.detail for v in run.violations] == ["a fault on A [0x0, 0x1000) retried 3 times"]


def test_a_region_mutex_of_no_region_or_a_gone_one_is_a_plain_mutex() -> None:
    """`RegionMutex` checks its region at each grant only while it has one: built with no
    region (the default), or once its region was freed by Python, it is granted as a
    `Mutex` is, blocking or not, reporting nothing."""
    from odp_async.odp.umem import RegionMutex

    class _Region:
        released = True

    region = _Region()
    gone = weakref.ref(region)
    del region
    mutexes = [RegionMutex("m.umem_mutex"), RegionMutex("g.umem_mutex", region=gone)]  # type: ignore[arg-type]

    async def body(w: World) -> list[bool]:
        held = []
        for m in mutexes:
            async with m:
                held.append(m.locked())
            m.acquire_nowait()
            held.append(m.locked())
            m.release()
        return held

    run = run_world(body)
    assert run.sim.unwrap() == [True] * 4
    assert run.violations == ()
