"""What a task is handed when it is spawned, judged under the noted-only promise.

A plain list or dict made by a display (``items = [1]``, ``d = {"n": 0}``, a
comprehension) in the main function and shared through the tasks' closures, one read out
of a tracked object and kept in a local (``items = q.items``), or one handed to
``start_soon`` as an argument, is state no note sees.  The static walk does not judge
displays (`odp_async._tracked_code._shared_locals`), so DPOR and dfs claimed
``complete: 1 trace, no violation`` on each lost update below (new-user report).  Now the
sim judges the arguments and the closure of every task spawned under the promise
(`odp_async._runtime.footprint.noted_spawn`, `odp_async.tracked._noted_spawn`): such a
spawn ends the promise for the rest of the run, so its steps are unknown and every
order is explored.  What a note sees, handed on (a tracked object, a primitive, a
SharedCell or a tuple of them, values), keeps the reduction.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import explore
from tests._usermod import write_user_module
from tests.conftest import UserModule

ROOT = Path(__file__).resolve().parent.parent.parent

PROGRAMS = """
import attrs

from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.shared import SharedCell
from odp_async.sync import Mutex
from odp_async.tracked import tracked


async def list_display_in_closures():
    items = [1]

    async def take():
        if items:
            await checkpoint("checked")
            items.pop()  # the second pop of a one-item list: IndexError

    async with task_group() as tg:
        tg.start_soon(take)
        tg.start_soon(take)


async def dict_display_in_closures():
    d = {"n": 0}

    async def bump():
        seen = d["n"]
        await checkpoint("between the read and the write")
        d["n"] = seen + 1

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert d["n"] == 2, "a lost update"


async def comprehension_in_closures():
    counts = [0 for _ in range(1)]

    async def bump():
        seen = counts[0]
        await checkpoint("between the read and the write")
        counts[0] = seen + 1

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert counts[0] == 2, "a lost update"


@tracked
@attrs.define
class Queue:
    items: list = attrs.field(factory=lambda: [1])


async def alias_of_a_tracked_field():
    q = Queue()
    items = q.items  # a plain list read out of a tracked field, kept in a local

    async def take():
        if items:
            await checkpoint("checked")
            items.pop()

    async with task_group() as tg:
        tg.start_soon(take)
        tg.start_soon(take)


async def bump_item(d):
    seen = d["n"]
    await checkpoint("between the read and the write")
    d["n"] = seen + 1


async def display_as_argument():
    d = {"n": 0}
    async with task_group() as tg:
        tg.start_soon(bump_item, d)
        tg.start_soon(bump_item, d)
    assert d["n"] == 2, "a lost update"


async def nested_helper_in_closures():
    d = {"n": 0}

    def read():
        return d["n"]

    def write(n):
        d["n"] = n

    async def bump():
        seen = read()
        await checkpoint("between the read and the write")
        write(seen + 1)

    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert read() == 2, "a lost update"


@tracked
@attrs.define
class Counter:
    n: int = 0


async def noted_state_in_closures():
    counter = Counter()
    lock = Mutex("m")
    cells = (SharedCell(0, "a"), SharedCell(0, "b"))
    limits = (1, 2)

    async def bump(i):
        async with lock:
            seen = counter.n
            await checkpoint("between the read and the write")
            counter.n = seen + limits[i] - limits[i] + 1
        cells[i].set(1)

    async with task_group() as tg:
        tg.start_soon(bump, 0)
        tg.start_soon(bump, 1)
    assert counter.n == 2


def scenario(main):
    return Scenario(main.__name__, "", main, (), needs_world=False, noted_only=True)


RACES = {
    name: scenario(main)
    for name, main in [
        ("list_display_in_closures", list_display_in_closures),
        ("dict_display_in_closures", dict_display_in_closures),
        ("comprehension_in_closures", comprehension_in_closures),
        ("alias_of_a_tracked_field", alias_of_a_tracked_field),
        ("display_as_argument", display_as_argument),
        ("nested_helper_in_closures", nested_helper_in_closures),
    ]
}
CORRECT = scenario(noted_state_in_closures)
DICT_DISPLAY = RACES["dict_display_in_closures"]
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(PROGRAMS, "user_spawned_state")


RACES = [
    "list_display_in_closures",
    "dict_display_in_closures",
    "comprehension_in_closures",
    "alias_of_a_tracked_field",
    "display_as_argument",
    "nested_helper_in_closures",
]


@pytest.mark.parametrize("chooser", ["dpor", "dfs"])
@pytest.mark.parametrize("name", RACES)
def test_a_race_on_state_handed_at_spawn_is_found_never_complete(
    user: ModuleType, name: str, chooser: str
) -> None:
    result = explore(user.RACES[name], chooser=chooser, schedules=500, seed=0)
    assert result.failure is not None, result.claim
    assert not result.complete, result.claim


@pytest.mark.parametrize("chooser", ["dpor", "dfs"])
def test_noted_state_handed_at_spawn_keeps_the_reduction(user: ModuleType, chooser: str) -> None:
    result = explore(user.CORRECT, chooser=chooser, schedules=500)
    assert result.failure is None, result.failure
    assert result.complete, result.claim
    if chooser == "dpor":
        # without the promise (every step unknown): 14 traces
        assert result.claim == "complete: 4 traces, no violation"


@pytest.mark.parametrize(("name", "code", "says"), [
    ("DICT_DISPLAY", 1, "a lost update"),
    ("CORRECT", 0, "complete: 4 traces, no violation"),
])  # fmt: skip
def test_the_command_line_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: int, says: str
) -> None:
    module = write_user_module(tmp_path, PROGRAMS, "user_spawned_cli", monkeypatch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{module}:{name}",
         "--chooser", "dpor"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == code, done.stdout + done.stderr
    assert says in done.stdout, done.stdout
