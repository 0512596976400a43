"""Parallel DPOR keeps the serial search's reduction and its completeness claims.

``--chooser dpor --jobs 2`` used to split the schedule tree into the 64 alternatives of
its first choices, each searched from an empty sleep set: on the model's scenarios most
of them were equivalent orders, and a search the serial DPOR completes in a few hundred
traces did not complete in 100 s.  Now the split hands out the serial search's own
backtrack entries, each subtree with its path's sleep sets and explored options, and
takes back what the subtree leaves (its queue, its races above its root): ``jobs=2`` runs
the serial search's trace count and claims completeness with it.  `finest` makes every
entry a work item of one trace (no head), the hardest case for the split; the results do
not depend on the executor.  Tried on built-in cells, on a user's module (tmp_path,
imported by name) in this process, on worker processes and from the CLI in a fresh
process.
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


async def _run(bug: bool) -> None:
    state = {"x": 0, "log": []}

    async def worker(name: str) -> None:
        state["log"].append(name)
        await checkpoint("between")
        if bug and name == "c" and state["log"][-1] != "c":
            seen = state["x"]
            await checkpoint("read")
            state["x"] = seen + 1
        else:
            state["x"] += 1

    async with task_group() as tg:
        for name in ("a", "b", "c"):
            tg.start_soon(worker, name)
    assert state["x"] == 3, f"lost update: x == {state['x']}"


async def three_steps_each() -> None:
    await _run(False)


async def rare_lost_update() -> None:
    await _run(True)
"""

KW = {"chooser": "dpor", "schedules": 5000, "stop_on_first": False, "shrink": False}


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "dpor_par_user")


@pytest.fixture
def finest(monkeypatch: pytest.MonkeyPatch) -> None:
    """No head, one trace per item: every backtrack entry is a work item of its own."""
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 0)
    monkeypatch.setattr(dpor_parallel, "ITEM_TRACES", 1)


@pytest.mark.usefixtures("finest")
@pytest.mark.parametrize(
    "cell",
    [
        "fault-vs-munmap/interval-seq",
        "fault-vs-munmap/odp2014-ctx",
        "ctx-dereg-during-end/interval-seq",
    ],
)
def test_built_in_cells_complete_with_the_serial_count(cell: str) -> None:
    scenario, protocol = cell.split("/")
    serial = explore(scenario, protocol, **KW)
    split = explore(scenario, protocol, executor=InlineExecutor(), **KW)
    assert serial.complete
    assert split.complete, split.claim
    assert split.claim == serial.claim  # "complete: N traces, no violation"


def test_a_cell_past_the_head_completes_on_two_workers() -> None:
    """migration-during-fault/interval-seq: 90 traces, past the serial head of 64; the
    rounds after the head run the rest, on two worker processes.  (It was
    registration-race/range-list until the active ranges were noted per page: 60
    traces, no longer past the head.)"""
    serial = explore("migration-during-fault", "interval-seq", **KW)
    two = explore("migration-during-fault", "interval-seq", jobs=2, **KW)
    assert serial.schedules > dpor_parallel.HEAD_TRACES
    assert serial.complete
    assert two.complete, two.claim
    assert two.claim == serial.claim
    assert two.executor == "2 worker processes"


def test_a_user_program_completes_with_the_serial_count(user: ModuleType) -> None:
    ref = f"{user.__name__}:three_steps_each"
    serial = check(ref, **KW)
    assert serial.complete
    assert serial.schedules == 90 > dpor_parallel.HEAD_TRACES
    two = check(ref, jobs=2, **KW)
    assert two.complete
    assert two.claim == serial.claim == "complete: 90 traces, no violation"


@pytest.mark.usefixtures("finest")
def test_the_finest_split_of_a_user_program_is_the_same_on_every_executor(
    user: ModuleType,
) -> None:
    ref = f"{user.__name__}:three_steps_each"
    here = check(ref, executor=InlineExecutor(), **KW)
    with ProcessExecutor(2) as pool:
        there = check(ref, executor=pool, **KW)
        buggy = check(f"{user.__name__}:rare_lost_update", executor=pool, **KW)
    assert here.claim == there.claim == "complete: 90 traces, no violation"
    assert set(there.per_worker) == {"process-1", "process-2"}
    serial = check(f"{user.__name__}:rare_lost_update", **KW)
    assert buggy.failure is not None
    assert buggy.failure.violation.kind == "error"
    assert "lost update" in buggy.failure.violation.detail
    assert buggy.complete == serial.complete
    assert buggy.schedules == serial.schedules
    assert len(buggy.failing) == len(serial.failing)


@pytest.mark.usefixtures("finest")
def test_a_bug_is_found_by_the_split_s_rounds(user: ModuleType) -> None:
    """Not in a head: the rounds find the lost update, and it replays (shrunk)."""
    ref = f"{user.__name__}:rare_lost_update"
    found = check(ref, chooser="dpor", schedules=5000, executor=InlineExecutor())
    assert found.failure is not None
    assert "lost update" in found.failure.violation.detail
    assert found.failure.shrunk_token is not None


def test_the_cli_with_jobs_2_claims_what_jobs_1_claims(user: ModuleType, tmp_path: Path) -> None:
    ref = f"{user.__name__}:three_steps_each"
    outs = []
    for jobs in ("1", "2"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "odp_async.cli",
                "explore",
                ref,
                "--chooser",
                "dpor",
                "--jobs",
                jobs,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=pythonpath_env(tmp_path),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs.append(proc.stdout)
    for out in outs:
        assert "complete: 90 traces, no violation" in out
