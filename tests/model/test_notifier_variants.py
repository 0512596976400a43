"""Issue 10, item 6: the notifier core's variants as options of the mm, today's kernel by
default, each with a scenario in which the historical variant breaks (the explorer finds
it, with the right violation kind) and today's holds over `CLEAN_BUDGET` schedules.

- ``interval_remove_wait``: ``mmu_interval_notifier_remove`` reads ``invalidate_seq``
  under the subscriptions lock (today, commit 319561669a59, v5.18-rc4) or bare
  (``"pre-2022"``): the bare read returns inside the ending invalidation's critical
  section and the caller frees a region that end is about to unlink.
- ``notifier_teardown``: ``mmu_notifier_unregister`` waits for the running callbacks,
  ``mmu_notifier_put`` frees after a grace period; ``_no_release`` followed by a free
  leaves a running callback's chain walk in freed memory.
- ``release_order``: ``tests/model/test_core_variants.py`` (the 2013 fix), re-run here
  through the same helper.
"""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.errors import InvalidArgument
from odp_async.mm import Invalidation
from odp_async.scenarios import Scenario
from odp_async.subscribers import KvmMmu
from odp_async.sync import Completion
from odp_async.world import World

from ._explore import CHOOSERS, assert_clean, assert_found
from .test_core_variants import _exit_vs_unregister

# --- mmu_interval_notifier_remove: the wait read under the lock or not ------------------


class _Started:
    """A subscriber that only tells when an invalidation has started (after ODP's start,
    registered after it), so the deregistration begins inside the invalidation."""

    def __init__(self) -> None:
        self.started = Completion("madvise started")

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.started.complete_all()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        pass

    async def release(self) -> None:
        pass


def _remove_during_invalidation(variant: str) -> Scenario:
    """A is deregistered while a madvise over it runs: its removal is deferred to the
    madvise's end, and deregister_mr frees A once the removal returns."""

    async def body(w: World) -> None:
        w.mm.interval_remove_wait = variant
        await w.mm.mmap(0, 4 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        signal = _Started()
        await w.mm.register_notifier(signal)

        async def deregister() -> None:
            await signal.started.wait()
            await w.ctx.deregister_mr(a)

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, 4 * P, name="madvise")
            tg.start_soon(deregister, name="deregister")

    return Scenario(f"interval-remove-{variant}", "", body, ("madvise", "deregister"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_pre_2022_remove_returns_inside_the_end_and_the_region_is_used_after_free(
    chooser: str,
) -> None:
    result = assert_found(
        _remove_during_invalidation("pre-2022"), chooser, "use-after-free", protocol="interval-seq"
    )
    assert result.failure is not None
    violation = result.failure.violation
    assert violation.tasks == ("madvise",)
    assert "region A" in violation.detail
    assert "tree remove" in violation.detail


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_todays_locked_read_waits_for_the_deferred_list(chooser: str) -> None:
    assert_clean(_remove_during_invalidation("today"), chooser, protocol="interval-seq")


# --- unregister / put / no-release, then free -----------------------------------------------


def _teardown_during_madvise(variant: str) -> Scenario:
    """A KVM-style subscriber is torn down (`AddressSpace.teardown_notifier`) while a
    madvise runs its start callback."""

    async def body(w: World) -> None:
        w.mm.notifier_teardown = variant
        await w.mm.mmap(0, 4 * P)
        kvm = KvmMmu(w.mm, w.checker)
        await kvm.register()

        async def free() -> None:
            pass

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, 4 * P, name="madvise")
            tg.start_soon(w.mm.teardown_notifier, kvm, free, name="driver")

    return Scenario(f"teardown-{variant}", "", body, ("madvise", "driver"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_no_release_then_free_is_a_use_after_free(chooser: str) -> None:
    result = assert_found(_teardown_during_madvise("no-release"), chooser, "use-after-free")
    assert result.failure is not None
    assert result.failure.violation.tasks == ("madvise",)
    assert "chain walk" in result.failure.violation.detail


@pytest.mark.parametrize("variant", ["unregister", "put"])
@pytest.mark.parametrize("chooser", CHOOSERS)
def test_unregister_and_put_are_clean(chooser: str, variant: str) -> None:
    assert_clean(_teardown_during_madvise(variant), chooser)


# --- release versus unregister (2013) -------------------------------------------------------


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_release_order_variants(chooser: str) -> None:
    assert_found(_exit_vs_unregister("pre-2013"), chooser, "use-after-free")
    assert_clean(_exit_vs_unregister("today"), chooser)


# --- defaults and bad values ------------------------------------------------------------------


def test_todays_kernel_is_the_default_everywhere() -> None:
    mm = World.build("odp2014").mm
    assert (mm.nonblock_failure_rule, mm.release_order) == ("today", "today")
    assert (mm.interval_remove_wait, mm.notifier_teardown) == ("today", "unregister")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("interval_remove_wait", "interval_remove_wait must be one of today, pre-2022, got 'x'"),
        ("notifier_teardown", "notifier_teardown must be one of unregister, put, no-release"),
    ],
)
def test_a_bad_variant_is_a_one_line_error(option: str, message: str) -> None:
    mm: Any = World.build("odp2014").mm
    with pytest.raises(InvalidArgument, match=message):
        setattr(mm, option, "x")
