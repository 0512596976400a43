"""A step bound reached only because the chooser kept a task off the CPU is not starvation.

A spinner waits for a flag another task sets.  pct can give the setter the lowest priority
and keep the spinner running until any step bound; dfs without preemptions runs whichever
task it started until it blocks.  Under every fair scheduler the program finishes, so
neither may report ``starvation``; a spinner waiting for a flag nobody sets must never
pass: it is inconclusive (a bound cannot tell it from a long program), under every chooser.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async._runtime.choosers import ReplayChooser
from odp_async.explore import check
from odp_async.explore.fairness import RoundRobinChooser
from odp_async.explore.target import Target
from tests.conftest import UserModule

USER = """
from odp_async import checkpoint, task_group


async def spin_until_set() -> None:
    flag = {"set": False}

    async def setter() -> None:
        await checkpoint("about to set")
        flag["set"] = True

    async def spinner() -> None:
        while not flag["set"]:
            await checkpoint("spin")

    async with task_group() as tg:
        tg.start_soon(spinner, name="spinner")
        tg.start_soon(setter, name="setter")


async def spin_forever() -> None:
    flag = {"set": False}

    async def spinner() -> None:
        while not flag["set"]:
            await checkpoint("spin")

    async def idle() -> None:
        await checkpoint("idle")

    async with task_group() as tg:
        tg.start_soon(spinner, name="spinner")
        tg.start_soon(idle, name="idle")
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "fair_user_programs")


CHOOSERS = [
    {"chooser": "random"},
    {"chooser": "pct", "depth": 1},
    {"chooser": "pct", "depth": 3},
    {"chooser": "dfs", "preemption_bound": 0},
    {"chooser": "dfs"},
    {"chooser": "dpor"},
]


@pytest.mark.parametrize("settings", CHOOSERS, ids=lambda s: "-".join(map(str, s.values())))
def test_a_spinner_the_chooser_starves_is_not_starvation(
    user: ModuleType, settings: dict[str, object]
) -> None:
    result = check(user.spin_until_set, schedules=60, max_steps=200, seed=3, **settings)
    assert result.failure is None, result.failure.describe()


def test_the_chooser_really_kept_the_setter_off_the_cpu(user: ModuleType) -> None:
    """The case above is not vacuous: a spinner-first schedule that never runs the setter
    reaches the bound (and is judged by the fair continuation, which finishes)."""
    target = Target.resolve(user.spin_until_set)
    # the spinner is task 0 of the runnable pair every time: never the setter
    never = [0] * 300
    execution = target.run(ReplayChooser(never, exact=False), max_steps=200)
    assert execution.sim.outcome == "step-limit"
    assert execution.violations == ()


@pytest.mark.parametrize("settings", CHOOSERS, ids=lambda s: "-".join(map(str, s.values())))
def test_a_real_livelock_is_never_a_pass(user: ModuleType, settings: dict[str, object]) -> None:
    """A spinner waiting for a flag nobody sets does not finish under a fair continuation
    either; the bound cannot tell it from a long program, so it is inconclusive (no
    verdict: exit 5 on the CLI), never clean and never the program's ``starvation``."""
    result = check(user.spin_forever, schedules=20, max_steps=200, seed=3, **settings)
    assert result.failure is None
    assert result.inconclusive
    assert result.unfinished == result.schedules > 0
    assert result.claim.startswith("inconclusive: ")
    assert "step bound of 200 steps" in result.claim
    assert not result.complete


def test_round_robin_gives_every_runnable_task_a_turn() -> None:
    class T:
        def __init__(self, id: int) -> None:
            self.id = id

    tasks = [T(0), T(1), T(2)]
    chooser = RoundRobinChooser()
    picks = [tasks[chooser.choose(tasks, None)].id for _ in range(6)]
    assert picks == [0, 1, 2, 0, 1, 2]
