"""Cancellation through task groups: the sim agrees with trio and with anyio on asyncio.

New-user trial 16a, defect 1: a task group whose body ended normally, waiting for its
children when a scope around it (``fail_after``, ``move_on_after``, a cancelled scope) was
cancelled, lost the cancellation in the sim: the children were cancelled, their `Cancelled`
was dropped, and the parent ran on (``fail_after(1)`` around a 5 s job returned "finished
in time"; the explorer called it clean).

A differential test: small user programs (written to tmp_path, imported by name) run on
trio and on asyncio through the runtime seam, and in the sim under several seeds; the
observable outcome (the returned value, with the ``cancelled_caught`` of the scopes, or
the exception's shape) must be the same everywhere.  The live loops run on virtual time
(trio's `MockClock` with autojump, an asyncio loop whose clock jumps to its next timer),
so a deadline hits exactly where the program says, without waiting for it.

A few programs get different answers from trio and from anyio on asyncio (a child that
swallows or shields its cancellation, a child that cancels the scope around its group):
there the sim follows trio, as its cancel scopes do throughout.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from types import ModuleType
from typing import Any

import anyio
import pytest
import trio.testing

from odp_async._runtime import sim
from tests.conftest import UserModule

SEEDS = range(6)

PROGRAMS = '''
import odp_async as oa


async def fail_after_group():
    """The trial's f02b: a 5 s job inside a 1 s deadline."""
    with oa.fail_after(1):
        async with oa.task_group() as g:
            g.start_soon(oa.sleep, 5)
    return "finished in time"


async def move_on_after_group():
    """The trial's f02 (main2): nothing after the group runs inside the scope."""
    done = []
    with oa.move_on_after(1) as scope:
        async with oa.task_group() as g:
            g.start_soon(oa.sleep, 5)
        done.append("after group")
    return done, scope.cancelled_caught


async def cancelled_scope_group():
    """A scope cancelled by a sibling while the group waits for its child."""
    log = []
    with oa.cancel_scope() as outer:

        async def canceller():
            await oa.sleep(1)
            outer.cancel()

        async with oa.task_group() as top:
            top.start_soon(canceller)
            async with oa.task_group() as g:
                g.start_soon(oa.sleep, 5)
            log.append("after inner group")
        log.append("after outer group")
    return log, outer.cancelled_caught


async def watchdog():
    """The trial's f02 (main): a watchdog's error cancels a fetcher's nested group."""
    state = {"items": [], "complete": False}

    async def fetch(i):
        await oa.sleep(1 + i)
        state["items"].append(i)

    async def fetcher():
        async with oa.task_group() as inner:
            for i in range(2):
                inner.start_soon(fetch, i)
        state["complete"] = True

    async def dog():
        await oa.sleep(0.5)
        raise TimeoutError("watchdog fired")

    try:
        async with oa.task_group() as tg:
            tg.start_soon(fetcher)
            tg.start_soon(dog)
    except* TimeoutError:
        pass
    return state["items"], state["complete"]


async def nested_two_deep():
    log = []

    async def inner():
        async with oa.task_group() as g:
            g.start_soon(oa.sleep, 5)
        log.append("inner after")

    with oa.move_on_after(1) as scope:
        async with oa.task_group() as g:
            g.start_soon(inner)
        log.append("outer after")
    log.append("done")
    return log, scope.cancelled_caught


async def fail_after_three_deep():
    async def level(depth):
        async with oa.task_group() as g:
            if depth:
                g.start_soon(level, depth - 1)
            else:
                g.start_soon(oa.sleep, 5)
        return "level done"

    with oa.fail_after(1):
        async with oa.task_group() as g:
            g.start_soon(level, 2)
    return "finished in time"


async def deadlines_at_three_times():
    """An inner deadline at t=1 (caught inside), the outer one at t=2, 3 groups deep."""
    log = []

    async def leaf(seconds):
        await oa.sleep(seconds)
        log.append(f"leaf {seconds}")

    async def middle():
        with oa.move_on_after(1) as m:
            async with oa.task_group() as g:
                g.start_soon(leaf, 0.5)
                g.start_soon(leaf, 3)
            log.append("middle after first group")
        log.append(f"middle caught {m.cancelled_caught}")
        async with oa.task_group() as g:
            g.start_soon(leaf, 4)
        log.append("middle end")

    with oa.move_on_after(2) as outer:
        async with oa.task_group() as g:
            g.start_soon(middle)
            g.start_soon(leaf, 1.5)
        log.append("outer after group")
    return log, outer.cancelled_caught


