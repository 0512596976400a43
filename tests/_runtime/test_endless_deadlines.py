"""An infinite deadline never fires in the sim (new-user trial 18a, finding 2).

A task in ``sleep(math.inf)`` that nobody cancels hangs for ever on trio and asyncio; the
sim used to jump its clock to infinity and end the sleep, so every chooser called such a
program ``complete, no violation``.  Now ``sleep(inf)``, a scope whose deadline is
infinite, and a finite time plus a delay past the largest float (infinite too, as on
trio) never fire: when nothing else can run, the run is a deadlock that names the
sleeping task.  Huge finite deadlines still fire, and the clock never becomes infinite
or NaN.  User code in tmp_path.
"""

from __future__ import annotations

import math
from types import ModuleType

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore import check
from odp_async.sim import run
from tests.conftest import UserModule

USER_MODULE = """
import math

import odp_async as oa

TIMES = []


async def forgot_cancel():
    async def server():
        await oa.sleep(math.inf)

    async with oa.task_group() as tg:
        tg.start_soon(server, name="server")
        await oa.checkpoint("main's work")


async def cancelled_server():
    async def server():
        await oa.sleep(math.inf)

    async with oa.task_group() as tg:
        tg.start_soon(server, name="server")
        await oa.sleep(5)
        tg.cancel_scope.cancel()
    TIMES.append(oa.now())


async def endless_scope():
    # a scope whose deadline is infinite cancels nothing: the wait below never ends
    with oa.move_on_after(math.inf):
        await oa.sleep(math.inf)


async def endless_fail_after():
    with oa.fail_after(math.inf):
        await oa.sleep(math.inf)


async def endless_scope_deadline():
    with oa.cancel_scope(deadline=math.inf):
        await oa.sleep(math.inf)


async def huge_then_overflow():
    await oa.sleep(1e308)
    TIMES.append(oa.now())
    # 1e308 + 1.7e308 is past the largest float: a deadline that never comes
    await oa.sleep(1.7e308)
    TIMES.append(oa.now())


async def huge_scope_fires():
    with oa.move_on_after(1e300) as scope:
        await oa.sleep(math.inf)
    TIMES.append((oa.now(), scope.cancelled_caught))
    with oa.move_on_after(1e300):  # at t=1e300: t + 1e300 is still finite, it fires
        await oa.sleep(math.inf)
    TIMES.append(oa.now())


async def overflowing_scope():
    await oa.sleep(1e308)
    with oa.move_on_after(1.7e308):  # past the largest float: never fires
        await oa.sleep(math.inf)
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    module = user_module(USER_MODULE, "user_endless")
    module.TIMES.clear()
    return module


@pytest.mark.parametrize("chooser", ["portfolio", "random", "pct", "dfs", "dpor"])
def test_a_sleep_nobody_cancels_is_a_deadlock_naming_the_sleeper(
    user: ModuleType, chooser: str
) -> None:
    result = check(user.forgot_cancel, chooser=chooser, schedules=50, seed=0)
    failure = result.failure
    assert failure is not None, result.claim
    assert str(failure.verdict) == "deadlock"
    text = failure.describe()
    assert "server waits for the end of an endless sleep (sleep(inf))" in text
    assert "main waits for its task group's children to finish: server" in text


@pytest.mark.parametrize(
    "name", ["endless_scope", "endless_fail_after", "endless_scope_deadline", "overflowing_scope"]
)
def test_an_infinite_scope_deadline_never_fires(user: ModuleType, name: str) -> None:
    result = run(getattr(user, name), seed=0)
    assert result.outcome == "deadlock"
    assert result.deadlock is not None
    assert [b.task for b in result.deadlock.blocked] == ["main"]
    assert "endless sleep" in result.deadlock.describe()
    assert math.isfinite(result.time)


def test_a_cancelled_endless_sleep_ends(user: ModuleType) -> None:
    result = run(user.cancelled_server, seed=0)
    assert result.outcome == "ok"
    assert user.TIMES == [5.0]


def test_huge_finite_deadlines_fire_and_an_overflowing_one_never(user: ModuleType) -> None:
    result = run(user.huge_then_overflow, seed=0)
    assert result.outcome == "deadlock"
    assert user.TIMES == [1e308]
    assert result.time == 1e308

    user.TIMES.clear()
    result = run(user.huge_scope_fires, seed=0)
    assert result.outcome == "ok"
    assert user.TIMES == [(1e300, True), 2e300]


async def _nan_scope() -> None:
    import odp_async as oa

    with oa.move_on_after(math.nan):
        await oa.checkpoint()


async def _nan_deadline() -> None:
    import odp_async as oa

    with oa.cancel_scope(deadline=math.nan):
        await oa.checkpoint()


@pytest.mark.parametrize("main", [_nan_scope, _nan_deadline])
def test_a_nan_deadline_is_refused(main: object) -> None:
    result = run(main, seed=0)  # type: ignore[arg-type]
    assert result.outcome == "error"
    assert isinstance(result.error, InvalidArgument)
    assert "nan" in str(result.error).lower()
