"""`run_brief` and `BriefRuns`: the explorer's per-schedule path.

An "ok" run returns its step count instead of a `SimResult`; every other outcome the
`SimResult` that `run` gives.  `BriefRuns` reuses one runtime, reset before each run:
whatever ran before (another schedule, a run a chooser broke off), each run takes exactly
the steps a fresh runtime takes, and leaves no reference cycle.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import pytest

import odp_async
from odp_async import sim
from odp_async._runtime import current_runtime
from odp_async._runtime.choosers import Chooser, RandomChooser, ReplayChooser, StreamChooser
from odp_async._runtime.footprint import Footprint
from odp_async._runtime.sim import BriefRuns, run_brief
from odp_async.errors import InvalidArgument, ProtocolViolation, ReplayMismatch
from odp_async.explore.target import Execution, Target

from .test_plain_loop import abba, failing, locks


class AskAlways:
    """`StreamChooser`'s answers through the general loop (asked at every step)."""

    ask_always = True

    def __init__(self, seed: int, index: int) -> None:
        self.inner = StreamChooser(seed, index)

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return self.inner.choose(runnable, last) if len(runnable) > 1 else 0

    def draw(self, n: int, label: object) -> int:
        return self.inner.draw(n, label)


CHOOSERS: dict[str, Callable[[int], Chooser]] = {
    "stream": lambda i: StreamChooser(3, i),
    "random": lambda i: RandomChooser(i),
    "general loop": lambda i: AskAlways(3, i),
}


def _same(brief: sim.SimResult | int, full: sim.SimResult) -> None:
    if isinstance(brief, int):
        assert full.outcome == "ok"
        assert brief == full.steps
        return
    assert brief.outcome != "ok"
    assert (brief.outcome, brief.schedule, brief.steps, brief.time) == (
        full.outcome,
        full.schedule,
        full.steps,
        full.time,
    )
    assert brief.tasks == full.tasks  # the same ids and names: nothing left from before
    assert [(e.step, e.task_id, e.task, type(e.error)) for e in brief.ends] == [
        (e.step, e.task_id, e.task, type(e.error)) for e in full.ends
    ]


@pytest.mark.parametrize("chooser", sorted(CHOOSERS))
@pytest.mark.parametrize(
    ("program", "outcomes"),
    [(locks, {"ok"}), (failing, {"error"}), (abba, {"ok", "deadlock"})],
)
def test_each_run_is_a_fresh_runs_answer(program: Any, outcomes: set[str], chooser: str) -> None:
    make = CHOOSERS[chooser]
    runs = BriefRuns(program, max_steps=500)  # one object for every schedule
    seen = set()
    for i in range(25):
        full = sim.run(program, chooser=make(i), max_steps=500)
        seen.add(full.outcome)
        _same(runs.run(make(i)), full)
        _same(run_brief(program, chooser=make(i), max_steps=500), full)
    assert seen == outcomes


def test_a_step_limit_returns_the_record() -> None:
    async def spin() -> None:
        while True:
            await odp_async.checkpoint()

    async def main() -> None:
        async with odp_async.task_group() as tg:
            tg.start_soon(spin)
            tg.start_soon(spin)

    brief = BriefRuns(main, max_steps=30).run(StreamChooser(0, 0))
    assert isinstance(brief, sim.SimResult)
    assert (brief.outcome, brief.steps) == ("step-limit", 30)


def test_a_run_a_chooser_broke_off_does_not_leak_into_the_next() -> None:
    runs = BriefRuns(locks)
    fresh = sim.run(locks, chooser=StreamChooser(1, 2))
    assert fresh.outcome == "ok"
    with pytest.raises(ReplayMismatch):
        runs.run(ReplayChooser([0, 1, 0, 7, 7, 7]))  # answers out of range: stopped early
    _same(runs.run(StreamChooser(1, 2)), fresh)
    again = runs.run(ReplayChooser(fresh.schedule))
    assert again == fresh.steps


