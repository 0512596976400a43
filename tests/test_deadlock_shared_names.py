"""A deadlock between tasks that share a name (one function started twice, named alike
or not named at all) tells them apart: each is ``name#id`` in the report, as the step
list and the timeline's lanes show it, in the text, in --json and in the trace; a task
with a name of its own keeps it.  Run as a user runs it: a module outside the package,
a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.sync import Mutex
from tests._usermod import pythonpath_env, write_user_module

SOURCE = """
from odp_async import _runtime as rt
from odp_async import sync


async def crossed(name):
    a, b = sync.Mutex("a"), sync.Mutex("b")

    async def worker(first, second):
        async with first:
            await rt.sleep(1)
            async with second:
                pass

    async with rt.task_group() as tg:
        tg.start_soon(worker, a, b, name=name)
        tg.start_soon(worker, b, a, name=name)


async def named_alike():
    await crossed("w")


async def unnamed():
    await crossed(None)
"""


async def _crossed(first_name: str | None, second_name: str | None) -> None:
    a, b = Mutex("a"), Mutex("b")

    async def worker(first: Mutex, second: Mutex) -> None:
        async with first:
            await rt.sleep(1)
            async with second:
                pass

    async with rt.task_group() as tg:
        tg.start_soon(worker, a, b, name=first_name)
        tg.start_soon(worker, b, a, name=second_name)


def test_tasks_named_alike_are_told_apart_by_their_ids() -> None:
    r = sim.run(_crossed, "w", "w")
    assert r.deadlock is not None
    assert r.deadlock.describe() == (
        "w#1 waits for Mutex 'b' held by w#2; w#2 waits for Mutex 'a' held by w#1; "
        "also blocked: main waits for its task group's children to finish: w#1, w#2"
    )
    assert [b.task for b in r.deadlock.cycle] == ["w#1", "w#2"]


def test_unnamed_tasks_of_one_function_are_told_apart() -> None:
    r = sim.run(_crossed, None, None)
    assert r.deadlock is not None
    worker = "_crossed.<locals>.worker"
    assert [b.describe() for b in r.deadlock.cycle] == [
        f"{worker}#1 waits for Mutex 'b' held by {worker}#2",
        f"{worker}#2 waits for Mutex 'a' held by {worker}#1",
    ]


def test_a_task_with_a_name_of_its_own_keeps_it() -> None:
    r = sim.run(_crossed, "w", "v")
    assert r.deadlock is not None
    assert r.deadlock.describe() == (
        "w waits for Mutex 'b' held by v; v waits for Mutex 'a' held by w; "
        "also blocked: main waits for its task group's children to finish: w, v"
    )


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("function", "task"), [("named_alike", "w"), ("unnamed", "crossed.<locals>.worker")]
)
def test_explore_and_replay_of_a_user_function_tell_the_tasks_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str, task: str
) -> None:
    name = write_user_module(tmp_path, SOURCE, "shared_names", monkeypatch)
    cycle = (
        f"{task}#1 waits for Mutex 'b' held by {task}#2; "
        f"{task}#2 waits for Mutex 'a' held by {task}#1"
    )
    text = _cli(tmp_path, "explore", f"{name}:{function}", "--seed", "1")
    assert text.returncode == 1, text.stderr
    assert f"(step 9, {task}#1, {task}#2): {cycle}" in text.stdout
    assert f"  {task}#1 waits for Mutex 'b' held by {task}#2\n" in text.stdout

    found = _cli(tmp_path, "explore", f"{name}:{function}", "--seed", "1", "--json")
    assert found.returncode == 1, found.stderr
    result = json.loads(found.stdout)
    assert result["failure"]["detail"].startswith(cycle)
    assert result["failure"]["tasks"] == [f"{task}#1", f"{task}#2"]

    replayed = _cli(tmp_path, "replay", result["failure"]["replay_token"], "--trace", "trace.json")
    assert replayed.returncode == 1, replayed.stderr
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    threads = {e["args"]["name"]: e["tid"] for e in events if e["name"] == "thread_name"}
    [mark] = [e for e in events if e["name"] == "violation: deadlock"]
    assert mark["args"]["tasks"] == [f"{task}#1", f"{task}#2"]
    assert mark["tid"] == threads[f"{task}#1"]  # on the first waiter's lane
