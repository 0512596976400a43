"""The sim's objects built without their ``__init__`` (a schedule's fixed cost): each
fast path sets every slot as the constructor does, and the stream's portable block
reader gives the same words as the array one."""

from __future__ import annotations

import contextvars
from typing import Any

from odp_async._runtime import choosers, sim
from odp_async._runtime.sim import SimCancelScope, SimRuntime, SimTask, SimTaskGroup


def _slots(obj: object, cls: type) -> dict[str, Any]:
    return {s: getattr(obj, s) for s in cls.__slots__ if s != "__weakref__"}


async def _noop() -> None:
    pass


def test_a_spawned_task_has_every_slot_as_the_constructor_sets_it() -> None:
    rt = SimRuntime(choosers.FifoChooser(), max_steps=10, trace=False)
    scopes: list[SimCancelScope] = []
    fast = rt._spawn(_noop, (), "t", None, scopes)
    coro = fast.coro
    slow = SimTask(0, "t", coro, fast.context, None, scopes)
    coro.close()
    got, want = _slots(fast, SimTask), _slots(slow, SimTask)
    assert got.pop("send") == want.pop("send")  # two bound methods of one coroutine
    assert got == want
    assert isinstance(fast.context, contextvars.Context)


def test_task_group_sets_every_slot_as_the_constructors_do() -> None:
    rt = SimRuntime(choosers.FifoChooser(), max_steps=10, trace=False)
    fast, slow = rt.task_group(), SimTaskGroup(rt)
    got, want = _slots(fast, SimTaskGroup), _slots(slow, SimTaskGroup)
    fast_scope, slow_scope = got.pop("_scope"), want.pop("_scope")
    assert got == want
    assert _slots(fast_scope, SimCancelScope) == _slots(slow_scope, SimCancelScope)
    assert type(fast_scope._deadline) is float


def test_portable_blocks_read_the_same_words() -> None:
    name = b"5/17/"
    fast, portable = choosers._blocks(name), choosers._blocks_portable(name)
    for _ in range(3):
        assert list(next(fast)) == list(next(portable))


def test_a_deadline_set_before_entering_a_task_group_still_cancels_it() -> None:
    from odp_async import _runtime as rt_api

    async def main() -> float:
        tg = rt_api.task_group()
        tg.cancel_scope.deadline = 1.0  # before `async with`: armed when entered
        async with tg:
            tg.start_soon(rt_api.sleep, 5.0)
        return rt_api.now()

    result = sim.run(main, seed=0)
    assert result.outcome == "ok"
    assert result.value == 1.0


def test_stream_choosers_give_the_stream_choosers_answers() -> None:
    for seed, index in [(0, 0), (3, 7), (-2, 12345), (2**70, 5)]:
        fast, slow = choosers.stream_choosers(seed)(index), choosers.StreamChooser(seed, index)
        assert (fast.seed, fast.index) == (slow.seed, slow.index)
        assert [fast.choose([None] * 7, None) for _ in range(40)] == [
            slow.choose([None] * 7, None) for _ in range(40)
        ]
