"""A built-in protocol that extends a hook calls the next one in the MRO with the fault's
own range (found by mutation testing, ``tools/mutation.sh odp``): `TreeProtocol`'s own
``fault_begin`` and `Odp2014`'s ``must_retry`` never read it, but a user protocol may mix
in one that does, between the built-in and its base."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async.addr import PAGE_SIZE as P
from odp_async.addr import AddrRange
from odp_async.device import FaultOutcome
from odp_async.odp.protocols.base import TreeProtocol
from odp_async.odp.protocols.hmm_pool import HmmPool
from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.odp.protocols.odp2014_ctx import Odp2014Ctx
from odp_async.odp.protocols.range_list import RangeList
from odp_async.world import World, run_world

SEEN: list[tuple[str, AddrRange]] = []


class _NotesFaultBegin(TreeProtocol):
    async def fault_begin(self, umem: Any, rng: AddrRange) -> object:
        SEEN.append(("fault_begin", rng))
        return await super().fault_begin(umem, rng)


class _NotesMustRetry(Odp2014):
    def must_retry(self, umem: Any, rng: AddrRange, token: object) -> bool:
        SEEN.append(("must_retry", rng))
        return super().must_retry(umem, rng, token)


class _HmmPool(HmmPool, _NotesFaultBegin):
    name = "t-hmm-pool-noting"


class _RangeList(RangeList, _NotesFaultBegin):
    name = "t-range-list-noting"


class _Odp2014Ctx(Odp2014Ctx, _NotesMustRetry):
    name = "t-odp2014-ctx-noting"


@pytest.mark.parametrize(
    ("protocol", "hook"),
    [(_HmmPool, "fault_begin"), (_RangeList, "fault_begin"), (_Odp2014Ctx, "must_retry")],
)
def test_the_fault_s_range_reaches_the_next_hook_in_the_mro(
    protocol: type[TreeProtocol], hook: str
) -> None:
    SEEN.clear()

    async def body(w: World) -> object:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        return await w.ctx.fault(a, 3 * P, write=True)

    assert run_world(body, protocol=protocol).sim.unwrap() == FaultOutcome.RESOLVED
    assert SEEN
    assert set(SEEN) == {(hook, AddrRange(3 * P, 4 * P))}
