"""The built-in scenarios: the races of the 2014 thread and DESIGN section 6.

Contract
    Each scenario sets up one world (mappings, populated pages, registered regions), then
    starts its actors in one task group, each a task with a fixed name.  Actors that must
    follow another (a DMA after its fault) wait on a gate (a `Completion` made with
    ``gate=True``, which DPOR does not run before it opens): that is program order,
    not synchronization under test.  Each returns a dict of what its actors observed.

    `BUILTIN` maps names to `Scenario` records with the expected verdict per protocol
    (default flags) and, where one is known, the script of the breaking interleaving.

See also
    `odp_async.scenarios.model`; the notes behind the verdicts are in each summary.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import attrs

from .. import _runtime as rt
from ..addr import PAGE_SIZE
from ..device import DmaError, FaultOutcome
from ..odp.implicit import ImplicitMr
from ..odp.umem import Umem
from ..sync import Completion
from ..tracked import TrackedDict, tracked
from ..world import World
from .model import Scenario, Verdict

__all__ = ["BUILTIN"]

P = PAGE_SIZE
#: Invalidations per storm task.  Ten, so that a fault the protocol holds back has room to
#: pass the starvation bound (12 held-back ends) on a fair schedule: only an end while
#: the protocol holds the fault back, the scheduler having passed over neither the
#: faulting task nor a holder's since the last charge, counts (see "Liveness" in
#: odp.ucontext), and with 2 x 8 the interval-seq epoch had to stay open for 13 of the 16
#: (found after ~430 random schedules with the generations rule before; with 2 x 10,
#: after ~64).
STORM_ROUNDS = 10
C, F, D, S = Verdict.CLEAN, Verdict.FOUND, Verdict.DEADLOCK, Verdict.STARVATION
PROTOCOL_ORDER = (
    "naive",
    "odp2014",
    "odp2014-ctx",
    "range-list",
    "hmm-pool",
    "kvm-seq",
    "interval-seq",
)


#: The protocols whose fault waits out an invalidation in progress before it takes the
#: region's lock (the mm's active ranges; interval-seq's odd seq): no run puts the fault
#: at ``B.umem_mutex`` between a start and its end, as the registration scripts do.
_WAITS_OUT_THE_INVALIDATION = frozenset({"range-list", "hmm-pool", "interval-seq"})


def _verdicts(*cells: Verdict) -> dict[str, Verdict]:
    return dict(zip(PROTOCOL_ORDER, cells, strict=True))


async def _populate(w: World, start: int, npages: int) -> None:
    for i in range(npages):
        await w.mm.cpu_fault(start + i * P, write=True)


async def _dma(w: World, umem: Umem, address: int, *, write: bool = False) -> str:
    try:
        await w.device.dma(umem.table, address, write=write)
    except DmaError as e:
        return f"error: {e}"
    return "ok"


def _outcome(o: FaultOutcome) -> str:
    return o.value


@tracked
class _LateRegion:
    """Region B registered by an actor while others run: the actors ``register``, then
    ``fault`` at one address once B exists, then ``dma`` there once the fault ended."""

    def __init__(self, w: World, start: int, pages: int, address: int) -> None:
        self.w, self.start, self.pages, self.address = w, start, pages, address
        self.out: TrackedDict[str, Any] = TrackedDict()
        self.registered = Completion("B registered", gate=True)
        self.faulted = Completion("fault done", gate=True)

    async def register(self) -> None:
        self.out["B"] = await self.w.ctx.register_mr(self.start, self.pages * P, name="B")
        self.registered.complete_all()

    async def fault(self) -> None:
        await self.registered.wait()
        outcome = await self.w.ctx.fault(self.out["B"], self.address, write=True)
        self.out["fault"] = _outcome(outcome)
        self.faulted.complete_all()

    async def dma(self) -> None:
        await self.faulted.wait()
        self.out["dma"] = await _dma(self.w, self.out["B"], self.address)


async def _with_region_a(w: World) -> None:
    """A registered (so the subscription exists), and pages 16..31 mapped and populated."""
    await w.mm.mmap(0, 8 * P)
    await w.ctx.register_mr(0, 8 * P, name="A")
    await w.mm.mmap(16 * P, 16 * P)
    await _populate(w, 16 * P, 16)


# --- S1 ---------------------------------------------------------------------------------


async def registration_during_invalidation(w: World) -> dict[str, Any]:
    await _with_region_a(w)
    b = _LateRegion(w, 16 * P, 16, 20 * P)
    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 16 * P, 16 * P, name="madvise")
        tg.start_soon(b.register, name="register")
        tg.start_soon(b.fault, name="fault")
        tg.start_soon(b.dma, name="dma")
    return dict(b.out)


async def registration_race_minimal(w: World) -> dict[str, Any]:
    """The 2014-09-07 table alone: madvise starts, B registers, madvise ends."""
    await _with_region_a(w)
    b = _LateRegion(w, 16 * P, 16, 20 * P)
    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 16 * P, 16 * P, name="madvise")
        tg.start_soon(b.register, name="register")
    return dict(b.out)


# --- the 2014-09-11 corruption ------------------------------------------------------------


def _corruption(second: str) -> Any:
    async def corruption(w: World) -> dict[str, Any]:
        await _with_region_a(w)
        b = _LateRegion(w, 16 * P, 16, 28 * P)

        async def later_invalidation() -> None:
            await b.registered.wait()
            if second == "munmap":
                await w.mm.munmap(28 * P, P)
            else:
                await w.mm.madvise_dontneed(28 * P, P)

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 16 * P, 8 * P, name="I1")
            tg.start_soon(b.register, name="R")
            tg.start_soon(later_invalidation, name="I2")
            tg.start_soon(b.fault, name="F")
            tg.start_soon(b.dma, name="dma")
        return dict(b.out)

    return corruption


# --- S2, S6, S7: one fault on B, one racer, then a DMA through what the fault installed ---


async def _fault_race(
    w: World,
    racer_name: str,
    racer: Callable[[TrackedDict[str, Any]], Coroutine[Any, Any, None]],
    *,
    dma_write: bool = False,
) -> dict[str, Any]:
    await w.mm.mmap(0, 16 * P)
    await _populate(w, 0, 16)
    b = await w.ctx.register_mr(0, 16 * P, name="B")
    out: TrackedDict[str, Any] = TrackedDict()
    faulted = Completion("fault done", gate=True)

    async def fault() -> None:
        out["fault"] = _outcome(await w.ctx.fault(b, 4 * P, write=True))
        faulted.complete_all()

    async def dma() -> None:
        await faulted.wait()
        out["dma"] = await _dma(w, b, 4 * P, write=dma_write)

    async with rt.task_group() as tg:
        tg.start_soon(fault, name="fault")
        tg.start_soon(racer, out, name=racer_name)
        tg.start_soon(dma, name="dma")
    return dict(out)


async def fault_vs_munmap(w: World) -> dict[str, Any]:
    async def munmap(out: TrackedDict[str, Any]) -> None:
        await w.mm.munmap(0, 16 * P)

    return await _fault_race(w, "munmap", munmap)


# --- S3 -------------------------------------------------------------------------------------


async def exit_during_faults(w: World) -> dict[str, Any]:
    await w.mm.mmap(0, 16 * P)
    await _populate(w, 0, 16)
    b = await w.ctx.register_mr(0, 16 * P, name="B")
    out: TrackedDict[str, Any] = TrackedDict()

    async def fault(name: str, address: int) -> None:
        out[name] = _outcome(await w.ctx.fault(b, address, write=True))

    async with rt.task_group() as tg:
        tg.start_soon(fault, "fault1", 4 * P, name="fault1")
        tg.start_soon(fault, "fault2", 8 * P, name="fault2")
        tg.start_soon(w.mm.exit, name="exit")
    return dict(out)


# --- S4 -------------------------------------------------------------------------------------


async def dereg_last_during_notifier(w: World) -> dict[str, Any]:
    await w.mm.mmap(0, 16 * P)
    await _populate(w, 0, 16)
    b = await w.ctx.register_mr(0, 16 * P, name="B")
    out: TrackedDict[str, Any] = TrackedDict()
    gone, again = Completion("B deregistered", gate=True), Completion("C registered", gate=True)

    async def deregister() -> None:
        await w.ctx.deregister_mr(b)
        gone.complete_all()

    async def reregister() -> None:
        await gone.wait()
        out["C"] = await w.ctx.register_mr(0, 16 * P, name="C")
        again.complete_all()

    async def fault() -> None:
        await again.wait()
        out["fault"] = _outcome(await w.ctx.fault(out["C"], 4 * P, write=True))

    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 0, 16 * P, name="madvise")
        tg.start_soon(deregister, name="deregister")
        tg.start_soon(reregister, name="reregister")
        tg.start_soon(fault, name="fault")
    return dict(out)


# --- odp2014-ctx: the activation's write lock against the last deregistration ----------


async def ctx_dereg_during_end(w: World) -> dict[str, Any]:
    """A registers; a madvise covers A and B; meanwhile B registers (inactive: the
    madvise is running) and then A and B are deregistered.  Under odp2014-ctx the
    madvise's end activates B, taking umem_rwsem for write inside the callback, while the
    deregistration of the last MR holds it for read and waits (srcu) for that callback."""
    await w.mm.mmap(16 * P, 8 * P)
    a = await w.ctx.register_mr(16 * P, 4 * P, name="A")

    async def register_then_deregister() -> None:
        b = await w.ctx.register_mr(20 * P, 4 * P, name="B")
        await w.ctx.deregister_mr(a)
        await w.ctx.deregister_mr(b)

    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 16 * P, 8 * P, name="madvise")
        tg.start_soon(register_then_deregister, name="regB-dereg")
    return {}


# --- the 2014 ucontext: the last deregistration against a registration ------------------


async def last_dereg_vs_register(w: World) -> dict[str, Any]:
    """C, the context's only region, is deregistered while B registers.  The 2014
    ``ib_umem_odp_release`` (the posted patch and v3.19-v4.19,
    ``drivers/infiniband/core/umem_odp.c``) calls ``mmu_notifier_unregister`` with
    ``umem_rwsem`` downgraded to read, and ``ib_umem_notifier_release`` takes it for read
    again: a registration's ``down_write`` queued in between makes that nested read wait
    behind it, a deadlock (`TreeProtocol.LAST_MR_UNREGISTER`).  From v4.20 (c9990ab39b6e)
    the unregister runs outside ``umem_rwsem``.  (Twin:
    ``examples/lastdereg-vs-register.toml``.)"""
    await w.mm.mmap(0, 8 * P)
    await w.mm.mmap(16 * P, 4 * P)
    c = await w.ctx.register_mr(16 * P, 4 * P, name="C")
    out: TrackedDict[str, Any] = TrackedDict()
    done = {n: Completion(f"{n} done", gate=True) for n in ("register", "deregister")}

    async def register() -> None:
        out["B"] = await w.ctx.register_mr(0, 8 * P, name="B")
        done["register"].complete_all()

    async def deregister() -> None:
        await w.ctx.deregister_mr(c)
        done["deregister"].complete_all()

    async def check() -> None:
        # B must be served by a registered subscription: a fault maps a page, a madvise
        # then frees it (a stale translation if the subscription was torn down under B)
        await done["register"].wait()
        await done["deregister"].wait()
        out["fault"] = _outcome(await w.ctx.fault(out["B"], 0, write=True))
        await w.mm.madvise_dontneed(0, 8 * P)

    async with rt.task_group() as tg:
        tg.start_soon(register, name="register")
        tg.start_soon(deregister, name="deregister")
        tg.start_soon(check, name="check")
    return {"fault": out.get("fault")}


# --- S5 -------------------------------------------------------------------------------------


async def fixed_pool_deadlock(w: World) -> dict[str, Any]:
    f = w.file("hugefile", 16, hugetlb=True)
    await w.mm.mmap(0, 16 * P, file=f)
    await _populate(w, 0, 16)
    await w.ctx.register_mr(0, 16 * P, name="B")
    async with rt.task_group() as tg:
        tg.start_soon(w.mm.munmap, 0, 16 * P, name="munmap")
        tg.start_soon(f.truncate, 0, name="truncate")
    return {}


# --- S6 -------------------------------------------------------------------------------------


async def mprotect_downgrade(w: World) -> dict[str, Any]:
    async def mprotect(out: TrackedDict[str, Any]) -> None:
        await w.mm.mprotect(0, 16 * P, writable=False)

    return await _fault_race(w, "mprotect", mprotect, dma_write=True)


# --- S7 -------------------------------------------------------------------------------------


async def migration_during_fault(w: World) -> dict[str, Any]:
    async def migrate(out: TrackedDict[str, Any]) -> None:
        out["migrated"] = await w.mm.migrate(4 * P)

    return await _fault_race(w, "migrate", migrate)


# --- S8 -------------------------------------------------------------------------------------


async def truncate_during_registration(w: World) -> dict[str, Any]:
    await w.mm.mmap(32 * P, 8 * P)
    await w.ctx.register_mr(32 * P, 8 * P, name="A")  # the subscription already exists
    f = w.file("file", 16)
    await w.mm.mmap(0, 16 * P, file=f)
    await _populate(w, 0, 16)
    b = _LateRegion(w, 0, 16, 4 * P)
    async with rt.task_group() as tg:
        tg.start_soon(f.truncate, 0, name="truncate")
        tg.start_soon(b.register, name="register")
        tg.start_soon(b.fault, name="fault")
        tg.start_soon(b.dma, name="dma")
    return dict(b.out)


# --- S9 -------------------------------------------------------------------------------------


def storm(register_during: bool, rounds: int = STORM_ROUNDS) -> Any:
    """The storm scenario's body with `rounds` invalidations per storm task."""

    async def body(w: World) -> dict[str, Any]:
        await w.mm.mmap(0, 16 * P)
        await _populate(w, 0, 16)
        await w.ctx.register_mr(0, 16 * P, name="A")
        await w.mm.mmap(32 * P, 16 * P)
        await _populate(w, 32 * P, 16)
        out: TrackedDict[str, Any] = TrackedDict()
        b = None if register_during else await w.ctx.register_mr(32 * P, 16 * P, name="B")
        started = Completion("storm started", gate=True)

        async def invalidator() -> None:
            for i in range(rounds):
                await w.mm.madvise_dontneed(0, 16 * P)
                if i == 0:
                    started.complete_all()

        async def fault() -> None:
            await started.wait()
            umem = b or await w.ctx.register_mr(32 * P, 16 * P, name="B")
            out["fault"] = _outcome(await w.ctx.fault(umem, 36 * P, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(invalidator, name="storm1")
            tg.start_soon(invalidator, name="storm2")
            tg.start_soon(fault, name="fault")
        return dict(out)

    return body


BUILTIN: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "registration-race",
            "madvise(DONTNEED) under mmap_sem read runs while B registers (2014-09-07); "
            "a fault on B then commits a page the madvise frees",
            registration_during_invalidation,
            ("madvise", "register", "fault", "dma"),
            _verdicts(F, F, C, C, C, C, C),
            script=(
                ("madvise", "after start"),
                ("register", None),
                ("fault", "B.umem_mutex"),
                ("madvise", "before end"),
                ("fault", None),
                ("madvise", None),
                ("dma", None),
            ),
            script_unfollowed=_WAITS_OUT_THE_INVALIDATION,
        ),
        Scenario(
            "registration-count",
            "the 2014-09-07 table alone: an end without its start reaches B "
            "(unbalanced only without the clamp)",
            registration_race_minimal,
            ("madvise", "register"),
            _verdicts(C, C, C, C, C, C, C),
            script=(("madvise", "after start"), ("register", None), ("madvise", None)),
        ),
        Scenario(
            "stray-end-corruption",
            "2014-09-11: the stray end of a madvise that began before B registered cancels "
            "the count of a later madvise; a fault commits inside it",
            _corruption("madvise"),
            ("I1", "R", "I2", "F", "dma"),
            _verdicts(F, F, C, C, C, C, C),
            script=(
                ("I1", "after start"),
                ("R", None),
                ("I2", "after start"),
                ("I1", None),
                ("F", None),
                ("I2", None),
                ("dma", None),
            ),
        ),
        Scenario(
            "stray-end-munmap",
            "2014-09-11 with munmap as the later invalidation: mmap_sem write keeps the "
            "fault out, so the stray end is only an accounting error",
            _corruption("munmap"),
            ("I1", "R", "I2", "F", "dma"),
            _verdicts(F, C, C, C, C, C, C),
            script_expected={"naive": C},
            script=(
                ("I1", "after start"),
                ("R", None),
                ("I2", "after start"),
                ("I1", None),
                ("F", None),
                ("I2", None),
                ("dma", None),
            ),
        ),
        Scenario(
            "fault-vs-munmap",
            "a fault gup's a page, munmap frees it, the fault commits it",
            fault_vs_munmap,
            ("fault", "munmap", "dma"),
            _verdicts(F, C, C, C, C, C, C),
            script=(("fault", "B.umem_mutex"), ("munmap", None), ("fault", None), ("dma", None)),
        ),
        Scenario(
            "exit-during-faults",
            "the process exits while two faults on B are in flight",
            exit_during_faults,
            ("fault1", "fault2", "exit"),
            _verdicts(F, C, C, C, C, C, C),
            script=(("fault1", "B.umem_mutex"), ("exit", None), ("fault1", None)),
        ),
        Scenario(
            "dereg-during-notifier",
            "the last MR is deregistered while an invalidation runs, then a new one "
            "registers and faults",
            dereg_last_during_notifier,
            ("madvise", "deregister", "reregister", "fault"),
            _verdicts(F, C, C, C, C, C, C),
            script_expected={"naive": C},
            script=(("madvise", "after start"), ("deregister", None), ("madvise", None)),
        ),
        Scenario(
            "ctx-dereg-during-end",
            "odp2014-ctx: an invalidation's end activates a new region under umem_rwsem "
            "write while the last deregistration holds it for read and waits for that end",
            ctx_dereg_during_end,
            ("madvise", "regB-dereg"),
            _verdicts(C, C, D, C, C, C, C),
        ),
        Scenario(
            "lastdereg-vs-register",
            "the 2014 ucontext: the last MR is deregistered while another registers; the "
            "deregistration's ->release takes umem_rwsem for read again, behind the "
            "registration's queued write",
            last_dereg_vs_register,
            ("register", "deregister", "check"),
            _verdicts(D, D, D, C, C, C, C),
        ),
        Scenario(
            "fixed-pool-deadlock",
            "munmap of a hugetlb mapping (start, then i_mmap) against truncate of its file "
            "(i_mmap, then start), with a notifier pool of one slot",
            fixed_pool_deadlock,
            ("munmap", "truncate"),
            _verdicts(C, C, C, C, D, C, C),
            script=(("munmap", "after start"), ("truncate", None), ("munmap", None)),
        ),
        Scenario(
            "mprotect-downgrade",
            "a write fault gup's a writable page, mprotect makes it read-only, the fault "
            "commits a writable translation",
            mprotect_downgrade,
            ("fault", "mprotect", "dma"),
            _verdicts(F, C, C, C, C, C, C),
            script=(("fault", "B.umem_mutex"), ("mprotect", None), ("fault", None), ("dma", None)),
        ),
        Scenario(
            "migration-during-fault",
            "page migration races a fault: the refcount freeze makes migration back off "
            "while the fault holds its page, but a fault that commits and lets go inside "
            "the migration leaves naive translating the old frame",
            migration_during_fault,
            ("fault", "migrate", "dma"),
            _verdicts(F, C, C, C, C, C, C),
            script_expected={"naive": C},
            script=(("fault", "B.umem_mutex"), ("migrate", None), ("fault", None), ("dma", None)),
        ),
        Scenario(
            "truncate-during-registration",
            "truncate (no mmap_sem) runs while B registers; gup still finds the old pte",
            truncate_during_registration,
            ("truncate", "register", "fault", "dma"),
            _verdicts(F, F, C, C, C, C, C),
            script=(
                ("truncate", "after start"),
                ("register", None),
                ("fault", "B.umem_mutex"),
                ("truncate", "before end"),
                ("fault", None),
                ("truncate", None),
                ("dma", None),
            ),
            script_unfollowed=_WAITS_OUT_THE_INVALIDATION,
        ),
        Scenario(
            "storm-preregistered",
            "two tasks invalidate region A over and over while B, registered before, faults",
            storm(register_during=False),
            ("storm1", "storm2", "fault"),
            _verdicts(C, C, C, C, C, S, C),
            params={"rounds": STORM_ROUNDS},
            make=lambda rounds: storm(False, rounds),
        ),
        Scenario(
            "storm-register-during",
            "two tasks invalidate region A over and over; B registers during the storm and faults",
            storm(register_during=True),
            ("storm1", "storm2", "fault"),
            _verdicts(C, C, S, C, C, S, S),
            params={"rounds": STORM_ROUNDS},
            make=lambda rounds: storm(True, rounds),
        ),
    )
}


