"""A foreign library's call that the program catches itself (trial 21a, f10): the only
yield point of the program below is a backoff ``await anyio.sleep(0)`` inside ``try /
except Exception``.  In the sim anyio finds no event loop and raises; the program
swallowed that and went on without a yield, so every chooser explored another program
than the one trio runs, and claimed ``complete: 2 traces, no violation`` (exit 0) while
on trio it has a lost update.  Now the sim names itself to sniffio in its runs' context
and anyio's backend lookup tells the run (`odp_async._runtime.sim._SimLibrary`): the run
ends with `ForeignAwait` naming the call, whatever the program did with the error, under
every chooser, any ``jobs``, `sim.run` and the command line (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest
import trio

from odp_async import sim
from odp_async.errors import ForeignAwait
from odp_async.explore import explore
from tests._usermod import write_user_module
from tests.conftest import UserModule

ROOT = Path(__file__).resolve().parent.parent.parent

PROGRAMS = """
import anyio
import odp_async as oa


async def backoff():
    try:
        await anyio.sleep(0)
    except Exception:  # "never let the backoff kill the worker"
        pass


async def main():
    box = {"n": 0}

    async def w():
        v = box["n"]
        await backoff()
        box["n"] = v + 1

    async with oa.task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    assert box["n"] == 2, f"lost update: {box['n']}"


async def made_its_own():
    # the error anyio gave, turned into the program's own: not the program's outcome
    try:
        await anyio.sleep(0)
    except BaseException:
        raise ValueError("the backoff failed") from None


async def at_the_end():
    # caught, and nothing after it fails: not a clean run either
    try:
        anyio.Event()
    except Exception:
        pass
    await oa.checkpoint()
"""

RUNS = [
    ("random", 1), ("random", 2), ("pct", 1), ("pct", 2), ("dfs", 1), ("dpor", 1),
    ("dpor", 2), ("portfolio", 1), ("portfolio", 2),
]  # fmt: skip


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(PROGRAMS, "user_foreign_caught")


def test_on_trio_it_is_a_lost_update(user: ModuleType) -> None:
    # the ground truth: the program a real event loop runs
    with pytest.raises(AssertionError, match="lost update: 1"):
        trio.run(user.main)


@pytest.mark.parametrize(("chooser", "jobs"), RUNS)
@pytest.mark.parametrize("name", ["main", "made_its_own", "at_the_end"])
def test_every_chooser_ends_with_foreign_await(
    user: ModuleType, name: str, chooser: str, jobs: int
) -> None:
    with pytest.raises(ForeignAwait, match=r"called anyio\..*which needs its own event loop"):
        explore(getattr(user, name), chooser=chooser, jobs=jobs, schedules=50, seed=0)


@pytest.mark.parametrize("name", ["main", "made_its_own", "at_the_end"])
def test_a_sim_run_ends_with_foreign_await(user: ModuleType, name: str) -> None:
    with pytest.raises(ForeignAwait, match=r"task '.*' called anyio\."):
        sim.run(getattr(user, name), seed=1)


def test_anyio_outside_a_sim_run_is_untouched(user: ModuleType) -> None:
    with pytest.raises(ForeignAwait):
        sim.run(user.main, seed=1)
    anyio.Event()  # no event loop: anyio's own adapter, as before any sim run

    async def sleeps() -> int:
        await anyio.sleep(0)  # noqa: ASYNC115  (the very call the sim refuses)
        return 7

    assert anyio.run(sleeps) == 7


def test_the_command_line_says_so_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = write_user_module(tmp_path, PROGRAMS, "user_foreign_cli", monkeypatch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{module}:main"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "called anyio._core._eventloop.sleep()" in done.stderr, done.stderr
    assert "clean" not in done.stdout, done.stdout
    assert "complete" not in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
