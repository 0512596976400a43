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


RETRY_ONCE = """
from odp_async.odp import TreeProtocol


class RetryOnce(TreeProtocol):
    name = "retry-once"
    summary = "the skeleton with a commit_locked of its own; its first commit retries"
    log = []

    def read_token(self, umem):
        return ("token", umem.seq)

    def must_retry(self, umem, rng, token):
        RetryOnce.log.append(("must_retry", rng, token))
        return sum(1 for entry in RetryOnce.log if entry[0] == "must_retry") == 1

    def commit_locked(self, umem, rng, token, pages):
        done = super().commit_locked(umem, rng, token, pages)
        RetryOnce.log.append(("commit", done, umem.table.get(0) is not None))
        return done
"""


def test_a_sync_commit_locked_retries_without_installing_then_installs(
    user_module: UserModule,
) -> None:
    """`TreeProtocol.commit_locked` (a user's override calls it): the check gets the
    fault's range and token; a refused check installs nothing and says retry (False); a
    passed one installs and says so (True).  A small step bound: a commit that never
    passes fails fast."""
    retry_once = user_module(RETRY_ONCE, "retry_once").RetryOnce
    retry_once.log.clear()
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        seen.append(await w.ctx.fault(a, 0, write=True))

    run = run_world(body, protocol=retry_once, max_steps=20_000)
    run.sim.unwrap()
    assert seen == [FaultOutcome.RESOLVED]
    page = AddrRange(0, P)
    assert retry_once.log == [
        ("must_retry", page, ("token", 0)),
        ("commit", False, False),
        ("must_retry", page, ("token", 0)),
        ("commit", True, True),
    ]


class _Named:
    name = "user-proto"


class _Unnamed:
    pass


def test_a_hook_s_wrong_return_is_refused_word_for_word() -> None:
    """`hook_returned`: the protocol's name (``'?'`` for a class without one), its
    module and class, the hook, the value and its type; the hint only for None."""
    from odp_async.odp.protocols.base import hook_returned

    where = f"{__name__}:_Named"
    none = hook_returned(_Named(), "must_retry", None, "a bool (True: retry)")  # type: ignore[arg-type]
    assert str(none) == (
        f"protocol 'user-proto' ({where}): must_retry() returned None of type NoneType; "
        "expected a bool (True: retry) (a hook that forgets `return` gives None)"
    )
    one = hook_returned(_Unnamed(), "holds_back", 1, "a bool")  # type: ignore[arg-type]
    assert str(one) == (
        f"protocol '?' ({__name__}:_Unnamed): holds_back() returned 1 of type int; expected a bool"
    )
