"""Exact replays, progress reports, and Ctrl-C (serial and with worker processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.errors import ExploreInterrupted, ReplayMismatch
from odp_async.explore import (
    ProgressUpdate,
    check,
    decode_token,
    encode_token,
    replay,
    runner,
    tokens,
)
from odp_async.explore.executors import ProcessExecutor
from odp_async.explore.target import Target
from odp_async.sim import RandomChooser, ReplayChooser
from tests._usermod import lost_update_source, pythonpath_env
from tests.conftest import UserModule

USER_MODULE = (
    lost_update_source("a", "b")
    + """
from odp_async._runtime.interrupts import CtrlC  # Ctrl-C, as the explorer's handler raises it

CALLS = [0]


async def interrupted_at(n, in_child):
    CALLS[0] += 1
    if CALLS[0] == n:
        if not in_child:
            raise CtrlC
        async def child():
            await checkpoint()
            raise CtrlC
        async with task_group() as tg:
            tg.start_soon(child, name="child")
    await lost_update()


async def clean():
    async def step():
        await checkpoint()

    async with task_group() as tg:
        tg.start_soon(step, name="a")
        tg.start_soon(step, name="b")


async def busy():
    # clean, but its dpor search is far from complete (untracked steps: every
    # interleaving of 4 tasks of 10 steps is a trace of its own)
    async def steps():
        for _ in range(10):
            await checkpoint()

    async with task_group() as tg:
        for name in "abcd":
            tg.start_soon(steps, name=name)
"""
)


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_interrupt")


# --- exact replays ---------------------------------------------------------------------------


def failing(target: Target) -> tuple[tuple[int, ...], object]:
    for seed in range(500):
        execution = target.run(RandomChooser(seed), max_steps=20_000)
        if execution.is_failure:
            return execution.sim.schedule, execution
    raise AssertionError("no failing schedule")


def test_a_replay_must_use_every_recorded_choice_and_no_more() -> None:
    target = Target.resolve("registration-race", "odp2014")
    schedule, execution = failing(target)
    token = encode_token(target, schedule, execution, 20_000)  # type: ignore[arg-type]
    assert replay(token).failure == execution.failure  # type: ignore[attr-defined]

    # an unused tail: the run ends before the recording does
    longer = encode_token(target, (*schedule, 0, 0), execution, 20_000)  # type: ignore[arg-type]
    with pytest.raises(ReplayMismatch, match=f"has {len(schedule) + 2} choices, but the run"):
        replay(longer)
    # too few: the run asks for a choice past the recording
    shorter = encode_token(target, schedule[:-3], execution, 20_000)  # type: ignore[arg-type]
    with pytest.raises(
        ReplayMismatch,
        match=f"has {len(schedule) - 3} choices, but the run asked for more than the "
        f"{len(schedule) - 3} recorded",
    ):
        replay(shorter)
    # out of range: a recorded answer the run does not offer
    wrong = encode_token(target, (*schedule[:-1], 99), execution, 20_000)  # type: ignore[arg-type]
    with pytest.raises(ReplayMismatch, match="offers only"):
        replay(wrong)


def test_a_lenient_replay_accepts_a_prefix() -> None:
    target = Target.resolve("classic:lost-update")
    schedule, _ = failing(target)
    with pytest.raises(ReplayMismatch, match="having made only"):
        target.run(ReplayChooser((*schedule, 1)), max_steps=1000)
    lenient = target.run(ReplayChooser((*schedule, 1), exact=False), max_steps=1000)
    assert lenient.sim.schedule == schedule


def test_a_version_1_token_still_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    target = Target.resolve("fault-vs-munmap", "naive")
    schedule, execution = failing(target)
    monkeypatch.setattr(tokens, "_PREFIX", "odp1")
    old = encode_token(target, schedule, execution, 20_000)  # type: ignore[arg-type]
    monkeypatch.undo()
    assert old.startswith("odp1.")
    assert decode_token(old).schedule == schedule
    assert replay(old).failure == execution.failure  # type: ignore[attr-defined]


# --- progress --------------------------------------------------------------------------------


@pytest.mark.parametrize("chooser", ["random", "dfs"])
def test_progress_is_reported_with_a_monotone_count(
    user: ModuleType, chooser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)  # report after every schedule
    seen: list[ProgressUpdate] = []
    result = check(user.clean, chooser=chooser, schedules=30, progress=seen.append)
    assert result.failure is None
    done = [u.done for u in seen]
    assert done == sorted(done)
    assert done[0] >= 1
    assert seen[-1].done == result.schedules
    assert {u.total for u in seen} == {30}
    elapsed = [u.elapsed for u in seen]
    assert elapsed == sorted(elapsed)


def test_progress_counts_failures_found_so_far(
    user: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)
    seen: list[ProgressUpdate] = []
    result = check(user.lost_update, schedules=40, stop_on_first=False, progress=seen.append)
    assert result.failure is not None
    failures = [u.failures for u in seen]
    assert failures == sorted(failures)
    assert failures[0] <= 1 < failures[-1] < 40


def test_progress_is_throttled(user: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from odp_async.explore import runner

    seen: list[ProgressUpdate] = []
    # no interval has passed (whatever the machine's speed): one report, at the end
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", float("inf"))
    check(user.busy, schedules=200, progress=seen.append)
    assert [u.done for u in seen] == [200]


# --- Ctrl-C ----------------------------------------------------------------------------------


@pytest.mark.parametrize("in_child", [False, True])
def test_a_keyboard_interrupt_stops_the_exploration_with_a_partial_result(
    user: ModuleType, in_child: bool
) -> None:
    user.CALLS[0] = 0
    with pytest.raises(ExploreInterrupted) as info:
        # random: one call per schedule, after the FIFO run before the search (the
        # portfolio's pct probes call it too)
        check(
            user.interrupted_at, 5, in_child, chooser="random", schedules=100, stop_on_first=False
        )
    result = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert result.interrupted
    assert result.schedules == 3
    # the lost update was found before the interrupt: reported, unshrunk, with a token
    assert result.failure is not None
    assert result.failure.violation.kind == "error"
    assert result.failure.shrunk is None
    assert result.failure.token is not None


def test_an_interrupt_is_never_recorded_as_the_programs_error(user: ModuleType) -> None:
    user.CALLS[0] = 0
    with pytest.raises(ExploreInterrupted) as info:
        check(user.interrupted_at, 1, True, schedules=10)
    assert info.value.result.schedules == 0
    assert info.value.result.failure is None


def test_a_keyboard_interrupt_in_a_worker_stops_the_pool(user: ModuleType) -> None:
    user.CALLS[0] = 0  # each forked worker counts its own calls: the 3rd call raises
    with pytest.raises(ExploreInterrupted) as info:
        check(user.interrupted_at, 3, False, schedules=10_000, jobs=2, stop_on_first=False)
    assert info.value.result.interrupted
    assert info.value.result.schedules < 10_000


CTRL_C = """
    import json, sys, time
    from odp_async.errors import ExploreInterrupted
    from odp_async.explore import check

    def progress(update):
        print("running", flush=True)

    try:
        check("{module}:busy", schedules=10_000_000, jobs={jobs}, progress=progress)
    except ExploreInterrupted as e:
        print(json.dumps([e.result.interrupted, e.result.schedules]), flush=True)
        sys.exit(130)
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_an_exploration_promptly(user: ModuleType, tmp_path: Path, jobs: int) -> None:
    env = pythonpath_env(tmp_path)
    code = textwrap.dedent(CTRL_C.format(module=user.__name__, jobs=jobs))
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: to every process of the group
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err  # workers ignore SIGINT: only the parent handles it
    interrupted, schedules = json.loads(out.strip().splitlines()[-1])
    assert interrupted
    assert schedules > 0
    assert took < 5.0  # the issue asks for 1 s (3 s with workers); generous under load