async def deadline_after_everything():
    log = []
    with oa.move_on_after(10) as scope:
        async with oa.task_group() as g:
            g.start_soon(oa.sleep, 1)
        log.append("after group")
    return log, scope.cancelled_caught


async def deadline_in_the_body():
    log = []
    with oa.move_on_after(1) as scope:
        async with oa.task_group() as g:
            g.start_soon(oa.sleep, 5)
            await oa.sleep(3)
            log.append("body after sleep")
        log.append("after group")
    return log, scope.cancelled_caught


async def own_scope_cancelled():
    async with oa.task_group() as g:
        g.start_soon(oa.sleep, 5)
        g.cancel_scope.cancel()
    return g.cancel_scope.cancelled_caught


async def own_deadline():
    log = []
    async with oa.task_group() as g:
        g.cancel_scope.deadline = oa.now() + 1
        g.start_soon(oa.sleep, 5)
    log.append("after group")
    return log, g.cancel_scope.cancelled_caught


async def shielded_group():
    log = []
    with oa.move_on_after(1) as scope:
        with oa.cancel_scope(shield=True) as shield:
            async with oa.task_group() as g:
                g.start_soon(oa.sleep, 2)
            log.append("shielded group done")
        await oa.checkpoint()
        log.append("after checkpoint")
    return log, scope.cancelled_caught, shield.cancelled_caught


async def shielded_finally():
    log = []

    async def worker():
        try:
            await oa.sleep(5)
        finally:
            with oa.cancel_scope(shield=True):
                await oa.sleep(1)
            log.append("cleaned up")
            await oa.checkpoint()
            log.append("unreachable")

    with oa.move_on_after(1) as scope:
        async with oa.task_group() as g:
            g.start_soon(worker)
        log.append("after group")
    return log, scope.cancelled_caught


async def child_catches_its_own_deadline():
    log = []

    async def child():
        with oa.move_on_after(1) as mine:
            await oa.sleep(5)
        log.append(f"child caught {mine.cancelled_caught}")

    with oa.move_on_after(10) as scope:
        async with oa.task_group() as g:
            g.start_soon(child)
        log.append("after group")
    return log, scope.cancelled_caught


async def empty_group_in_a_cancelled_scope():
    log = []
    with oa.cancel_scope() as scope:
        scope.cancel()
        async with oa.task_group():
            pass
        log.append("after group")
    return log, scope.cancelled_caught


async def child_error_while_cancelled():
    async def failing():
        try:
            await oa.sleep(5)
        finally:
            raise ValueError("cleanup failed")

    with oa.move_on_after(1):
        async with oa.task_group() as g:
            g.start_soon(failing)
            g.start_soon(oa.sleep, 5)
    return "finished"


async def body_error_while_cancelled():
    with oa.move_on_after(1):
        async with oa.task_group() as g:
            g.start_soon(oa.sleep, 5)
            try:
                await oa.sleep(2)
            finally:
                raise KeyError("body")
    return "finished"


async def except_star_around_a_cancelled_group():
    log = []
    with oa.move_on_after(1) as scope:
        try:
            async with oa.task_group() as g:
                g.start_soon(oa.sleep, 5)
        except* ValueError:
            log.append("not a ValueError")
        log.append("after try")
    return log, scope.cancelled_caught


async def scope_in_a_child_catches_its_group():
    log = []

    async def child():
        with oa.move_on_after(1) as mine:
            async with oa.task_group() as g:
                g.start_soon(oa.sleep, 5)
            log.append("after group")
        log.append(f"child caught {mine.cancelled_caught}")

    async with oa.task_group() as g:
        g.start_soon(child)
    return log


async def child_swallows_its_cancellation():
    """trio runs the code after the group (no child was cancelled in the end); anyio on
    asyncio raises the wait's own cancellation there."""
    log = []

    async def child():
        try:
            await oa.sleep(5)
        except oa.cancelled_exc_class():
            log.append("swallowed")

    with oa.move_on_after(1) as scope:
        async with oa.task_group() as g:
            g.start_soon(child)
        log.append("after group")
    return log, scope.cancelled_caught


async def child_shields_itself():
    log = []

    async def child():
        with oa.cancel_scope(shield=True):
            await oa.sleep(2)
        log.append("child done")

    with oa.move_on_after(1) as scope:
        async with oa.task_group() as g:
            g.start_soon(child)
        log.append("after group")
    return log, scope.cancelled_caught


async def child_cancels_the_scope_around_it():
    log = []
    with oa.cancel_scope() as scope:

        async def child():
            scope.cancel()

        async with oa.task_group() as g:
            g.start_soon(child)
        log.append("after group")
    return log, scope.cancelled_caught
