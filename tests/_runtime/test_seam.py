"""The runtime seam behaves the same on the sim, asyncio and trio."""

from __future__ import annotations

import pytest

from odp_async import _runtime as rt
from odp_async.errors import InvalidArgument, ProtocolViolation
from tests.conftest import Runner


def test_task_group_runs_children_and_waits(runtime: Runner) -> None:
    async def child(log: list[int], i: int) -> None:
        await rt.checkpoint("child")
        log.append(i)

    async def main() -> list[int]:
        log: list[int] = []
        async with rt.task_group() as tg:
            for i in range(5):
                tg.start_soon(child, log, i, name=f"child{i}")
        return sorted(log)

    assert runtime.run(main) == [0, 1, 2, 3, 4]


def test_child_error_cancels_siblings_and_propagates(runtime: Runner) -> None:
    cancelled: list[str] = []

    async def sleeper() -> None:
        try:
            await rt.sleep(1000)
        except rt.cancelled_exc_class():
            cancelled.append("sleeper")
            raise

    async def failing() -> None:
        await rt.checkpoint()
        raise KeyError("boom")

    async def main() -> None:
        async with rt.task_group() as tg:
            tg.start_soon(sleeper)
            tg.start_soon(failing)

    with pytest.raises(ExceptionGroup) as info:
        runtime.run(main)
    assert [type(e) for e in info.value.exceptions] == [KeyError]
    assert cancelled == ["sleeper"]


def test_move_on_after_and_fail_after(runtime: Runner) -> None:
    async def main() -> tuple[bool, bool, float]:
        start = rt.now()
        with rt.move_on_after(0.01) as scope:
            await rt.sleep(10)
        timed_out = False
        try:
            with rt.fail_after(0.01):
                await rt.sleep(10)
        except TimeoutError:
            timed_out = True
        return scope.cancelled_caught, timed_out, rt.now() - start

    caught, timed_out, elapsed = runtime.run(main)
    assert caught
    assert timed_out
    assert elapsed < 10


def test_shielded_scope_is_not_cancelled_from_outside(runtime: Runner) -> None:
    async def main() -> list[str]:
        log: list[str] = []
        with rt.cancel_scope() as outer:
            outer.cancel()
            with rt.cancel_scope(shield=True):
                await rt.checkpoint()
                log.append("shielded body ran")
            await rt.checkpoint()
            log.append("not reached")
        log.append(f"caught={outer.cancelled_caught}")
        return log

    assert runtime.run(main) == ["shielded body ran", "caught=True"]


def test_current_task_and_name(runtime: Runner) -> None:
    async def child(out: list[str]) -> None:
        out.append(rt.task_name(rt.current_task()))

    async def main() -> list[str]:
        out: list[str] = []
        async with rt.task_group() as tg:
            tg.start_soon(child, out, name="worker-1")
        return out

    [name] = runtime.run(main)
    assert "worker-1" in name


def test_draw_in_range(runtime: Runner) -> None:
    async def main() -> list[int]:
        return [rt.draw(3, "x") for _ in range(20)]

    assert all(0 <= v < 3 for v in runtime.run(main))


def test_bad_arguments_name_the_value(runtime: Runner) -> None:
    async def main() -> list[str]:
        errors = []
        for call in (lambda: rt.sleep(-1), lambda: rt.draw(0)):
            try:
                call()
            except InvalidArgument as e:
                errors.append(str(e))
        return errors

    assert [("-1" in e, "0" in e) for e in runtime.run(main)] == [(True, False), (False, True)]


def test_outside_any_runtime_is_a_clear_error() -> None:
    with pytest.raises(ProtocolViolation, match="no async runtime is running"):
        rt.current_task()