def test_a_run_inside_its_own_run_is_refused() -> None:
    holder: list[BriefRuns] = []

    async def main() -> None:
        await odp_async.checkpoint()
        holder[0].run(StreamChooser(0, 0))

    holder.append(BriefRuns(main))
    result = holder[0].run(StreamChooser(0, 0))
    assert isinstance(result, sim.SimResult)
    assert result.outcome == "error"
    assert isinstance(result.error, ProtocolViolation)
    assert "inside one of its own runs" in str(result.error)
    again = holder[0].run(StreamChooser(0, 0))  # not left busy: it runs (and fails) again
    assert isinstance(again, sim.SimResult)
    assert isinstance(again.error, ProtocolViolation)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_steps": 0}, "max_steps"), ({"noted_only": 1}, "noted_only")],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        BriefRuns(locks, **kwargs)
    with pytest.raises(InvalidArgument, match=match):
        run_brief(locks, chooser=StreamChooser(0, 0), **kwargs)


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_gc")
def test_runs_leave_nothing_behind_and_the_runtime_goes_with_the_object() -> None:
    refs: list[weakref.ref[Any]] = []

    async def main() -> None:
        refs.append(weakref.ref(odp_async.current_task()))

        async def worker() -> None:
            refs.append(weakref.ref(odp_async.current_task()))
            await odp_async.checkpoint()

        async with odp_async.task_group() as tg:
            refs.append(weakref.ref(tg))
            tg.start_soon(worker)
            tg.start_soon(worker)

    runs = BriefRuns(main)
    for i in range(5):
        assert isinstance(runs.run(StreamChooser(0, i)), int)
        assert len(refs) == 4
        assert [r for r in refs if r() is not None] == []
        refs.clear()

    async def grab() -> None:
        refs.append(weakref.ref(current_runtime()))

    holder = BriefRuns(grab)
    holder.run(StreamChooser(0, 0))
    assert refs[0]() is not None  # kept for the next run
    del holder
    assert refs[0]() is None
    assert gc.collect() == 0


def test_target_brief_runs_match_target_run() -> None:
    target = Target.resolve("classic:lost-update")
    run = target.brief_runs(max_steps=1000)
    kinds = set()
    for i in range(40):
        full = target.run(StreamChooser(0, i), max_steps=1000)
        brief = run(StreamChooser(0, i))
        if isinstance(brief, int):
            assert not full.is_failure
            assert brief == full.sim.steps
            kinds.add("ok")
        else:
            assert isinstance(brief, Execution)
            assert brief.violations == full.violations
            assert brief.sim.schedule == full.sim.schedule
            kinds.add(brief.verdict.name)
    assert len(kinds) == 2  # both passing and failing schedules were compared


def test_target_brief_runs_of_a_world_scenario_give_executions() -> None:
    target = Target.resolve("registration-race", "odp2014")
    run = target.brief_runs(max_steps=50_000)
    got = run(StreamChooser(0, 0))
    assert isinstance(got, Execution)
    full = target.run(StreamChooser(0, 0), max_steps=50_000)
    assert got.violations == full.violations  # (the value holds the world's objects)
    assert (got.sim.outcome, got.sim.schedule, got.sim.steps) == (
        full.sim.outcome,
        full.sim.schedule,
        full.sim.steps,
    )


def test_interned_footprints_are_shared_and_bounded() -> None:
    assert Footprint.write("x") is Footprint.write("x")
    assert Footprint.read("x", "y") is Footprint.read("x", "y")
    assert Footprint.read("x") != Footprint.write("x")
    first = Footprint.write("bound-test")
    for k in range(5000):  # past the bound: the oldest entries go, values stay equal
        Footprint.write(("bound-test", k))
    assert Footprint.write("bound-test") == first
    with pytest.raises(TypeError):
        Footprint.write(["unhashable"])


def test_a_footprint_subclass_gets_its_own_instances() -> None:
    @attrs.frozen
    class Tagged(Footprint):
        pass

    assert type(Tagged.write("x")) is Tagged
    assert type(Tagged.read("x", "y")) is Tagged
    assert Tagged.read("x", "y").reads == frozenset({"x", "y"})
    assert type(Footprint.write("x")) is Footprint
