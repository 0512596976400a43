"""A partial deadlock stops the run on the block that closes its cycle (README
"Exploring"), and only when nothing that could still run could break the cycle: a
deadline around a wait, a task that could cancel a stuck one (the group's body, a sibling
holding the task group), a completion anyone may complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from odp_async._runtime.sim import PARK, run
from tests._usermod import pythonpath_env, write_user_module
from tests.conftest import UserModule

PROGRAMS = """
from odp_async import Completion, Mutex, checkpoint, move_on_after, sleep, task_group


async def abba_behind_busy(busy_steps=5000):
    a, b = Mutex("a"), Mutex("b")
    ev1, ev2 = Completion("e1"), Completion("e2")

    async def t1():
        async with a:
            ev1.complete_all()
            await ev2.wait()
            async with b:
                pass

    async def t2():
        async with b:
            ev2.complete_all()
            await ev1.wait()
            async with a:
                pass

    async def busy():
        for _ in range(busy_steps):
            await checkpoint("busy")

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")


async def abba_behind_a_sleeper():
    a, b = Mutex("a"), Mutex("b")
    ev1, ev2 = Completion("e1"), Completion("e2")

    async def t1():
        async with a:
            ev1.complete_all()
            await ev2.wait()
            async with b:
                pass

    async def t2():
        async with b:
            ev2.complete_all()
            await ev1.wait()
            async with a:
                pass

    async def sleeper():
        for _ in range(200):
            await sleep(1)

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(sleeper, name="sleeper")


async def abba_with_a_timeout():
    a, b = Mutex("a"), Mutex("b")
    ev1, ev2 = Completion("e1"), Completion("e2")
    out = []

    async def t1():
        async with a:
            ev1.complete_all()
            await ev2.wait()
            with move_on_after(1):
                async with b:
                    out.append("t1 got b")

    async def t2():
        async with b:
            ev2.complete_all()
            await ev1.wait()
            async with a:
                out.append("t2 got a")

    async def busy():
        for _ in range(200):
            await checkpoint("busy")

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")
    return out


def _cycle(a, b, ev1, ev2):
    async def t1():
        async with a:
            ev1.complete_all()
            await ev2.wait()
            async with b:
                pass

    async def t2():
        async with b:
            ev2.complete_all()
            await ev1.wait()
            async with a:
                pass

    return t1, t2


GROUPS = {}


async def abba_a_sibling_cancels(tg_as):
    a, b = Mutex("a"), Mutex("b")
    t1, t2 = _cycle(a, b, Completion("e1"), Completion("e2"))

    class Service:
        def __init__(self, tg):
            self._tg = tg

        async def watchdog(self):
            for _ in range(100):
                await checkpoint("watch")
            self._tg.cancel_scope.cancel()

    async def by_argument(tg):
        for _ in range(100):
            await checkpoint("watch")
        tg.cancel_scope.cancel()

    async def by_global():
        for _ in range(100):
            await checkpoint("watch")
        GROUPS["main"].cancel_scope.cancel()

    async with task_group() as tg:
        GROUPS["main"] = tg

        async def by_closure():
            for _ in range(100):
                await checkpoint("watch")
            tg.cancel_scope.cancel()

        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        if tg_as == "argument":
            tg.start_soon(by_argument, tg, name="watchdog")
        elif tg_as == "closure":
            tg.start_soon(by_closure, name="watchdog")
        elif tg_as == "global":
            tg.start_soon(by_global, name="watchdog")
        else:
            tg.start_soon(Service(tg).watchdog, name="watchdog")
    return "the watchdog broke it"


async def join_behind_busy(busy_steps=5000):
    # the parent holds a and joins its group; the group's child waits for a
    a = Mutex("a")
    asking = Completion("asking")

    async def child():
        asking.complete_all()
        async with a:
            pass

    async def parent():
        async with a:
            async with task_group() as inner:
                inner.start_soon(child, name="child")
                await asking.wait()

    async def busy():
        for _ in range(busy_steps):
            await checkpoint("busy")

    async with task_group() as tg:
        tg.start_soon(parent, name="parent")
        tg.start_soon(busy, name="busy")


