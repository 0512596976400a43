"""No `complete` claim over state the footprints cannot see (new-user trial 16a, f07, f06).

- f07: a program without the noted-only promise reads a plain dict under one lock and
  writes it back under another.  Every step starts at an acquire or a wait; while such a
  step was taken to touch only that primitive (``trust_primitives``), DPOR, dfs and the
  default portfolio claimed ``complete: N traces, no violation``.  The code after the
  acquire runs in the same step and may touch anything: without the promise the step is
  unknown.  The same holds for `SharedCell.load` and ``store``: the caller's code after
  them is in the step, so their label no longer declares the access alone.
- f06: a `SharedCell` holding a plain list, appended to in place through ``get()``, noted
  only a read of the cell (DPOR: ``complete: 1 trace``).  What ``get`` hands out is now
  judged by the tracked fields' allow-list: a plain container makes the step unknown.

Each program is a user module outside the package, explored through `check`/`explore`,
the command line (a fresh process) and the pytest plugin's default ``@explore_test``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async import shared as shared_module
from odp_async._runtime import sim
from odp_async._runtime.footprint import declared_footprint
from odp_async.explore import SharedCell, check, explore
from tests._usermod import pythonpath_env, write_user_module
from tests.conftest import UserModule

pytest_plugins = ["pytester"]

WRONG_LOCKS = """
import odp_async as oa


async def wrong_locks_tail() -> None:
    box = {"n": 0}
    a_up, b_up = oa.Completion("a-up"), oa.Completion("b-up")

    async def bump(me_up, other_up, read_lock, write_lock) -> None:
        me_up.complete_all()
        await other_up.wait()
        async with read_lock:
            seen = box["n"]
        async with write_lock:
            box["n"] = seen + 1
        await me_up.wait()

    async with oa.task_group() as tg:
        tg.start_soon(bump, a_up, b_up, oa.Mutex("a-read"), oa.Mutex("a-write"), name="a")
        tg.start_soon(bump, b_up, a_up, oa.Mutex("b-read"), oa.Mutex("b-write"), name="b")
    assert box["n"] == 2, f"lost update: {box['n']}"


async def busy_wrong_locks() -> None:
    box = {"n": 0}
    a_up, b_up = oa.Completion("a-up"), oa.Completion("b-up")

    async def bump(me_up, other_up, busy_lock, read_lock, write_lock) -> None:
        me_up.complete_all()
        await other_up.wait()
        for _ in range(30):
            async with busy_lock:
                pass
        async with read_lock:
            seen = box["n"]
        async with write_lock:
            box["n"] = seen + 1
        await me_up.wait()

    async with oa.task_group() as tg:
        tg.start_soon(bump, a_up, b_up, oa.Mutex("a-busy"), oa.Mutex("a-read"),
                      oa.Mutex("a-write"), name="a")
        tg.start_soon(bump, b_up, a_up, oa.Mutex("b-busy"), oa.Mutex("b-read"),
                      oa.Mutex("b-write"), name="b")
    assert box["n"] == 2, f"lost update: {box['n']}"
"""

PLUGIN_TEST = """
import odp_async as oa
from odp_async.explore.testing import explore_test


@explore_test(schedules=1000)
async def test_two_bumps_each_under_its_own_locks():
    box = {"n": 0}
    a_up, b_up = oa.Completion("a-up"), oa.Completion("b-up")

    async def bump(me_up, other_up, busy_lock, read_lock, write_lock):
        me_up.complete_all()
        await other_up.wait()
        for _ in range(30):
            async with busy_lock:
                pass
        async with read_lock:
            seen = box["n"]
        async with write_lock:
            box["n"] = seen + 1
        await me_up.wait()

    async with oa.task_group() as tg:
        tg.start_soon(bump, a_up, b_up, oa.Mutex("a-busy"), oa.Mutex("a-read"),
                      oa.Mutex("a-write"), name="a")
        tg.start_soon(bump, b_up, a_up, oa.Mutex("b-busy"), oa.Mutex("b-read"),
                      oa.Mutex("b-write"), name="b")
    assert box["n"] == 2, f"lost update: {box['n']}"
"""

MUTABLE_CELL = """
import odp_async as oa
from odp_async.explore import SharedCell
from odp_async.scenarios import Scenario
from odp_async.tracked import TrackedList


async def plain_list_in_a_cell() -> None:
    log = SharedCell([], "log")

    async def worker(who: str) -> None:
        await oa.checkpoint("start")
        log.get().append(who)

    async with oa.task_group() as tg:
        tg.start_soon(worker, "a", name="a")
        tg.start_soon(worker, "b", name="b")
    assert log.get() == ["a", "b"], f"order: {log.get()}"


async def tracked_list_in_a_cell() -> None:
    log = SharedCell(TrackedList(), "log")

    async def worker(who: str) -> None:
        await oa.checkpoint("start")
        log.get().append(who)

    async with oa.task_group() as tg:
        tg.start_soon(worker, "a", name="a")
        tg.start_soon(worker, "b", name="b")
    assert list(log.get()) == ["a", "b"], f"order: {list(log.get())}"


