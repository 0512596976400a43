"""A found failure reports the same counts for any ``jobs`` and executor (trial 19c, f3).

With ``--jobs 2`` the portfolio reported ``found - 103 schedules`` one run and 50 the next
(``--jobs 1``: always 50): worker chunks and the parent's dpor slots that ran past the
first failure before it was known were counted.  Now only the schedules up to the first
failure count, as a serial run counts them: `schedules`, `steps`, `pruned`, `failing`
are a function of the program and the seed; only `per_worker` says who ran what.

User code lives outside the package: a module written to ``tmp_path``, imported by name
(``PYTHONPATH`` for the fresh CLI processes)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from odp_async.explore import ExploreResult, explore
from odp_async.explore.executors import Done, Executor
from tests._usermod import forget, import_user_module

USER_MODULE = """
import odp_async as oa


async def rare():
    log = []

    async def worker(tag):
        for _ in range(1 + tag):
            log.append(tag)
            await oa.checkpoint()

    async with oa.task_group() as tg:
        for tag in range(3):
            tg.start_soon(worker, tag, name=f"w{tag}")
    assert not (oa.draw(30, "coin") == 3 and log[0] == 2), log
"""

#: (chooser, the first failing schedule, steps up to it) under seed 0, as ``--jobs 1``
#: reports them (measured at 2c9c05a; unchanged).
SERIAL = {"portfolio": (284, 3124), "random": (206, 2266), "pct": (104, 1144)}


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = import_user_module(tmp_path, USER_MODULE, "foundcounts", monkeypatch)
    yield module
    forget(module.__name__)


class NewestFirst(Executor):
    """At each wait, runs every chunk submitted so far, in this process, the last
    submitted first, and hands them back in that order: the later chunks a pool finishes
    before an earlier one (workers that ran ahead of the failure)."""

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[Hashable, Callable[..., Any], tuple[Any, ...]]]
        self._queue = collections.deque()

    @property
    def window(self) -> int:
        return 4

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.append((key, fn, args))

    def wait(self, timeout: float | None) -> list[Done]:
        done = []
        while self._queue:
            key, fn, args = self._queue.pop()
            done.append(Done(key, "ahead", fn(*args)))
        return done

    def cancel(self, keys: Iterable[Hashable]) -> None:
        drop = set(keys)
        self._queue = collections.deque(t for t in self._queue if t[0] not in drop)

    def abort(self) -> None:
        self._queue.clear()


def _counts(result: ExploreResult) -> tuple[object, ...]:
    failure = result.failure
    assert failure is not None, result.claim
    return (
        result.schedules,
        result.steps,
        result.pruned,
        result.failing,
        result.unfinished,
        result.found_by,
        failure.index,
        failure.token,
        result.claim,
    )


@pytest.mark.parametrize("chooser", sorted(SERIAL))
def test_counts_up_to_the_failure_for_any_executor(usermod: ModuleType, chooser: str) -> None:
    serial = explore(usermod.rare, chooser=chooser, schedules=2000, jobs=1)
    index, steps = SERIAL[chooser]
    assert (serial.schedules, serial.steps, serial.failing) == (index, steps, (index,))
    ahead = explore(usermod.rare, chooser=chooser, schedules=2000, executor=NewestFirst())
    assert _counts(ahead) == _counts(serial)
    assert sum(ahead.per_worker.values()) == ahead.schedules


@pytest.mark.parametrize("chooser", ["portfolio", "random"])
def test_the_api_with_two_jobs_repeated(usermod: ModuleType, chooser: str) -> None:
    serial = _counts(explore(usermod.rare, chooser=chooser, schedules=2000, jobs=1))
    for _ in range(3):
        result = explore(usermod.rare, chooser=chooser, schedules=2000, jobs=2)
        assert _counts(result) == serial
        assert sum(result.per_worker.values()) == result.schedules


def test_the_cli_jobs_one_and_two_in_fresh_processes(usermod: ModuleType, tmp_path: Path) -> None:
    pythonpath = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])

    def run(jobs: str) -> tuple[object, ...]:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "odp_async.cli",
                "explore",
                f"{usermod.__name__}:rare",
                "--schedules",
                "2000",
                "--jobs",
                jobs,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=dict(os.environ, PYTHONPATH=pythonpath, PYTHONHASHSEED="7"),
            cwd=tmp_path,
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        data = json.loads(proc.stdout)
        assert sum(data["per_worker"].values()) == data["schedules"]
        return (
            data["schedules"],
            data["steps"],
            data["pruned"],
            data["failing"],
            data["found_by"],
            data["failure"]["token"],
        )

    serial = run("1")
    assert serial[:2] == SERIAL["portfolio"]
    for _ in range(3):
        assert run("2") == serial