# --- mm lifetime: the last mmput under a lock the teardown needs (issue 10, item 4) --------


def mmput_under_lock(asynchronous: bool) -> Any:
    """A driver's worker drops an mm reference taken at setup (``mmget``) while it holds
    region A's lock, and the process exits meanwhile.

    When the exit comes first, the worker's put is the last: ``mmput`` runs exit_mmap and
    the notifier release walk in the worker (``kernel/fork.c``, Linux v6.6), whose ODP
    release takes A's lock -- a self-deadlock, the mistake ``mmput_async`` exists for (the
    OOM reaper, v4.7; binder's page freeing).  ``mmput_async`` hands the teardown to the
    workqueue, which runs it once the worker let go.  (``examples/mmput-under-lock.toml``
    is its twin.)
    """

    async def body(w: World) -> dict[str, Any]:
        await w.mm.mmap(0, 4 * P)
        await _populate(w, 0, 4)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        w.mm.mmget()  # the driver's reference
        out: TrackedDict[str, Any] = TrackedDict()

        async def worker() -> None:
            await a.mutex.acquire()
            if asynchronous:
                w.mm.mmput_async()
            else:
                await w.mm.mmput()
            a.mutex.release()
            out["worker"] = "done"

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.exit, name="exit")
            tg.start_soon(worker, name="worker")
        return dict(out)

    return body


