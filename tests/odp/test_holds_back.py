"""`OdpProtocol.holds_back`: what each protocol keeps waiting, which is all the fault
path's starvation bound counts (see "Liveness" in `odp_async.odp.ucontext`; the
exploration over the storm cells is in test_liveness.py)."""

from __future__ import annotations

import pytest

from odp_async.addr import PAGE_SIZE
from odp_async.mm import Invalidation
from odp_async.odp import PROTOCOLS, OdpProtocol, resolve_protocol
from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.world import World, run_world

P = PAGE_SIZE


HELD = {"naive": (False, False), "kvm-seq": (True, True)}


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_holds_back_names_what_the_protocol_keeps_waiting(protocol: str) -> None:
    """During an invalidation of A, a fault on A is held back; one on B (elsewhere) is
    not, except under kvm-seq (one context-wide count) and naive (nothing waits)."""
    base = resolve_protocol(protocol)
    seen: list[tuple[bool, bool]] = []

    class Probe(base):  # type: ignore[valid-type,misc]
        async def invalidate_range_start(self, inv: Invalidation) -> None:
            await super().invalidate_range_start(inv)
            a, b = self.ctx.umems["A"], self.ctx.umems["B"]
            seen.append((self.holds_back(a, a.range), self.holds_back(b, b.range)))

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.mm.mmap(16 * P, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        b = await w.ctx.register_mr(16 * P, 8 * P, name="B")
        await w.mm.cpu_fault(0, write=True)
        await w.mm.madvise_dontneed(0, 8 * P)
        # and once it ended, nothing is held back
        seen.append((w.protocol.holds_back(w.ctx.umems["A"], b.range), False))

    run_world(body, protocol=Probe).sim.unwrap()
    assert seen == [HELD.get(protocol, (True, False)), (False, False)]


def test_a_protocol_without_holds_back_is_observed_not_asked() -> None:
    """The base's default, kept (for protocols written outside the package), is not
    asked: the core observes the fault instead (`UContext.observes`; the verdicts on the
    storm cells are in test_holds_back_observed.py).  Called directly it says True."""
    seen: list[tuple[bool, bool]] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 8 * P, name="B")
        seen.append((w.ctx.observes, w.protocol.holds_back(b, b.range)))

    for protocol in (_Everything, Odp2014):
        run_world(body, protocol=protocol).sim.unwrap()
    assert seen == [(True, True), (False, False)]


class _Everything(Odp2014):
    name = "everything"
    holds_back = OdpProtocol.holds_back  # type: ignore[assignment]
