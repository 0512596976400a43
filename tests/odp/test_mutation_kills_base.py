"""The defaults `TreeProtocol` gives a user protocol that overrides nothing, and the
protocol's repr (found lacking by mutation testing: tools/mutation.sh).  The protocol is
written in a module of its own outside the package, as a user's would be."""

from __future__ import annotations

import types
from collections.abc import Callable

from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.errors import WouldBlock
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.world import World, run_world

UserModule = Callable[..., types.ModuleType]
P = PAGE_SIZE

SOURCE = """
from odp_async.odp import TreeProtocol


class Plain(TreeProtocol):
    name = "plain"
    summary = "the skeleton with every default"
"""


def test_the_default_release_marks_regions_dying_and_the_default_nonblock_refuses(
    user_module: UserModule,
) -> None:
    plain = user_module(SOURCE, "plain").Plain
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        seen.append(await w.mm.reap(0, P))  # refused: the range stays mapped
        inv = Invalidation(7, AddrRange(0, P), InvalidateEvent.UNMAP, blockable=False)
        try:
            await w.protocol.invalidate_range_start(inv)
        except WouldBlock as e:
            seen.append(str(e))
        await w.mm.exit()
        seen.append(a.dying)
        seen.append(await w.ctx.fault(a, 0))
        seen.append(repr(w.protocol))

    run = run_world(body, protocol=plain)
    run.sim.unwrap()
    assert seen == [
        False,
        "plain cannot invalidate [0x0, 0x1000) without sleeping",
        True,
        FaultOutcome.FAILED,
        "<protocol plain>",
    ]
    ends = [e.detail for e in run.events if e.kind == "fault-end"]
    assert ends == ["fault A 0x0 failed: A is dying"]


def test_repr_lists_every_option() -> None:
    w = World.build("odp2014-ctx", options={"reset_on_first_mr": False})
    assert repr(w.protocol) == (
        "<protocol odp2014-ctx clamp=True, activation_bumps_seq=True, reset_on_first_mr=False>"
    )
    assert repr(World.build("naive").protocol) == "<protocol naive>"
