"""DPOR's finer view of program-order gates, empty wakes and the frame allocator.

Each reduction is shown on a program written as a user would (a module of its own,
outside the package), twice: where it cuts the traces DPOR needs to complete, and where
the conflict it keeps is real and the race is still found.

- A wait on a closed gate (``Completion(gate=True)``) is not run before the gate opens:
  the waiter parked or not yet arrived are one trace, not two per waiter.
- A wake with nobody parked is a read of the queue (two commute; a park still conflicts).
- Frames are reused lowest number first, each frame's ``free`` flag its own field: frees
  of different frames commute; an alloc still conflicts with the free it could reuse.
"""

from __future__ import annotations

import pytest

from odp_async._runtime import sim
from odp_async.check import Checker
from odp_async.errors import ProtocolViolation
from odp_async.explore import explore
from odp_async.explore.dfs import PrunedExecution
from odp_async.explore.dpor import DporChooser
from odp_async.mm import PhysicalMemory
from odp_async.sync import Completion
from tests.conftest import UserModule

PROGRAMS = """
from odp_async import checkpoint, task_group
from odp_async._runtime.footprint import Footprint
from odp_async.mm import PhysicalMemory
from odp_async.check import Checker
from odp_async.scenarios import Scenario
from odp_async.shared import SharedCell
from odp_async.sync import Completion, WaitQueue
from odp_async.tracked import TrackedDict, TrackedList, TrackedSet


def after_a(gate, waiters):
    async def body():
        x, y = SharedCell(0, "x"), SharedCell(0, "y")
        done = Completion("a done", gate=gate)

        async def a():
            await x.store(1)
            done.complete_all()

        async def b():  # program order: after a
            await done.wait()
            assert x.get() == 1

        async def c():  # independent of both
            await y.store(1)
            await y.store(2)

        async with task_group() as tg:
            tg.start_soon(a)
            for _ in range(waiters):
                tg.start_soon(b)
            tg.start_soon(c)

    return Scenario("after-a", "", body, (), needs_world=False, noted_only=True)


async def lost_update_after_a_gate():
    n = SharedCell(0, "n")
    done = Completion("a done", gate=True)

    async def a():
        await n.store(0)
        done.complete_all()

    async def inc():
        seen = await n.load()
        await n.store(seen + 1)

    async def b():
        await done.wait()
        await inc()

    async with task_group() as tg:
        tg.start_soon(a)
        tg.start_soon(b)
        tg.start_soon(inc)
    assert n.get() == 2, "a lost update"


LOST = Scenario("lost", "", lost_update_after_a_gate, (), needs_world=False, noted_only=True)


async def empty_wakes():
    q = WaitQueue("q")

    async def waker():
        for _ in range(3):
            await checkpoint(Footprint())
            q.wake_all()

    async with task_group() as tg:
        tg.start_soon(waker)
        tg.start_soon(waker)


async def wake_before_park():
    q = WaitQueue("q")

    async def waker():
        await checkpoint(Footprint())
        q.wake_all()

    async def sleeper():
        await checkpoint(Footprint())
        await q.park()  # for good, if the wake came first: a deadlock

    async with task_group() as tg:
        tg.start_soon(waker)
        tg.start_soon(sleeper)


EMPTY_WAKES = Scenario("wakes", "", empty_wakes, (), needs_world=False, noted_only=True)
PARK = Scenario("park", "", wake_before_park, (), needs_world=False, noted_only=True)


def checker():  # with tracked containers, as a world builds it
    return Checker(
        violations=TrackedList(), events=TrackedList(), translations=TrackedDict(),
        by_frame=TrackedDict(), released_tables=TrackedDict(), seen=TrackedSet(),
        freed=TrackedDict(),
    )


async def frees_then_alloc(alloc):
    memory = PhysicalMemory(checker())
    frames = []
    for _ in range(4):  # one step each: objects first seen in one step share a key
        frames.append(memory.alloc())
        await checkpoint(Footprint())
    got = []

    async def free(frame):
        await checkpoint(Footprint())
        memory.put(frame, "test")

    async def allocate():
        await checkpoint(Footprint())
        got.append(memory.alloc().pfn)

    async with task_group() as tg:
        tg.start_soon(free, frames[1])
        tg.start_soon(free, frames[3])
        if alloc:
            tg.start_soon(allocate)
    return tuple(got)
"""