def test_workers_ignore_sigint_so_only_the_parent_handles_ctrl_c(user: ModuleType) -> None:
    spec = Target.resolve(user.clean).spec()
    config = runner.ExploreConfig(chooser="random")  # no dpor slot: the chunk runs here
    pool = ProcessExecutor(1)
    try:
        pool.submit(0, runner.run_chunk, spec, config, 0, 1, 0)
        (done,) = pool.wait(None)
        assert done.value.ran == 1  # the worker is serving
        (pid,) = pool.worker_pids
        os.kill(pid, signal.SIGINT)
        pool.submit(1, runner.run_chunk, spec, config, 1, 2, 0)
        (done,) = pool.wait(None)
        assert (done.key, done.value.ran) == (1, 1)  # still serving: SIGINT was ignored
    finally:
        pool.close()
    assert pool.worker_pids == []


def test_jobs_never_start_more_workers_than_the_machine_or_the_work_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from odp_async.explore import explore, runner

    started: list[int] = []
    real = runner.ProcessExecutor

    def counting(n: int, *args: object, **kwargs: object) -> object:
        started.append(n)
        return real(n, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "ProcessExecutor", counting)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    a = explore("classic:lost-update", schedules=600, jobs=64, stop_on_first=False, shrink=False)
    assert started == [4]  # twice the CPUs, not 64
    b = explore("classic:lost-update", schedules=600, jobs=1, stop_on_first=False, shrink=False)
    assert a.failure is not None
    assert b.failure is not None
    assert a.failure.index == b.failure.index