'''

#: trio and anyio on asyncio agree on these, and the sim must agree with both.
AGREED = [
    "fail_after_group",
    "move_on_after_group",
    "cancelled_scope_group",
    "watchdog",
    "nested_two_deep",
    "fail_after_three_deep",
    "deadlines_at_three_times",
    "deadline_after_everything",
    "deadline_in_the_body",
    "own_scope_cancelled",
    "own_deadline",
    "shielded_group",
    "shielded_finally",
    "child_catches_its_own_deadline",
    "empty_group_in_a_cancelled_scope",
    "child_error_while_cancelled",
    "body_error_while_cancelled",
    "except_star_around_a_cancelled_group",
    "scope_in_a_child_catches_its_group",
]

#: anyio on asyncio answers otherwise; the sim follows trio.
TRIO_ONLY = [
    "child_swallows_its_cancellation",
    "child_shields_itself",
    "child_cancels_the_scope_around_it",
]

#: What the trial's programs must give (a check that the differential test is not
#: comparing three equally wrong answers).
EXPECTED = {
    "fail_after_group": ("raised", "TimeoutError"),
    "move_on_after_group": ("returned", ([], True)),
    "cancelled_scope_group": ("returned", ([], True)),
    "watchdog": ("returned", ([], False)),
    "nested_two_deep": ("returned", (["done"], True)),
    "fail_after_three_deep": ("raised", "TimeoutError"),
    "deadlines_at_three_times": (
        "returned",
        (["leaf 0.5", "middle caught True", "leaf 1.5"], True),
    ),
    "scope_in_a_child_catches_its_group": ("returned", ["child caught True"]),
}


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time: when it would wait for its next timer with
    nothing ready, its clock jumps there instead (trio's autojump clock, for asyncio)."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0
        selector = self._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is None or timeout <= 0:
                return real_select(timeout)  # type: ignore[no-any-return]
            ready = real_select(0)
            if not ready:
                self._virtual_now += timeout
            return ready  # type: ignore[no-any-return]

        selector.select = select

    def time(self) -> float:
        return self._virtual_now


def _shape(error: BaseException) -> object:
    if isinstance(error, BaseExceptionGroup):
        return ("group", tuple(sorted(str(_shape(e)) for e in error.exceptions)))
    return type(error).__name__


def _outcome(call: Callable[[], Any]) -> tuple[str, object]:
    try:
        value = call()
    except BaseException as e:
        return ("raised", _shape(e))
    return ("returned", value)


def _on_trio(fn: Callable[[], Any]) -> tuple[str, object]:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return _outcome(lambda: anyio.run(fn, backend="trio", backend_options={"clock": clock}))


def _on_asyncio(fn: Callable[[], Any]) -> tuple[str, object]:
    options = {"loop_factory": _VirtualTimeLoop}
    return _outcome(lambda: anyio.run(fn, backend="asyncio", backend_options=options))


def _in_sim(fn: Callable[[], Any], seed: int) -> tuple[str, object]:
    result = sim.run(fn, seed=seed)
    if result.outcome == "ok":
        return ("returned", result.value)
    if result.outcome == "error":
        assert result.error is not None
        return ("raised", _shape(result.error))
    return (result.outcome, None)


@pytest.fixture
def programs(user_module: UserModule) -> ModuleType:
    return user_module(PROGRAMS, "s14_cancel")


@pytest.mark.parametrize("name", AGREED)
def test_the_sim_agrees_with_trio_and_asyncio(programs: ModuleType, name: str) -> None:
    fn = getattr(programs, name)
    on_trio = _on_trio(fn)
    assert _on_asyncio(fn) == on_trio, "the live runtimes disagree: not a differential case"
    for seed in SEEDS:
        assert _in_sim(fn, seed) == on_trio, f"seed {seed}"
    if name in EXPECTED:
        assert on_trio == EXPECTED[name]


@pytest.mark.parametrize("name", TRIO_ONLY)
def test_where_the_live_runtimes_differ_the_sim_follows_trio(
    programs: ModuleType, name: str
) -> None:
    fn = getattr(programs, name)
    on_trio = _on_trio(fn)
    for seed in SEEDS:
        assert _in_sim(fn, seed) == on_trio, f"seed {seed}"


def test_the_explorer_finds_the_deadline_the_sim_once_missed(programs: ModuleType) -> None:
    from odp_async.explore import check

    found = check(programs.fail_after_group, schedules=20)
    assert found.failure is not None
    assert "TimeoutError" in found.failure.describe()
