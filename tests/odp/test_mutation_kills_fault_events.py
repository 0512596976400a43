"""The fault path's events: each attempt and each way a fault ends is recorded under the
fault's key and address (found lacking by mutation testing: tools/mutation.sh).  A fault
can be aborted at its begin, its commit or its wait; the probes below make the region die
at the chosen point, as a concurrent mm exit would."""

from __future__ import annotations

import pytest

from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import PinnedPage
from odp_async.odp import Umem
from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.world import World, run_world

P = PAGE_SIZE
KEY = "fault A 0x3000"


class _DiesBeforeCommit(Odp2014):
    name = "odp2014-dies-before-commit"

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        umem.dying = True
        return await super().fault_commit(umem, rng, token, pages)


class _DiesWhileRetrying(Odp2014):
    name = "odp2014-dies-while-retrying"

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        umem.dying = True
        return True


@pytest.mark.parametrize(
    ("protocol", "exit_first", "ends"),
    [
        ("odp2014", False, [("fault-end", f"{KEY} resolved")]),
        ("odp2014", True, [("fault-end", f"{KEY} failed: A is dying")]),
        ("naive", True, [("fault-end", f"{KEY} failed: get_user_pages: the mm has exited")]),
        (_DiesBeforeCommit, False, [("fault-end", f"{KEY} failed: A is dying")]),
        (
            _DiesWhileRetrying,
            False,
            [("fault-end", f"{KEY} must retry"), ("fault-end", f"{KEY} failed: A is dying")],
        ),
    ],
)
def test_each_way_a_fault_ends_is_recorded_under_its_key_and_address(
    protocol: str | type[Odp2014], exit_first: bool, ends: list[tuple[str, str]]
) -> None:
    out: list[FaultOutcome] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        if exit_first:
            await w.mm.exit()
        out.append(await w.ctx.fault(a, 3 * P + 5, write=True))

    run = run_world(body, protocol=protocol)
    run.sim.unwrap()
    resolved = ends[-1][1].endswith("resolved")
    assert out == [FaultOutcome.RESOLVED if resolved else FaultOutcome.FAILED]
    events = [(e.kind, e.key, e.detail, e.address) for e in run.events if "fault" in e.kind]
    assert events == [("fault-begin", KEY, f"{KEY} attempt 1", 3 * P)] + [
        (kind, KEY, detail, 3 * P) for kind, detail in ends
    ]
