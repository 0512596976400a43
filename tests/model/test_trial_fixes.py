"""Defects a new-user trial of issue 10's model found, each pinned by a test that fails
without its fix: a race the model could not see (a wrong verdict), a double free it
missed, and a raw path with no documented way to say "freed"."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.cli import ExitCode
from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from odp_async.explore.target import Target
from odp_async.scenarios import Scenario
from odp_async.scenarios.files import load_scenario
from odp_async.subscribers import KvmMmu
from odp_async.sync import MAX_POOL_SIZE, Completion, Mutex, no_sleep
from odp_async.world import World, run_world
from tests._usermod import forget, write_user_module

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


# --- 4. sleep-in-nonblock: a non-blockable start that may sleep --------------------------

SLEEPY = """
from odp_async.errors import WouldBlock
from odp_async.subscribers import Subscriber
from odp_async.sync import Mutex


class Sleepy(Subscriber):
    \"\"\"Its page-table update sleeps under a mutex; a non-blockable start must trylock.\"\"\"

    trylock_when_nonblock = True

    def __init__(self, mm, checker, name="sleepy"):
        super().__init__(mm, checker, name)
        self.pt_lock = Mutex(f"{name}.pt_lock")

    async def invalidate_range_start(self, inv):
        if inv.blockable or not self.trylock_when_nonblock:
            await self.pt_lock.acquire()
        else:
            self.pt_lock.acquire_nowait()  # raises WouldBlock: the refusal
        self.zap(inv.range)
        self.pt_lock.release()

    async def invalidate_range_end(self, inv):
        pass

    async def release(self):
        async with self.pt_lock:
            self.zap_all()


class SleepsInNonblock(Sleepy):
    \"\"\"The mistake: takes the mutex even for a non-blockable range.\"\"\"

    trylock_when_nonblock = False
"""

SLEEPY_FILE = """
[scenario]
name = "sleepy-CLASS"
summary = "the OOM reaper against a subscriber whose start may sleep"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "populate", start = 0x0, pages = 4 },
    { op = "subscribe", sub = "dev", kind = "MODULE:CLASS" },
    { op = "subscribe", sub = "kvm", kind = "kvm" },
]

[[actor]]
name = "oom"
ops = [{ op = "reap", start = 0x0, pages = 4 }]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x0, pages = 4 }]
"""


@pytest.fixture
def sleepy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = write_user_module(tmp_path, SLEEPY, "sleepy", monkeypatch)
    yield name
    forget(name)


def _sleepy_file(tmp_path: Path, module: str, cls: str) -> Scenario:
    path = tmp_path / f"{cls}.toml"
    path.write_text(SLEEPY_FILE.replace("MODULE", module).replace("CLASS", cls))
    return load_scenario(path)


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_nonblockable_start_that_takes_a_mutex_is_sleep_in_nonblock(
    tmp_path: Path, sleepy: str, chooser: str
) -> None:
    result = assert_found(
        _sleepy_file(tmp_path, sleepy, "SleepsInNonblock"), chooser, "sleep-in-nonblock"
    )
    assert result.failure is not None
    v = result.failure.violation
    assert v.tasks == ("oom",)
    assert "Mutex 'dev.pt_lock'" in v.detail
    assert "non-blockable" in v.detail


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_trylock_start_and_kvms_spinlock_are_clean(
    tmp_path: Path, sleepy: str, chooser: str
) -> None:
    # KVM's mmu_lock is a spinlock (Mutex(spins=True)): a non-blockable start may take it.
    assert_clean(_sleepy_file(tmp_path, sleepy, "Sleepy"), chooser)


def test_no_sleep_flags_every_wait_of_its_own_task_only() -> None:
    seen: list[str] = []

    async def body(w: World) -> None:
        lock, spin = Mutex("m"), Mutex("s", spins=True)
        done = Completion("done")

        async def child() -> None:
            async with lock:  # inherits the context, not the rule
                done.complete_all()

        with no_sleep(lambda p: seen.append(repr(p))):
            async with spin:
                pass
            async with rt.task_group() as tg:
                tg.start_soon(child, name="child")
                await done.wait()
        async with lock:  # after the section
            pass

    run = run_world(body)
    assert run.sim.error is None
    # the Completion wait only: not the spinlock, not the child's mutex, not after
    assert len(seen) == 1, seen
    assert seen[0].startswith("<Completion 'done'"), seen


# --- 8. a protocol option out of its range is named, before anything runs ---------------


@pytest.mark.parametrize("size", [0, MAX_POOL_SIZE + 1])
def test_a_pool_size_out_of_range_is_refused_naming_the_option(size: int) -> None:
    with pytest.raises(
        InvalidArgument, match=f"option 'pool_size' must be from 1 to 1048576, got {size}"
    ):
        World.build("hmm-pool", options={"pool_size": size})


@pytest.mark.parametrize("size", ["0", "-1", "1048577"])
def test_the_cli_refuses_pool_size_out_of_range_before_exploring(size: str) -> None:
    """The option's own range, whichever end: not -o's -1048576 to 1048576 (trial)."""
    argv = ["explore", "registration-race", "--protocol", "hmm-pool", "-o", f"pool_size={size}"]
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == ExitCode.USAGE
    assert "exploring" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "odp-async: error: protocol 'hmm-pool' option 'pool_size' must be from 1 to 1048576, "
        f"got {size}"
    ]


def test_a_general_program_given_a_protocol_is_named_as_typed() -> None:
    for typed in ("classic:lost-update", "lost-update"):
        with pytest.raises(
            InvalidArgument,
            match=f"^scenario '{typed}' is a general program; it takes no protocol",
        ):
            Target.resolve(typed, "naive")
