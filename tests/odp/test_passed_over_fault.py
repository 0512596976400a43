"""An invalidation end does not charge a fault whose task the scheduler passed over since
its last charge (see "Liveness" in `odp_async.odp.ucontext`).

A protocol holds the fault back (`holds_back` True) until the body opens it, and the
fault retries by spinning (a checkpoint, no park).  A chooser runs the fault's task until
its fault is pending, then never while another task can run: three invalidations end
while the task is runnable and never scheduled.  Under a fair scheduler the fault would
have gone on; so none of the three is charged, and the fault resolves once the body
opens the protocol.  Charged (as when only the protocol's answer counted), they put the
fault past a bound of 2: ``starvation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.odp import Umem
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.world import World, run_world

P = PAGE_SIZE


class HeldUntilOpen(KvmSeq):
    """kvm-seq, holding every fault back until `opened`; its fault spins."""

    name = "kvm-seq-held-until-open"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.opened = False

    def holds_back(self, umem: Umem, rng: AddrRange) -> bool:
        return not self.opened

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        return not self.opened or super().must_retry(umem, rng, token)

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        await rt.checkpoint("spin")


class PassOverF:
    """Runs the task named F until `pending()`, then any other task while one can run."""

    def __init__(self, pending: Any) -> None:
        self.pending = pending

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        names = [t.name for t in runnable]
        if not self.pending():
            return names.index("F") if "F" in names else 0
        others = [i for i, n in enumerate(names) if n != "F"]
        return others[0] if others else 0

    def draw(self, n: int, label: object) -> int:
        return 0


def test_a_fault_passed_over_by_the_scheduler_is_not_charged() -> None:
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

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(3):
                await w.mm.madvise_dontneed(4 * P, P)
            out.append((w.ctx.invalidations_ended, [q.charged for q in w.ctx._pending]))
            p.opened = True

    def pending() -> bool:
        return bool(worlds and len(worlds[0].ctx._pending))

    run = run_world(body, protocol=HeldUntilOpen, chooser=PassOverF(pending), starvation_bound=2)
    run.sim.unwrap()
    assert out == [(3, [0]), FaultOutcome.RESOLVED]
    assert run.violations == ()
