"""What is, and what is not, an outcome of a sim run.

A program's exception is an outcome (recorded with the task that raised it), a
`SystemExit` (``sys.exit()`` in the program) included; a foreign await or a
`KeyboardInterrupt` (the user's Ctrl-C) is not: it leaves `sim.run`.
"""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest
import trio
import trio.lowlevel

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.errors import ForeignAwait, InvalidArgument
from odp_async.sync import Completion


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt])
def test_an_interrupt_leaves_the_run_unchanged_after_unwinding(
    exc_type: type[BaseException],
) -> None:
    unwound: list[str] = []

    async def main() -> None:
        started = Completion("started")

        async def interrupted() -> None:
            await started.wait()
            raise exc_type()

        async def bystander() -> None:
            started.complete()
            try:
                while True:
                    await rt.checkpoint()
            finally:
                unwound.append("bystander")

        async with rt.task_group() as tg:
            tg.start_soon(bystander, name="bystander")
            tg.start_soon(interrupted, name="interrupted")

    for seed in range(5):
        unwound.clear()
        with pytest.raises(exc_type) as caught:
            sim.run(main, seed=seed)
        assert type(caught.value) is exc_type  # not wrapped in an ExceptionGroup
        assert unwound == ["bystander"]  # the run was cleaned up on the way out


def test_a_system_exit_is_the_programs_error() -> None:
    unwound: list[str] = []

    async def main() -> None:
        async def exits() -> None:
            await rt.checkpoint()
            raise SystemExit(7)

        async def bystander() -> None:
            try:
                while True:
                    await rt.checkpoint()
            finally:
                unwound.append("bystander")

        async with rt.task_group() as tg:
            tg.start_soon(bystander, name="bystander")
            tg.start_soon(exits, name="exits")

    for seed in range(5):
        unwound.clear()
        result = sim.run(main, seed=seed)
        assert result.outcome == "error"
        leaves = [result.error]
        while isinstance(leaves[0], BaseExceptionGroup):
            leaves = list(leaves[0].exceptions)
        assert [type(e) for e in leaves] == [SystemExit]
        assert leaves[0].code == 7
        assert unwound == ["bystander"]
        assert [e.task for e in result.ends if isinstance(e.error, SystemExit)] == ["exits"]


def test_an_interrupt_in_the_root_leaves_the_run() -> None:
    async def main() -> None:
        await rt.checkpoint()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sim.run(main)


def test_an_interrupt_while_unwinding_a_stopped_run_is_not_swallowed() -> None:
    async def main() -> None:
        try:
            while True:
                await rt.checkpoint()
        finally:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sim.run(main, max_steps=5)  # the step bound stops it; the unwinding raises


def test_ends_record_who_finished_how() -> None:
    async def main() -> None:
        async def ok() -> None:
            await rt.checkpoint()

        async def bad() -> None:
            await rt.checkpoint()
            await rt.checkpoint()
            raise ValueError("bad")

        async with rt.task_group() as tg:
            tg.start_soon(ok, name="ok")
            tg.start_soon(bad, name="bad")

    r = sim.run(main, seed=1)
    assert r.outcome == "error"
    by_task = {end.task: end for end in r.ends}
    assert by_task["ok"].error is None
    assert isinstance(by_task["bad"].error, ValueError)
    assert isinstance(by_task["main"].error, BaseExceptionGroup)
    assert by_task["bad"].error in by_task["main"].error.exceptions  # the same object
    assert [end.step for end in r.ends] == sorted(end.step for end in r.ends)
    assert r.ends[-1].task == "main"
    assert r.ends[-1].step == r.steps


def test_preemptions_are_recorded_with_the_trace() -> None:
    async def main() -> None:
        async def spin() -> None:
            for _ in range(5):
                await rt.checkpoint()

        async with rt.task_group() as tg:
            tg.start_soon(spin, name="a")
            tg.start_soon(spin, name="b")

    traced = sim.run(main, seed=3, trace=True)
    assert traced.preemptions
    assert sim.run(main, seed=3).preemptions == ()  # only recorded with the trace
    assert traced.trace is not None
    ran = {step: tid for step, tid, op, _ in traced.trace if op != sim.NOTE}
    for step in traced.preemptions:
        assert ran.get(step) != ran.get(step - 1)


@pytest.mark.parametrize(
    ("awaited", "named"),
    [
        (lambda: asyncio.sleep(0), "a bare yield (None) - e.g. asyncio.sleep(0)"),
        (lambda: asyncio.sleep(1), "asyncio.tasks.sleep()"),
        (lambda: asyncio.Event().wait(), "asyncio.locks.Event.wait()"),
        (lambda: trio.sleep(0), "CancelShieldedCheckpoint"),  # noqa: ASYNC105, ASYNC115
        (lambda: trio.Lock().acquire(), "trio._sync"),
        (lambda: anyio.sleep(0), "anyio._core._eventloop.sleep()"),  # noqa: ASYNC115
        (lambda: anyio.Event().wait(), "anyio._core._synchronization"),
    ],
)
def test_a_foreign_await_raises_naming_the_object(awaited: object, named: str) -> None:
    async def main() -> None:
        async def child() -> None:
            await rt.checkpoint()
            await awaited()  # type: ignore[operator]

        async with rt.task_group() as tg:
            tg.start_soon(child, name="child")

    with pytest.raises(ForeignAwait) as caught:
        sim.run(main)
    message = str(caught.value)
    assert isinstance(caught.value, InvalidArgument)
    assert named in message
    assert "task 'child'" in message
    assert "odp_async.checkpoint()" in message


def test_a_runtime_error_of_the_program_itself_stays_an_outcome() -> None:
    async def main() -> None:
        await rt.checkpoint()
        raise RuntimeError("no running event loop")  # the user's own, from the user's frame

    r = sim.run(main)
    assert r.outcome == "error"
    assert isinstance(r.error, RuntimeError)


def test_an_interrupt_while_a_task_is_spawned_leaves_no_unawaited_coroutine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C lands inside start_soon, after the child's coroutine exists and before it is
    # a task: it is closed there, so collecting it later warns nothing (this warning
    # printed after the CLI's "interrupted" line once).
    import contextvars
    import gc
    import warnings

    calls = 0

    def copy_context() -> contextvars.Context:
        nonlocal calls
        calls += 1
        if calls == 2:  # the root's spawn is call 1, the child's is call 2
            raise KeyboardInterrupt
        return contextvars.copy_context()

    async def child() -> None:
        await rt.checkpoint()

    async def main() -> None:
        async with rt.task_group() as tg:
            tg.start_soon(child)

    monkeypatch.setattr(sim, "_copy_context", copy_context)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sim.run(main)  # raised in the group's body: the group holds it
        gc.collect()
    assert isinstance(result.error, BaseExceptionGroup)
    assert isinstance(result.error.exceptions[0], KeyboardInterrupt)
    assert calls == 2
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
