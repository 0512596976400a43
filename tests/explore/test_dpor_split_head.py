"""A split DPOR search (``--jobs 2``, an executor) finds what the serial one finds early.

A task spins (``while not state["done"]: await checkpoint()``) while two others race for a
lost update.  The serial DPOR finds it at trace 9; the split search (64 prefixes, run in
rounds by preemptions) gave one subtree's many executions of few preemptions the whole
budget and missed it within 1,000 traces.  The split now runs the serial search's first
traces first (the head: `dpor_parallel.HEAD_TRACES`), so it finds the bug at the same
index, in this process, on worker processes and from the CLI in a fresh process; and the
results stay the same for every executor.  Tried on a user's own module (tmp_path,
imported by name).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import InlineExecutor, ProcessExecutor, check, dpor_parallel, explore
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER = """
from odp_async import checkpoint, task_group


async def spin_and_lost_update() -> None:
    state = {"done": False, "n": 0}

    async def spinner() -> None:
        while not state["done"]:
            await checkpoint("spin")

    async def bump(pad: int, last: bool) -> None:
        for _ in range(pad):
            await checkpoint("pad")
        v = state["n"]
        await checkpoint("read")
        state["n"] = v + 1
        if last:
            state["done"] = True

    async with task_group() as tg:
        tg.start_soon(spinner)
        tg.start_soon(bump, 1, False)
        tg.start_soon(bump, 8, True)
    assert state["n"] == 2, f"lost update: {state['n']}"
"""

MAX_STEPS = 3000
KW = {"chooser": "dpor", "schedules": 1000, "max_steps": MAX_STEPS, "shrink": False}


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "split_spin_user")


def test_the_split_search_finds_it_where_the_serial_one_does(user: ModuleType) -> None:
    serial = check(user.spin_and_lost_update, **KW)
    assert serial.failure is not None
    here = check(user.spin_and_lost_update, executor=InlineExecutor(), **KW)
    two = check(user.spin_and_lost_update, jobs=2, **KW)
    for split in (here, two):
        assert split.failure is not None, split.claim
        assert split.failure.index == serial.failure.index
        assert split.failure.schedule == serial.failure.schedule
        assert split.failing == serial.failing


def test_without_the_head_the_split_finds_it_too(
    user: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split's own rounds (no head, one trace per item) find it too: each subtree
    carries its sleep set and backtrack state.  (The split into 64 prefixes searched
    from empty sleep sets did not find it within 300.)"""
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 0)
    monkeypatch.setattr(dpor_parallel, "ITEM_TRACES", 1)
    kw = {**KW, "schedules": 300}
    result = check(user.spin_and_lost_update, executor=InlineExecutor(), **kw)
    assert result.failure is not None
    assert result.failure.index < 64


def test_past_the_head_the_results_are_the_same_for_every_executor() -> None:
    """A search the head does not settle (reorder_5, all failures, a budget past the
    head): identical counts, failing indices and first failure in this process and on
    worker processes; the first traces are the serial search's."""
    kw = {"chooser": "dpor", "schedules": 200, "stop_on_first": False, "shrink": False}
    here = explore("classic:reorder_5", executor=InlineExecutor(), **kw)
    with ProcessExecutor(2) as pool:
        there = explore("classic:reorder_5", executor=pool, **kw)
    serial = explore("classic:reorder_5", **{**kw, "schedules": dpor_parallel.HEAD_TRACES})
    assert here.schedules == there.schedules == 200
    assert here.failing == there.failing
    assert here.failure is not None
    assert there.failure is not None
    assert here.failure.schedule == there.failure.schedule
    head = [i for i in here.failing if i <= dpor_parallel.HEAD_TRACES]
    assert head == list(serial.failing)


def test_the_cli_with_jobs_2_finds_it(user: ModuleType, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odp_async.cli",
            "explore",
            f"{user.__name__}:spin_and_lost_update",
            "--chooser",
            "dpor",
            "--jobs",
            "2",
            "--max-steps",
            str(MAX_STEPS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "violation at schedule 9: error" in proc.stdout
    assert "lost update" in proc.stdout