BUILTIN.update(
    (s.name, s)
    for s in (
        Scenario(
            "mmput-under-lock",
            "a worker drops the last mm reference under region A's lock while the process "
            "exits: exit_mmap's release walk runs in the worker and needs that lock",
            mmput_under_lock(asynchronous=False),
            ("exit", "worker"),
            _verdicts(D, D, D, D, D, D, D),
            script=(("exit", None), ("worker", None)),
        ),
        Scenario(
            "mmput-async-under-lock",
            "the same worker with mmput_async: the teardown runs on the workqueue after "
            "the worker let go",
            mmput_under_lock(asynchronous=True),
            ("exit", "worker"),
            _verdicts(C, C, C, C, C, C, C),
            script=(("exit", None), ("worker", None)),
        ),
    )
)


# --- nested invalidations: a zap that splits a huge page (issue 10, item 2) ----------------


async def thp_split_during_fault(w: World) -> dict[str, Any]:
    """madvise(DONTNEED) of one page of a transparent huge page splits it first: a CLEAR
    invalidation of the whole huge page nested inside the DONTNEED one, in the same task
    (``__split_huge_pmd`` inside ``zap_page_range``).  A fault on B and a DMA race it.
    Per-region and context-wide counts take nesting; hmm-pool's nested start needs a
    second slot of a one-slot pool its own outer start holds.  (Twin:
    ``examples/thp-split-during-fault.toml``.)"""
    await w.mm.mmap(0, 4 * P, huge=True)
    await _populate(w, 0, 4)
    b = await w.ctx.register_mr(0, 4 * P, name="B")
    out: TrackedDict[str, Any] = TrackedDict()
    faulted = Completion("fault done", gate=True)

    async def fault() -> None:
        out["fault"] = _outcome(await w.ctx.fault(b, 0, write=True))
        faulted.complete_all()

    async def dma() -> None:
        await faulted.wait()
        out["dma"] = await _dma(w, b, 0)

    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 0, P, name="madvise")
        tg.start_soon(fault, name="fault")
        tg.start_soon(dma, name="dma")
    return dict(out)


