"""A tracked class nobody holds any more is collected, even after tracking runs hooked it.

Every tracking run hooks every live tracked class, so a class kept alive by the hooks'
own registry would be hooked at every later run: in a long process (a test session, a
service exploring user modules) each run's start and end would cost more with every
class ever made.
"""

from __future__ import annotations

import gc
import weakref

import attrs

from odp_async import _runtime as rt
from odp_async import tracked as tracked_module
from odp_async._runtime import sim
from odp_async.explore.dpor import DporChooser
from odp_async.tracked import tracked


def _made_and_searched() -> weakref.ref[type]:
    @tracked
    @attrs.define(eq=False)
    class Box:
        value: int = 0

    box = Box()

    async def main() -> None:
        async def one() -> None:
            await rt.checkpoint()
            box.value += 1

        async with rt.task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)

    chooser = DporChooser(noted_only=True)
    while chooser.has_more:
        sim.run(main, chooser=chooser)
    assert box.value >= 2  # two increments per run
    return weakref.ref(Box)


def test_a_class_nobody_holds_is_collected_and_no_longer_hooked() -> None:
    gone = _made_and_searched()
    gc.collect()
    assert gone() is None
    assert all(
        klass.__qualname__ != "_made_and_searched.<locals>.Box"
        for klass, _ in tracked_module._hooked_classes()
    )