async def a_completion_in_the_cycle():
    # t1 waits for t2's lock; t2 waits on a completion that busy completes at the end
    a = Mutex("a")
    go, held = Completion("go"), Completion("held")

    async def t1():
        await held.wait()
        async with a:
            pass

    async def t2():
        async with a:
            held.complete_all()
            await go.wait()

    async def busy():
        for _ in range(100):
            await checkpoint("busy")
        go.complete_all()

    async with task_group() as tg:
        tg.start_soon(t1, name="t1")
        tg.start_soon(t2, name="t2")
        tg.start_soon(busy, name="busy")
    return "done"
"""


@pytest.mark.parametrize("max_steps", [300, 100_000])
def test_the_run_stops_on_the_step_that_closes_the_cycle(
    user_module: UserModule, max_steps: int
) -> None:
    mod = user_module(PROGRAMS, "partial")
    for seed in range(10):
        r = run(mod.abba_behind_busy, seed=seed, max_steps=max_steps, trace=True)
        assert r.outcome == "deadlock", (seed, r.outcome)
        assert r.deadlock is not None
        assert r.deadlock.is_partial
        assert r.deadlock.runnable == ("busy",)
        assert [b.task for b in r.deadlock.cycle] == ["t1", "t2"]
        assert r.trace is not None
        assert r.steps < 60
        step, task_id, op, _ = r.trace[-1]  # the last step is one of the two blocking
        names = dict(r.tasks)
        assert (step, names[task_id], op) in {(r.steps, "t1", PARK), (r.steps, "t2", PARK)}
        # the block before it was the other one's: the cycle was open until that step
        parks = [e for e in r.trace if e[2] == PARK and names[e[1]] in ("t1", "t2")]
        assert {names[parks[-1][1]], names[parks[-2][1]]} == {"t1", "t2"}


def test_a_join_that_closes_the_cycle_stops_the_run(user_module: UserModule) -> None:
    """The cycle through a task group: in some seeds the child blocks on the lock first
    and the parent's join closes the cycle; in others the join comes first."""
    mod = user_module(PROGRAMS, "partial")
    for seed in range(10):
        r = run(mod.join_behind_busy, seed=seed, max_steps=300)
        assert r.outcome == "deadlock", (seed, r.outcome)
        assert r.deadlock is not None
        assert r.deadlock.is_partial
        assert r.deadlock.runnable == ("busy",)
        assert r.steps < 60, (seed, r.steps)


def test_a_sleeper_beside_the_cycle_could_still_run(user_module: UserModule) -> None:
    # trial 19a f2: a task asleep with its timer pending was left out of "could still
    # run", so the early-stopped deadlock lost its `(partial: ...)` tag
    mod = user_module(PROGRAMS, "partial")
    for seed in range(10):
        r = run(mod.abba_behind_a_sleeper, seed=seed)
        assert r.outcome == "deadlock", (seed, r.outcome)
        assert r.deadlock is not None
        assert r.deadlock.runnable == ("sleeper",), (seed, r.deadlock)
        assert r.deadlock.describe().endswith("(partial: sleeper could still run)")


def test_a_cycle_under_a_deadline_is_not_called_early(user_module: UserModule) -> None:
    mod = user_module(PROGRAMS, "partial")
    for seed in range(20):
        r = run(mod.abba_with_a_timeout, seed=seed)
        assert r.outcome == "ok", (seed, r.outcome, r.deadlock)
        assert r.value == ["t2 got a"]


@pytest.mark.parametrize("tg_as", ["argument", "closure", "attribute", "global"])
def test_a_cycle_a_sibling_could_cancel_is_not_called_early(
    user_module: UserModule, tg_as: str
) -> None:
    mod = user_module(PROGRAMS, "partial")
    for seed in range(10):
        r = run(mod.abba_a_sibling_cancels, tg_as, seed=seed)
        assert r.outcome == "ok", (seed, r.outcome, r.deadlock)


def test_a_wait_anyone_may_end_is_no_cycle(user_module: UserModule) -> None:
    mod = user_module(PROGRAMS, "partial")
    for seed in range(20):
        assert run(mod.a_completion_in_the_cycle, seed=seed).unwrap() == "done"


def test_explore_reports_and_shrinks_a_short_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, PROGRAMS, "partialcli", monkeypatch)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odp_async.cli",
            "explore",
            f"{name}:abba_behind_busy",
            "--chooser",
            "random",
            "--schedules",
            "5",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "shrunk to" in x)
    shrunk = int(line.split("shrunk to ")[1].split(" steps")[0])
    step = int(line.split("deadlock (step ")[1].split(",")[0])
    assert shrunk == step < 60, line
    assert "(partial: busy could still run)" in line