BUILTIN["thp-split-during-fault"] = Scenario(
    "thp-split-during-fault",
    "madvise of one page of a huge page splits it in a nested invalidation while B faults",
    thp_split_during_fault,
    ("madvise", "fault", "dma"),
    _verdicts(F, C, C, C, D, C, C),
)


# --- implicit ODP: children made on fault, freed by deferred work (issue 10, item 7) ------


def implicit_odp(**options: bool) -> Any:
    """An implicit MR (`odp_async.odp.implicit`) with 4-page children: child 1 exists,
    two faults race to create child 0, madvise empties both while they fault, the MR is
    deregistered once the faults ended (child-free work may still be queued), then a
    munmap.  ``options`` are the MR's historical mistakes.  (Twins:
    ``examples/implicit-odp.toml``, ``examples/implicit-odp-free-in-invalidate.toml``.)"""

    async def body(w: World) -> dict[str, Any]:
        await w.mm.mmap(0, 8 * P)
        await _populate(w, 0, 8)
        imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4, **options)
        await imr.register()
        out: TrackedDict[str, Any] = TrackedDict(setup=(await imr.fault(4 * P, write=True)).value)
        done = {n: Completion(f"{n} done", gate=True) for n in ("fault1", "fault2", "dereg")}

        async def fault(name: str, address: int) -> None:
            out[name] = (await imr.fault(address, write=True)).value
            done[name].complete_all()

        async def deregister() -> None:
            await done["fault1"].wait()
            await done["fault2"].wait()
            await imr.deregister()
            done["dereg"].complete_all()

        async def munmap() -> None:
            await done["dereg"].wait()
            await w.mm.munmap(0, 4 * P)

        async with rt.task_group() as tg:
            tg.start_soon(fault, "fault1", 0, name="fault1")
            tg.start_soon(fault, "fault2", P, name="fault2")
            tg.start_soon(w.mm.madvise_dontneed, 0, 8 * P, name="madvise")
            tg.start_soon(deregister, name="dereg")
            tg.start_soon(munmap, name="munmap")
        return dict(out)

    return body


