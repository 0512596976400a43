"""The FIFO schedule run before a search and again after it (`odp_async.explore.start_check`):
state carried between runs that the watch of named state cannot see (new-user trial: a lost
update hidden behind an ``lru_cache``'d config, a flag in a module imported inside the
body, a ``functools.cache``, each warmed by the first run, was ``complete: 2 traces, no
violation``, exit 0, and ``--jobs 2`` disagreed with ``--jobs 1``).  Each command runs in
a fresh process, as a user runs it, so every search starts from a cold program."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from odp_async.cli import ExitCode
from odp_async.explore import ExploreConfig
from odp_async.explore.runner import explore_target
from odp_async.explore.target import Target
from tests._usermod import cli_in, pythonpath_env

HELPER = """
_warm = [False]


def is_warm():
    return _warm[0]


def warm_up():
    _warm[0] = True
"""

PROGRAMS = """
import functools

from odp_async import checkpoint, task_group


async def _racy(warm):
    s = {"x": 0}

    async def inc():
        if warm:
            s["x"] += 1
            return
        v = s["x"]
        await checkpoint()
        s["x"] = v + 1

    async with task_group() as tg:
        tg.start_soon(inc)
        tg.start_soon(inc)
    assert s["x"] == 2


@functools.lru_cache(maxsize=None)
def _config():
    return {"warm": False}


async def lru_race():
    cfg = _config()
    await _racy(cfg["warm"])
    cfg["warm"] = True


async def inner_import():
    import start_check_helper

    await _racy(start_check_helper.is_warm())
    start_check_helper.warm_up()


@functools.cache
def _flags():
    return []


async def cache_race():
    flags = _flags()
    await _racy(bool(flags))
    flags.append(1)


async def cold():
    await _racy(True)
"""

HIDDEN = ["lru_race", "inner_import", "cache_race"]


@pytest.fixture
def user(tmp_path: Path) -> Path:
    (tmp_path / "start_check_helper.py").write_text(HELPER)
    (tmp_path / "start_check_user.py").write_text(PROGRAMS)
    return tmp_path


@pytest.mark.parametrize("program", HIDDEN)
@pytest.mark.parametrize("chooser", ["portfolio", "random", "dpor"])
def test_a_warmed_run_is_no_pass(user: Path, program: str, chooser: str) -> None:
    done = cli_in(user, "explore", f"start_check_user:{program}", "--chooser", chooser, "--json")
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"] == "inconclusive"
    assert data["complete"] is False
    assert data["claim"].startswith("inconclusive: the program's runs shared state: ")


@pytest.mark.parametrize("program", HIDDEN)
def test_jobs_give_the_same_verdict(user: Path, program: str) -> None:
    """--jobs 2 said 'not deterministic' (exit 2) or 'found' where --jobs 1 said clean."""
    codes = set()
    for jobs in ("1", "2"):
        argv = ("--chooser", "random", "--schedules", "600", "--jobs", jobs)
        done = cli_in(user, "explore", f"start_check_user:{program}", *argv)
        codes.add(done.returncode)
        assert "inconclusive: the program's runs shared state: " in done.stdout, done.stderr
    assert codes == {ExitCode.INCONCLUSIVE}


def test_the_rerun_says_what_it_saw(user: Path) -> None:
    done = cli_in(user, "explore", "start_check_user:lru_race", "--chooser", "dpor")
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    assert (
        "the same schedule ran differently before the search (6 steps, ok) and after it"
        in done.stdout
    )
    assert "a functools cache, a module imported inside the program" in done.stdout


def test_a_program_that_starts_cold_every_run_still_completes(user: Path) -> None:
    done = cli_in(user, "explore", "start_check_user:cold", "--chooser", "dpor")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "complete: 2 traces, no violation" in done.stdout


def test_check_in_python_says_it_too(user: Path) -> None:
    code = (
        "import start_check_user as m\n"
        "from odp_async.explore import check\n"
        "r = check(m.lru_race, chooser='dpor')\n"
        "print(r.verdict, r.complete)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(user),
        cwd=user,
    )
    assert done.stdout.split() == ["inconclusive", "False"], done.stderr


TICKING_FIFO_BUG = """
from odp_async import checkpoint, task_group

NOW = [0.0]


async def prog():
    order = []

    async def one(i):
        order.append(i)
        await checkpoint("after")
        order.append(i)

    try:
        async with task_group() as tg:
            tg.start_soon(one, 0)
            tg.start_soon(one, 1)
        assert order != [0, 0, 1, 1], "the FIFO order: each task in turn"
    finally:
        NOW[0] += 1.0  # one second a run, on the search's clock, as it ends
"""


@pytest.mark.parametrize("chooser", ["random", "dpor"])
def test_a_failing_start_run_that_spends_the_budget_is_the_failure(
    user_module: Any, chooser: str
) -> None:
    """The FIFO run before the search failed and spent the time budget: nothing else
    runs, and that failure is the result's (it was dropped with the budget's stop)."""
    module = user_module(TICKING_FIFO_BUG, "ticking_fifo")
    target = Target.resolve(f"{module.__name__}:prog")
    config = ExploreConfig(chooser=chooser, schedules=50, time=0.5, shrink=False)
    result = explore_target(target, config, clock=lambda: float(module.NOW[0]))
    assert result.out_of_time
    assert result.schedules == 0
    assert result.failure is not None
    assert (result.failure.index, result.found_by) == (0, "fifo-probe")
    assert result.failure.violation.kind == "error"