def two_readers(value):
    async def readers() -> None:
        held = SharedCell(value, "held")
        seen = (SharedCell(None, "a"), SharedCell(None, "b"))

        async def reader(i: int) -> None:
            await oa.checkpoint("start")
            n = len(held.get())
            await oa.checkpoint("then")
            seen[i].set(n)

        async with oa.task_group() as tg:
            tg.start_soon(reader, 0, name="a")
            tg.start_soon(reader, 1, name="b")

    return readers


PLAIN = Scenario("plain-list-cell", "", plain_list_in_a_cell, (), needs_world=False,
                 noted_only=True)
TRACKED = Scenario("tracked-list-cell", "", tracked_list_in_a_cell, (), needs_world=False,
                   noted_only=True)
TUPLE_READERS = Scenario("tuple-cell", "", two_readers((1, 2)), (), needs_world=False,
                         noted_only=True)
LIST_READERS = Scenario("list-cell", "", two_readers([1, 2]), (), needs_world=False,
                        noted_only=True)
"""


@pytest.fixture
def locks(user_module: UserModule) -> ModuleType:
    return user_module(WRONG_LOCKS, "user_wrong_locks")


@pytest.fixture
def cells(user_module: UserModule) -> ModuleType:
    return user_module(MUTABLE_CELL, "user_mutable_cell")


# --- f07: a step at a primitive, without the noted-only promise -----------------------


@pytest.mark.parametrize("chooser", ["dpor", "dfs", "portfolio"])
def test_a_wrong_lock_lost_update_is_found(locks: ModuleType, chooser: str) -> None:
    result = check(locks.wrong_locks_tail, chooser=chooser, schedules=500, shrink=False)
    assert result.failure is not None, result.claim
    assert "lost update: 1" in result.failure.describe()
    assert not result.claim.startswith("complete")


def test_the_default_portfolio_finds_the_busy_wrong_lock(locks: ModuleType) -> None:
    # Before: its dpor member completed (`complete: N traces, no violation`) first.
    result = check(locks.busy_wrong_locks, shrink=False)
    assert result.failure is not None, result.claim
    assert "lost update: 1" in result.failure.describe()


def test_a_load_or_store_step_declares_nothing_beyond_its_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The caller's code after `load` returns runs in the load's step (``seen = box["n"]``
    # on a plain dict): the label must not declare the step to be the read alone.
    # Shown as before (``load 'gate'``); under the noted-only promise the step is its
    # noted read, as the declared one was.
    labels: list[object] = []

    async def recording(label: object = None) -> None:
        labels.append(label)

    monkeypatch.setattr(shared_module, "checkpoint", recording)
    cell = SharedCell(0, "gate")

    async def use() -> None:
        await cell.load()
        await cell.store(1)

    sim.run(use)
    assert labels == ["load 'gate'", "store 'gate'"]
    for label in labels:
        assert declared_footprint(label, trust_primitives=True) is None


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str]:
    name = write_user_module(tmp_path, WRONG_LOCKS, "cli_wrong_locks", monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:{argv[0]}", *argv[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "argv",
    [("wrong_locks_tail", "--chooser", "dpor"), ("busy_wrong_locks",)],
    ids=["dpor", "portfolio"],
)
def test_the_command_line_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]
) -> None:
    code, out = _cli(tmp_path, monkeypatch, *argv)
    assert code == 1, out
    assert "lost update: 1" in out
    assert "complete:" not in out


def test_the_pytest_plugin_default_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wrong_locks=PLUGIN_TEST)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "lost update: 1" in result.stdout.str()


# --- f06: what a SharedCell hands out ----------------------------------------------------


@pytest.mark.parametrize("chooser", ["dpor", "dfs", "portfolio"])
def test_a_plain_list_changed_through_a_cell_is_found(cells: ModuleType, chooser: str) -> None:
    result = explore(cells.PLAIN, chooser=chooser, schedules=200, shrink=False)
    assert result.failure is not None, result.claim
    assert "order: ['b', 'a']" in result.failure.describe()


def test_a_tracked_list_in_a_cell_is_noted_not_unknown(cells: ModuleType) -> None:
    # A tracked container notes its own accesses: the order bug is found, and the cell
    # handing it out does not make the step unknown.
    result = explore(cells.TRACKED, chooser="dpor", schedules=200, shrink=False)
    assert result.failure is not None, result.claim
    assert "order: ['b', 'a']" in result.failure.describe()


def test_values_on_the_allow_list_keep_the_reduction(cells: ModuleType) -> None:
    # Two reads of a cell holding a tuple commute; holding a list, each read's step is
    # unknown (it conflicts with every step of the other task): more traces, both complete.
    kept = explore(cells.TUPLE_READERS, chooser="dpor", schedules=200)
    unknown = explore(cells.LIST_READERS, chooser="dpor", schedules=200)
    assert kept.failure is None
    assert unknown.failure is None
    assert kept.claim.startswith("complete")
    assert unknown.claim.startswith("complete")
    assert _traces(kept.claim) < _traces(unknown.claim)


def _traces(claim: str) -> int:
    return int(claim.removeprefix("complete: ").split()[0])