# --- notifier-core variants: the historical mistakes (issue 10, item 6) --------------------


async def interval_remove_pre_2022(w: World) -> dict[str, Any]:
    """A is deregistered inside a madvise over it, with ``mmu_interval_notifier_remove``'s
    wait read bare, as before commit 319561669a59 (2022, v5.18-rc4): under interval-seq
    the removal is deferred to the madvise's end, whose critical section bumps the seq
    before it unlinks A; the bare read sees the bump, the deregistration returns and frees
    A, and the end unlinks freed memory (``use-after-free``).  Today's locked read
    (`AddressSpace.interval_remove_wait` ``"today"``) is clean: ``tests/model/
    test_notifier_variants.py``.  (Twin: ``examples/interval-remove-pre-2022.toml``.)"""
    w.mm.interval_remove_wait = "pre-2022"
    await w.mm.mmap(0, 4 * P)
    a = await w.ctx.register_mr(0, 4 * P, name="A")
    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 0, 4 * P, name="madvise")
        tg.start_soon(w.ctx.deregister_mr, a, name="deregister")
    return {}


async def teardown_no_release(w: World) -> dict[str, Any]:
    """A driver tears its KVM-style subscriber down with
    ``mmu_notifier_unregister_no_release`` and frees it at once
    (`AddressSpace.notifier_teardown` ``"no-release"``) while a madvise runs its start:
    the notifier chain walk goes on through freed memory (``use-after-free``), whatever
    the ODP protocol.  ``"unregister"`` and ``"put"`` are clean: ``tests/model/
    test_notifier_variants.py``.  (Twin: ``examples/teardown-no-release.toml``.)"""
    from ..subscribers import KvmMmu  # the subscribers sit beside the ODP core

    w.mm.notifier_teardown = "no-release"
    await w.mm.mmap(0, 4 * P)
    kvm = KvmMmu(w.mm, w.checker)
    await kvm.register()

    async def free() -> None:
        pass

    async with rt.task_group() as tg:
        tg.start_soon(w.mm.madvise_dontneed, 0, 4 * P, name="madvise")
        tg.start_soon(w.mm.teardown_notifier, kvm, free, name="driver")
    return {}


