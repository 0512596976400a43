"""The subscription's lifetime under `TreeProtocol`'s registry (`remove`, `_take_out`, and
`__init__`'s wait for an unregister under way), found unpinned by mutation testing
(tools/mutation.sh): the last region's deregistration, and only it, unregisters the
subscription, with ``umem_rwsem`` held for read ("2014") or not held ("unlocked"), and a
registration meeting an unregister under way waits for it.  The protocols are a user's
module outside the package."""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE
from odp_async.world import World, run_world

UserModule = Callable[..., types.ModuleType]
P = PAGE_SIZE

SOURCE = """
from odp_async import _runtime as rt
from odp_async.odp import TreeProtocol


class Logged(TreeProtocol):
    name = "logged-2014"
    summary = "the skeleton, logging its release, its removes and its options"
    OPTIONS = {"tag": "none"}

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        self.log = []
        self.in_release = False

    def on_remove(self, umem):
        self.log.append(("on_remove", umem.name, self.ctx.odp_mrs_count))

    async def release(self):
        held = self.ctx.umem_rwsem.statistics()
        self.log.append(("release", len(held.readers), held.writer is None, self.unregistering))
        self.in_release = True
        await rt.checkpoint("in release")
        await super().release()


class LoggedUnlocked(Logged):
    name = "logged-unlocked"
    LAST_MR_UNREGISTER = "unlocked"
"""


def _world_body(log: list[object], *, race: bool) -> Callable[[World], Any]:
    async def body(w: World) -> None:
        p: Any = w.protocol
        sub = w.ctx.subscription
        await w.mm.mmap(0, 16 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        log.append(("subscribed", sub in w.mm._subs, w.ctx.odp_mrs_count))
        await w.ctx.deregister_mr(a)
        log.append(("after A", sub in w.mm._subs, w.ctx.odp_mrs_count))
        if not race:
            await w.ctx.deregister_mr(b)
            log.append(("after B", sub in w.mm._subs, w.ctx.odp_mrs_count))
            await w.ctx.register_mr(8 * P, 4 * P, name="C")
        else:

            async def register() -> None:
                await w.ctx.register_mr(8 * P, 4 * P, name="C")

            async with rt.task_group() as tg:
                tg.start_soon(w.ctx.deregister_mr, b, name="dereg")
                tg.start_soon(register, name="reg")
        log.append(("after C", sub in w.mm._subs, w.ctx.odp_mrs_count, p.unregistering))
        log.extend(p.log)

    return body


class Prefer:
    """The task named `first` until `switch()`, then the other, then anyone."""

    def __init__(self, first: str, switch: Callable[[], bool]) -> None:
        self.first = first
        self.switch = switch

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        names = [t.name for t in runnable]
        want = (
            self.first if not self.switch() else next((n for n in names if n != self.first), None)
        )
        return names.index(want) if want in names else 0

    def draw(self, n: int, label: object) -> int:
        return 0


@pytest.mark.parametrize(("cls", "readers"), [("Logged", 1), ("LoggedUnlocked", 0)])
def test_only_the_last_deregistration_unregisters_and_a_new_first_registers_again(
    user_module: UserModule, cls: str, readers: int
) -> None:
    protocol = getattr(user_module(SOURCE, "treelife"), cls)
    log: list[object] = []
    run = run_world(_world_body(log, race=False), protocol=protocol, options={"tag": "t"})
    run.sim.unwrap()
    assert run.violations == ()
    unregistering = readers == 0
    assert log == [
        ("subscribed", True, 2),
        ("after A", True, 1),
        ("after B", False, 0),
        ("after C", True, 1, False),
        ("on_remove", "A", 1),
        ("on_remove", "B", 0),
        ("release", readers, True, unregistering),
    ]


def test_options_reach_the_protocol(user_module: UserModule) -> None:
    protocol = user_module(SOURCE, "treeopts").Logged
    w = World.build(protocol, options={"tag": "mine"})
    assert repr(w.protocol) == "<protocol logged-2014 tag='mine'>"


def test_a_registration_meeting_the_unregister_under_way_waits_for_it(
    user_module: UserModule,
) -> None:
    """ "unlocked": the last region B's deregistration is inside ``->release`` when C's
    registration takes ``umem_rwsem``: C waits for the unregister, then registers the
    subscription again (C is the first region)."""
    protocol = user_module(SOURCE, "treerace").LoggedUnlocked
    log: list[object] = []
    worlds: list[World] = []

    def body(w: World) -> Any:
        worlds.append(w)
        return _world_body(log, race=True)(w)

    def switch() -> bool:
        return bool(worlds) and bool(getattr(worlds[0].protocol, "in_release", False))

    run = run_world(body, protocol=protocol, chooser=Prefer("dereg", switch))
    run.sim.unwrap()
    assert run.violations == ()
    assert log == [
        ("subscribed", True, 2),
        ("after A", True, 1),
        ("after C", True, 1, False),
        ("on_remove", "A", 1),
        ("on_remove", "B", 0),
        ("release", 0, True, True),
    ]


STUCK = """
from odp_async.odp import TreeProtocol
from odp_async.sync import WaitQueue


class Stuck(TreeProtocol):
    name = "stuck-release"
    summary = "unregisters outside umem_rwsem; its release never returns"
    LAST_MR_UNREGISTER = "unlocked"

    async def release(self):
        await WaitQueue("never").park()
"""


def test_a_registration_stuck_behind_the_unregister_is_named_in_the_deadlock(
    user_module: UserModule,
) -> None:
    protocol = user_module(STUCK, "treestuck").Stuck

    async def body(w: World) -> None:
        await w.mm.mmap(0, 16 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        async with rt.task_group() as tg:
            tg.start_soon(w.ctx.deregister_mr, b, name="dereg")
            await rt.checkpoint("let dereg reach the unregister")
            await rt.checkpoint("again")
            await w.ctx.register_mr(8 * P, 4 * P, name="C")

    run = run_world(body, protocol=protocol)
    assert [(v.kind, v.detail) for v in run.violations] == [
        (
            "deadlock",
            "main waits for WaitQueue 'subscription unregistered'; "
            "dereg waits for WaitQueue 'never'",
        )
    ]
