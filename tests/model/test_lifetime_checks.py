"""Issue 10, item 8: the lifetime and pairing checks (``insert-after-release``,
``lock-held-at-exit``; ``use-after-free``, ``double-free`` and ``double-queue`` are shown
with the mm, the workqueue and SRCU in the sibling test modules)."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.check import VIOLATION_KINDS
from odp_async.mm import Invalidation
from odp_async.scenarios import Scenario
from odp_async.scenarios.files import ScenarioFileError, load_scenario
from odp_async.srcu import Srcu
from odp_async.sync import Completion
from odp_async.world import World, run_world

from ._explore import CHOOSERS, assert_clean, assert_found


def test_the_new_kinds_are_listed() -> None:
    for kind in (
        "use-after-free",
        "double-free",
        "insert-after-release",
        "lock-held-at-exit",
        "double-queue",
    ):
        assert kind in VIOLATION_KINDS


class Recorder:
    """A subscriber of one's own: it only counts its callbacks."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __repr__(self) -> str:
        return "<Recorder>"

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.calls.append("start")

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.calls.append("end")

    async def release(self) -> None:
        self.calls.append("release")


# --- insert-after-release -------------------------------------------------------------------


def _register_vs_exit(fixed: bool) -> Scenario:
    """A driver thread registers a subscriber on a process's mm while the process exits:
    with no reference of its own (the mistake: nothing will ever send it release), or under
    ``mmget_not_zero`` .. ``mmput`` (the fix: it registers before the teardown or not at
    all, as ``mmu_notifier_register``'s callers must)."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        sub = Recorder()

        async def driver() -> None:
            await rt.checkpoint("driver")
            if not fixed:
                await w.mm.register_notifier(sub)
            elif w.mm.mmget_not_zero():
                try:
                    await w.mm.register_notifier(sub)
                finally:
                    await w.mm.mmput()

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.exit, name="exit")
            tg.start_soon(driver, name="driver")

    name = "register-with-ref" if fixed else "register-without-ref"
    return Scenario(name, _register_vs_exit.__doc__ or "", body, ("exit", "driver"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_registering_without_an_mm_reference_is_found(chooser: str) -> None:
    result = assert_found(_register_vs_exit(False), chooser, "insert-after-release")
    assert result.failure is not None
    assert result.failure.violation.tasks == ("driver",)
    assert result.failure.violation.detail == (
        "subscriber <Recorder> inserted into an mm without holding an mm_users reference"
    )


def test_a_task_without_a_reference_of_its_own_may_not_register_on_a_live_mm() -> None:
    """After the process exited, another task's ``mmget`` keeps the mm alive, but only
    for that task: a task holding no reference that registers is the same mistake as
    registering on a dead mm, and nothing is registered."""

    async def body(w: World) -> bool:
        w.mm.mmget()
        await w.mm.exit()

        sub = Recorder()

        async def driver() -> None:
            await w.mm.register_notifier(sub)

        async with rt.task_group() as tg:
            tg.start_soon(driver, name="driver")
        registered = w.mm.is_registered(sub)
        await w.mm.mmput()
        return registered

    run = run_world(body)
    assert run.sim.unwrap() is False
    assert [(v.kind, v.tasks, v.detail) for v in run.violations] == [
        (
            "insert-after-release",
            ("driver",),
            "subscriber <Recorder> inserted into an mm without holding an mm_users reference",
        )
    ]


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_registering_under_mmget_not_zero_is_clean(chooser: str) -> None:
    assert_clean(_register_vs_exit(True), chooser)


def test_a_registration_that_waited_past_the_start_of_the_release_walk_is_found() -> None:
    """The registrar passes the reference check while the process lives, then waits for
    mmap_sem (a reader holds it); the process exits meanwhile (exit_mmap takes no
    mmap_sem here); the registration lands inside the walk: too late all the same."""

    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 4 * P)
        late = Recorder()
        reading, exited = Completion("reading"), Completion("exited")

        async def reader() -> None:
            async with w.mm.mmap_sem.read_locked():
                reading.complete_all()
                await exited.wait()

        async def registrar() -> None:
            await reading.wait()
            await w.mm.register_notifier(late)

        async def exiter() -> None:
            await reading.wait()
            while not w.mm.mmap_sem.statistics().writers_waiting:
                await rt.checkpoint("until the registrar waits")
            await w.mm.exit()
            exited.complete_all()

        async with rt.task_group() as tg:
            tg.start_soon(reader, name="reader")
            tg.start_soon(registrar, name="registrar")
            tg.start_soon(exiter, name="exit")
        return late.calls

    run = run_world(body, protocol="odp2014")
    assert run.kinds == ("insert-after-release",)
    assert run.violations[0].tasks == ("registrar",)
    assert run.violations[0].detail == (
        "subscriber <Recorder> inserted after the mm's release walk began"
    )
    assert run.sim.value == []  # it never gets a release


# --- lock-held-at-exit ----------------------------------------------------------------------


def _early_return(fixed: bool) -> Scenario:
    """A fault-like path takes A's lock and returns early when the region is dying -- on
    that path without unlocking (the mistake: only a racing deregistration takes it) or
    with the unlock (the fix)."""

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")

        async def fault() -> None:
            await a.mutex.acquire()
            if a.dying:
                if fixed:
                    a.mutex.release()
                return
            a.mutex.release()

        async def kill() -> None:
            async with a.mutex:
                a.dying = True

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="fault")
            tg.start_soon(kill, name="kill")

    name = "early-return-unlocks" if fixed else "early-return-keeps-lock"
    return Scenario(name, _early_return.__doc__ or "", body, ("fault", "kill"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_return_path_that_keeps_the_lock_is_found(chooser: str) -> None:
    result = assert_found(_early_return(False), chooser, "lock-held-at-exit")
    assert result.failure is not None
    violation = result.failure.violation
    assert violation.tasks == ("fault",)
    assert violation.detail == "task fault finished while holding mutex A.umem_mutex"


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_the_return_path_that_unlocks_is_clean(chooser: str) -> None:
    assert_clean(_early_return(True), chooser)


def test_read_locks_and_srcu_sections_held_at_exit_are_found() -> None:
    async def body(w: World) -> None:
        srcu = Srcu("my_srcu")
        w.track(srcu)

        async def reader() -> None:
            await w.ctx.umem_rwsem.acquire_read()
            srcu.read_lock()

        async with rt.task_group() as tg:
            tg.start_soon(reader, name="reader")

    run = run_world(body, protocol="odp2014")
    assert [v.detail for v in run.violations] == [
        "task reader finished while holding umem_rwsem (read)",
        "task reader finished while holding an my_srcu read section",
    ]


def test_a_scenario_files_own_lock_never_unlocked_is_a_usage_error(
    tmp_path: pathlib.Path,
) -> None:
    """The file's mistake (trial 18b, finding 4), not a ``lock-held-at-exit`` verdict of
    the protocol: the reader refuses it, naming the lock step."""
    path = tmp_path / "forgot-unlock.toml"
    path.write_text(
        textwrap.dedent(
            """
            [scenario]
            name = "forgot-unlock"
            summary = "an actor takes A's lock and never lets go"

            [setup]
            ops = [
                { op = "mmap", start = 0x0, pages = 4 },
                { op = "register", mr = "A", start = 0x0, pages = 4 },
            ]

            [[actor]]
            name = "worker"
            ops = [{ op = "lock", mr = "A" }]
            """
        )
    )
    with pytest.raises(ScenarioFileError, match="never unlocks it") as info:
        load_scenario(path)
    assert info.value.key == "actor[0].ops[0].op"