BUILTIN.update(
    (s.name, s)
    for s in (
        Scenario(
            "implicit-odp",
            "two faults create an implicit MR's child while madvise empties it and the MR "
            "is destroyed",
            implicit_odp(),
            ("fault1", "fault2", "madvise", "dereg", "munmap"),
            _verdicts(C, C, C, C, C, C, C),
        ),
        Scenario(
            "implicit-odp-free-in-invalidate",
            "an implicit MR whose invalidation frees an emptied child itself while a fault "
            "still holds it",
            implicit_odp(free_in_invalidate=True),
            ("fault1", "fault2", "madvise", "dereg", "munmap"),
            _verdicts(F, F, F, F, F, F, F),
        ),
        Scenario(
            "interval-remove-pre-2022",
            "A is deregistered inside a madvise; mmu_interval_notifier_remove reads the seq "
            "bare (before 2022) and returns before the end unlinks A",
            interval_remove_pre_2022,
            ("madvise", "deregister"),
            _verdicts(C, C, C, C, C, C, F),
        ),
        Scenario(
            "teardown-no-release",
            "a KVM-style subscriber is unregistered with _no_release and freed at once "
            "while a madvise runs its start callback",
            teardown_no_release,
            ("madvise", "driver"),
            _verdicts(F, F, F, F, F, F, F),
        ),
    )
)

# Every built-in shares state between its tasks only through the world (tracked), the
# primitives and its result dict (each key written by one task, after the completions
# that order it, and read by none): a step may be taken as exactly its noted accesses,
# so DPOR reduces (`odp_async.tracked`; `tests/model/test_tracked_differential.py`).
BUILTIN.update({name: attrs.evolve(s, noted_only=True) for name, s in BUILTIN.items()})
