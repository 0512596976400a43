"""Classic concurrency bugs in small programs that have nothing to do with ODP.

Contract
    Each program is an async function of no arguments written against odp_async's runtime
    and primitives only; a bug shows as an `AssertionError` (a wrong result), a deadlock,
    or a step limit.  Shared plain state is reached through checkpoints that declare their
    `Footprint`, so partial-order reduction can tell independent steps apart.

    - ``lost-update``: two tasks read-modify-write a counter with a yield in between.
    - ``lock-order``: two tasks take two mutexes in opposite orders (ABBA).
    - ``two-preemptions``: a reader sees an intermediate value and then a later one; no
      schedule with fewer than two preemptions shows it.
    - ``locked-counter``: `n` identical tasks increment a counter under a mutex (no bug:
      the exhaustive-search and reduction benchmark).

See also
    `odp_async.explore`, `odp_async.scenarios.builtin` (the ODP scenarios).
"""

from __future__ import annotations

from .. import _runtime as rt
from .._runtime.footprint import Footprint
from ..sync import Mutex
from .model import Scenario, Verdict

__all__ = ["CLASSIC", "locked_counter", "lock_order", "lost_update", "two_preemptions"]


async def lost_update() -> int:
    state = {"x": 0}

    async def increment() -> None:
        await rt.checkpoint(Footprint.read("x"))
        value = state["x"]
        await rt.checkpoint(Footprint.write("x"))
        state["x"] = value + 1

    async with rt.task_group() as tg:
        tg.start_soon(increment, name="inc1")
        tg.start_soon(increment, name="inc2")
    assert state["x"] == 2, f"lost update: two increments left x == {state['x']}"
    return state["x"]


async def lock_order() -> None:
    a, b = Mutex("a"), Mutex("b")

    async def forward() -> None:
        async with a, b:
            pass

    async def backward() -> None:
        async with b, a:
            pass

    async with rt.task_group() as tg:
        tg.start_soon(forward, name="AB")
        tg.start_soon(backward, name="BA")


async def two_preemptions() -> tuple[int, int]:
    state = {"x": 0}
    seen: list[int] = []

    async def writer() -> None:
        await rt.checkpoint(Footprint.write("x"))
        state["x"] = 1
        await rt.checkpoint(Footprint.write("x"))
        state["x"] = 2

    async def reader() -> None:
        await rt.checkpoint(Footprint.read("x"))
        seen.append(state["x"])
        await rt.checkpoint(Footprint.read("x"))
        seen.append(state["x"])

    async with rt.task_group() as tg:
        tg.start_soon(writer, name="writer")
        tg.start_soon(reader, name="reader")
    first, second = seen
    assert (first, second) != (1, 2), "the reader saw the writer's intermediate value 1, then 2"
    return first, second


def locked_counter(n: int, rounds: int = 1) -> Scenario:
    """`n` identical tasks, each incrementing a shared counter `rounds` times under a lock."""

    async def body() -> int:
        lock = Mutex("lock")
        state = {"x": 0}

        async def worker() -> None:
            for _ in range(rounds):
                async with lock:
                    state["x"] += 1

        async with rt.task_group() as tg:
            for _ in range(n):
                tg.start_soon(worker, name="worker")
        assert state["x"] == n * rounds
        return state["x"]

    return Scenario(
        f"locked-counter-{n}",
        f"{n} identical tasks increment a counter under one mutex ({rounds} rounds)",
        body,
        ("worker",) * n,
        needs_world=False,
    )


CLASSIC: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "lost-update",
            "two tasks read-modify-write a counter with a yield in between",
            lost_update,
            ("inc1", "inc2"),
            {"-": Verdict.FOUND},
            needs_world=False,
        ),
        Scenario(
            "lock-order",
            "two tasks take mutexes a and b in opposite orders",
            lock_order,
            ("AB", "BA"),
            {"-": Verdict.DEADLOCK},
            needs_world=False,
        ),
        Scenario(
            "two-preemptions",
            "a reader sees the writer's intermediate value and then a later one",
            two_preemptions,
            ("writer", "reader"),
            {"-": Verdict.FOUND},
            needs_world=False,
        ),
        locked_counter(3),
    )
}
