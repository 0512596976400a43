"""A finished sim run leaves no reference cycle: its objects are freed on return.

With the garbage collector off, weak references to the run's runtime, tasks, task
groups, cancel scopes and result must die as soon as the caller drops the result; and
a collection afterwards finds nothing of the run's to free.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import odp_async
from odp_async import sim
from odp_async._runtime import current_runtime


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Seen:
    """Weak references to every runtime object a program met."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Any]] = []

    def add(self, obj: object) -> None:
        self.refs.append(weakref.ref(obj))

    def here(self) -> None:
        self.add(current_runtime())
        self.add(odp_async.current_task())

    def alive(self) -> list[object]:
        return [r() for r in self.refs if r() is not None]


def _ok(seen: Seen) -> Callable[[], Awaitable[Any]]:
    async def main() -> int:
        seen.here()

        async def worker(k: int) -> None:
            seen.here()
            with odp_async.move_on_after(5) as scope:
                seen.add(scope)
                await odp_async.checkpoint(k)
                await odp_async.sleep(1)

        async with odp_async.task_group() as tg:
            seen.add(tg)
            tg.start_soon(worker, 1)
            tg.start_soon(worker, 2)
        return 7

    return main


def _error(seen: Seen) -> Callable[[], Awaitable[Any]]:
    async def main() -> None:
        seen.here()

        async def bad() -> None:
            seen.here()
            await odp_async.checkpoint()
            raise ValueError("boom")

        async def sleeper() -> None:
            seen.here()
            await odp_async.sleep(10)  # cancelled by bad's error

        async with odp_async.task_group() as tg:
            seen.add(tg)
            tg.start_soon(bad)
            tg.start_soon(sleeper)

    return main


def _step_limit(seen: Seen) -> Callable[[], Awaitable[Any]]:
    async def main() -> None:
        seen.here()

        async def spin() -> None:
            seen.here()
            while True:
                await odp_async.checkpoint()

        async with odp_async.task_group() as tg:
            seen.add(tg)
            tg.start_soon(spin)
            tg.start_soon(spin)

    return main


def _deadlock(seen: Seen) -> Callable[[], Awaitable[Any]]:
    async def main() -> None:
        seen.here()
        gate = odp_async.Completion()  # never completed

        async def waiter() -> None:
            seen.here()
            await gate.wait()

        async with odp_async.task_group() as tg:
            seen.add(tg)
            tg.start_soon(waiter)

    return main


PROGRAMS = {
    "ok": (_ok, {}),
    "error": (_error, {}),
    "step-limit": (_step_limit, {"max_steps": 40}),
    "deadlock": (_deadlock, {}),
}


@pytest.mark.parametrize("outcome", sorted(PROGRAMS))
@pytest.mark.usefixtures("no_gc")
def test_a_finished_run_is_freed_without_the_collector(outcome: str) -> None:
    make, kwargs = PROGRAMS[outcome]
    for seed in range(5):
        seen = Seen()
        result = sim.run(make(seen), seed=seed, **kwargs)
        assert result.outcome == outcome
        assert len(seen.refs) >= 4  # runtime, tasks, group: the program did run
        result_ref = weakref.ref(result)
        # Once the result is dropped (an error's traceback may reach the run's frames
        # until then), nothing of the run is left.
        del result
        assert result_ref() is None
        assert seen.alive() == []


@pytest.mark.usefixtures("no_gc")
def test_the_collector_finds_nothing_of_the_runs() -> None:
    for make, kwargs in PROGRAMS.values():
        for seed in range(3):
            sim.run(make(Seen()), seed=seed, **kwargs)
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    # The sync primitives' own cycles (a queue naming its owner) are theirs, not the run's.
    assert kinds <= {"Completion", "WaitQueue", "dict"}, kinds
