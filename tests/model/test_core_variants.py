"""Issue 10, item 6 (part): the notifier core's unregister variants and deferred free
(``mm/mmu_notifier.c``, v6.6): ``mmu_notifier_unregister`` waits for running callbacks;
``mmu_notifier_unregister_no_release`` does not, so the caller must
``mmu_notifier_synchronize`` before freeing, or free with ``mmu_notifier_put`` (call_srcu).
"""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.check import Checker
from odp_async.errors import InvalidArgument
from odp_async.mm import AddressSpace, Invalidation, PhysicalMemory
from odp_async.scenarios import Scenario
from odp_async.world import World

from ._explore import CHOOSERS, assert_clean, assert_found


class Tracked:
    """A subscriber whose callbacks use its own (freeable) state."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        await rt.checkpoint("in start")
        self.checker.used("subscriber T", "invalidate_range_start")

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.checker.used("subscriber T", "invalidate_range_end")

    async def release(self) -> None:
        self.checker.used("subscriber T", "release")


def _teardown(mode: str) -> Scenario:
    """A driver tears its subscriber down while a madvise runs its callbacks."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        sub = Tracked(w.checker)
        await w.mm.register_notifier(sub)

        async def free() -> None:
            w.checker.freed("subscriber T", f"freed ({mode})")

        async def driver() -> None:
            if mode == "unregister":
                await w.mm.unregister_notifier(sub)
                await free()
            elif mode == "no-release":
                await w.mm.unregister_notifier_no_release(sub)
                await free()
            elif mode == "no-release+synchronize":
                await w.mm.unregister_notifier_no_release(sub)
                await w.mm.synchronize_notifiers()
                await free()
            else:
                w.mm.put_notifier(sub, free)

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, 4 * P, name="madvise")
            tg.start_soon(driver, name="driver")

    return Scenario(f"teardown-{mode}", _teardown.__doc__ or "", body, ("madvise", "driver"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_freeing_right_after_unregister_no_release_is_a_use_after_free(chooser: str) -> None:
    result = assert_found(_teardown("no-release"), chooser, "use-after-free")
    assert result.failure is not None
    assert result.failure.violation.tasks == ("madvise",)


@pytest.mark.parametrize("mode", ["unregister", "no-release+synchronize", "put"])
@pytest.mark.parametrize("chooser", CHOOSERS)
def test_waiting_for_the_callbacks_or_a_deferred_free_is_clean(chooser: str, mode: str) -> None:
    assert_clean(_teardown(mode), chooser)


def test_put_notifier_needs_a_workqueue() -> None:
    checker = Checker()
    mm = AddressSpace(PhysicalMemory(checker), checker)

    async def free() -> Any:
        return None

    with pytest.raises(InvalidArgument, match="built without a workqueue"):
        mm.put_notifier(Tracked(checker), free)


# --- release versus unregister: the 2013 ordering fix ----------------------------------------


class SlowRelease(Tracked):
    async def release(self) -> None:
        await rt.checkpoint("in release")
        self.checker.used("subscriber T", "release")


def _exit_vs_unregister(order: str) -> Scenario:
    """The process exits while its driver unregisters (and then frees) a subscriber."""

    async def body(w: World) -> None:
        w.mm.release_order = order
        await w.mm.mmap(0, 4 * P)
        sub = SlowRelease(w.checker)
        await w.mm.register_notifier(sub)

        async def driver() -> None:
            await w.mm.unregister_notifier(sub)
            w.checker.freed("subscriber T", "freed after unregister")

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.exit, name="exit")
            tg.start_soon(driver, name="driver")

    return Scenario(f"exit-vs-unregister-{order}", "", body, ("exit", "driver"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_pre_2013_unregister_returns_while_exit_still_runs_release(chooser: str) -> None:
    result = assert_found(_exit_vs_unregister("pre-2013"), chooser, "use-after-free")
    assert result.failure is not None
    assert result.failure.violation.tasks == ("exit",)


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_todays_release_order_is_clean(chooser: str) -> None:
    assert_clean(_exit_vs_unregister("today"), chooser)


def test_a_bad_release_order_is_a_one_line_error() -> None:
    world = World.build("odp2014")
    with pytest.raises(InvalidArgument, match="release_order must be one of today, pre-2013"):
        world.mm.release_order = "2012"
