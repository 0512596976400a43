"""Defects a new-user trial of issue 10's model found, each pinned by a test that fails
without its fix: a race the model could not see (a wrong verdict), a double free it
missed, and a raw path with no documented way to say "freed"."""

from __future__ import annotations

from pathlib import Path

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.explore import explore
from odp_async.scenarios import Scenario
from odp_async.scenarios.files import load_scenario
from odp_async.subscribers import KvmMmu
from odp_async.world import World, run_world

from ._explore import CHOOSERS, assert_clean, assert_found

# --- 1. release_order = "pre-2013": the subscriber freed under its running ->release ----

_RELEASE_ORDER_FILE = """
[scenario]
name = "ro-ORDER"
summary = "exit's release walk races an unregister"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mm_option", option = "release_order", value = "ORDER" },
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "populate", start = 0x0, pages = 4 },
    { op = "subscribe", sub = "kvm", kind = "kvm" },
]

[[actor]]
name = "exit"
ops = [{ op = "exit" }]

[[actor]]
name = "driver"
ops = [{ op = "unsubscribe", sub = "kvm" }]
"""


def _release_order_file(tmp_path: Path, order: str) -> Scenario:
    path = tmp_path / f"ro_{order}.toml"
    path.write_text(_RELEASE_ORDER_FILE.replace("ORDER", order))
    return load_scenario(path)


def test_pre_2013_release_order_frees_the_subscriber_under_its_release(tmp_path: Path) -> None:
    # The built-in KVM subscriber, torn down by the file's `unsubscribe`: no hand-written
    # free, so only the mm can see that ->release was still running.
    result = explore(_release_order_file(tmp_path, "pre-2013"), "odp2014", chooser="dfs")
    assert result.failure is not None, f"nothing found in {result.schedules} schedules"
    v = result.failure.violation
    assert v.kind == "use-after-free", v.describe()
    assert v.tasks == ("exit",)
    assert "->release" in v.detail


def test_todays_release_order_frees_the_subscriber_after_its_release(tmp_path: Path) -> None:
    result = explore(_release_order_file(tmp_path, "today"), "odp2014", chooser="dfs")
    assert result.failure is None, result.failure.describe()
    assert result.complete


# --- 2. a subscriber torn down twice is freed twice ------------------------------------


@pytest.mark.parametrize("teardown", ["unregister", "put", "no-release"])
def test_a_subscriber_torn_down_twice_is_a_double_free(teardown: str) -> None:
    async def body(w: World) -> None:
        w.mm.notifier_teardown = teardown
        await w.mm.mmap(0, P)
        kvm = KvmMmu(w.mm, w.checker)
        await kvm.register()

        async def free() -> None:
            pass

        await w.mm.teardown_notifier(kvm, free)
        await w.mm.teardown_notifier(kvm, free)
        await w.workqueue.flush()

    run = run_world(body)
    assert run.sim.error is None
    assert [v.kind for v in run.violations] == ["double-free"], run.violations
    assert "KvmMmu" in run.violations[0].detail


def test_two_subscribers_torn_down_once_each_are_clean() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, P)
        subs = [KvmMmu(w.mm, w.checker, f"kvm{i}") for i in range(2)]
        for sub in subs:
            await sub.register()

        async def free() -> None:
            pass

        for sub in subs:
            await w.mm.teardown_notifier(sub, free)

    run = run_world(body)
    assert run.sim.error is None
    assert run.violations == ()
    assert [e.kind for e in run.events].count("free") == 2


# --- 3. the raw unregister_no_release path: free_subscriber ----------------------------


def _no_release_then_free(wait: bool) -> Scenario:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        for page in range(4):
            await w.mm.cpu_fault(page * P, write=True)
        kvm = KvmMmu(w.mm, w.checker)
        await kvm.register()

        async def driver() -> None:
            await w.mm.unregister_notifier_no_release(kvm)
            if wait:
                await w.mm.synchronize_notifiers()
            w.mm.free_subscriber(kvm, "kfree(kvm)")

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, 4 * P, name="madvise")
            tg.start_soon(driver, name="driver")

    return Scenario(f"no-release-{wait}", "", body, ("madvise", "driver"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_no_release_then_free_subscriber_is_a_use_after_free(chooser: str) -> None:
    result = assert_found(_no_release_then_free(wait=False), chooser, "use-after-free")
    assert result.failure is not None
    assert "freed by kfree(kvm)" not in result.failure.violation.detail
    assert "kfree(kvm)" in result.failure.violation.detail


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_no_release_synchronize_then_free_subscriber_is_clean(chooser: str) -> None:
    assert_clean(_no_release_then_free(wait=True), chooser)