def _dpor(main: object) -> tuple[int, set[object]]:
    """(traces, the set of return values) of a complete DPOR search of `main`."""
    chooser = DporChooser()
    values: set[object] = set()
    while chooser.has_more:
        try:
            values.add(sim.run(main, chooser=chooser, noted_only=True).value)
        except PrunedExecution:
            continue
    assert chooser.is_complete
    return chooser.traces, values


def test_waiters_on_a_gate_are_one_trace_not_one_per_arrival(user_module: UserModule) -> None:
    """Three waiters on a plain completion: 85 traces (each parks early or passes late);
    on a gate, 1 (3 before the task group's join ordered the children's ends before the
    parent's last step, `tests/explore/test_dpor_join_edges.py`; 2 before the gate's
    opening came to happen before the waits it lets through,
    `tests/explore/test_dpor_gate_edges.py`)."""
    mod = user_module(PROGRAMS, "dpor_gates")
    gated = explore(mod.after_a(True, 3), chooser="dpor", schedules=1000)
    plain = explore(mod.after_a(False, 3), chooser="dpor", schedules=1000)
    assert gated.claim == "complete: 1 trace, no violation"
    assert plain.claim == "complete: 85 traces, no violation"


def test_a_race_after_a_gate_is_still_found(user_module: UserModule) -> None:
    mod = user_module(PROGRAMS, "dpor_gate_race")
    result = explore(mod.LOST, chooser="dpor", schedules=1000)
    assert result.failure is not None
    assert "a lost update" in result.failure.violation.detail


def test_a_gate_opens_once_with_complete_all() -> None:
    gate = Completion("g", gate=True)
    assert gate._gate_closed()
    with pytest.raises(ProtocolViolation, match="complete\\(\\) of the gate"):
        gate.complete()
    with pytest.raises(ProtocolViolation, match="reinit\\(\\) of the gate"):
        gate.reinit()
    gate.complete_all()
    assert not gate._gate_closed()
    assert not Completion("plain")._gate_closed()


def test_who_waits_on_a_gate_is_not_observable() -> None:
    """DPOR runs a wait on a closed gate only when nothing else can run, so a waiter
    parked and one not yet arrived are one trace: nothing may tell them apart."""
    gate = Completion("g", gate=True)
    with pytest.raises(ProtocolViolation, match="statistics\\(\\) of the gate"):
        gate.statistics()
    assert repr(gate) == "<Completion 'g' gate closed>"
    gate.complete_all()
    assert repr(gate) == "<Completion 'g' gate open>"
    assert "waiting=0" in repr(Completion("plain"))


def test_empty_wakes_commute_and_a_park_still_races_with_a_wake(user_module: UserModule) -> None:
    """Two tasks waking an empty queue three times each: with a wake a write, every order
    of the six wakes is a trace (20); as reads they commute.  The wake before the park
    is still explored, and its deadlock found."""
    mod = user_module(PROGRAMS, "dpor_wakes")
    traces, _ = _dpor(mod.empty_wakes)
    assert traces <= 2
    park = explore(mod.PARK, chooser="dpor", schedules=1000)
    assert park.failure is not None
    assert park.failure.violation.kind == "deadlock"


def test_frees_of_different_frames_commute_an_alloc_still_races(user_module: UserModule) -> None:
    """Two frees of different frames: on a last-freed-first list their order decided the
    next alloc, so both orders were traces; now they commute (one trace).  An alloc
    racing with the frees still sees every outcome: nothing freed yet (a new frame 4),
    only frame 3 freed, or frame 1 (the lowest free)."""
    mod = user_module(PROGRAMS, "dpor_frames")
    traces, values = _dpor(lambda: mod.frees_then_alloc(False))
    assert (traces, values) == (1, {()})  # 2 on the list: the frees in either order
    _, values = _dpor(lambda: mod.frees_then_alloc(True))
    assert values == {(4,), (1,), (3,)}


def test_alloc_takes_the_lowest_free_frame_whatever_the_free_order() -> None:
    for order in ((1, 3), (3, 1)):
        memory = PhysicalMemory(Checker())
        frames = [memory.alloc() for _ in range(4)]
        for k in order:
            memory.put(frames[k], "test")
        assert memory.frames_in_use == 2
        again = memory.alloc()
        assert (again.pfn, again.gen) == (1, 2)
        assert memory.is_live((1, 2))
        assert not memory.is_live((1, 1))
