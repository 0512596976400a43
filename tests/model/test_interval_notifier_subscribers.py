"""A user's subscriber that declares ``INTERVAL_NOTIFIER = True``: the ends the mm owes it
(non-blockable invalidations included, refused or not), the waits for them (unregister,
the deferred free of ``put``), how a deadlock through that wait is reported, and the
values of the flag the mm refuses."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.addr import PAGE_SIZE as P
from odp_async.errors import InvalidArgument, WouldBlock
from odp_async.mm import Invalidation, subscription_problem
from odp_async.sync import Completion, Mutex
from odp_async.world import World, run_world

from .test_mutation_kills_mm import _Quiet as _Plain  # a plain subscriber doing nothing


class _Logs:
    """An interval notifier logging its callbacks; refuses non-blockable starts if told."""

    INTERVAL_NOTIFIER = True

    def __init__(self, *, refuse: bool = False) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.refuse = refuse

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.log.append(("start", inv.id))

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        self.log.append(("end", inv.id))

    async def release(self) -> None:
        self.log.append(("release",))


class _Refuses:
    """A plain subscriber refusing every non-blockable start."""

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if not inv.blockable:
            raise WouldBlock("refused")

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        pass

    async def release(self) -> None:
        pass


def _ends_match(log: list[tuple[Any, ...]]) -> bool:
    starts = [e[1] for e in log if e[0] == "start"]
    ends = [e[1] for e in log if e[0] == "end"]
    return sorted(starts) == sorted(ends)


@pytest.mark.parametrize("teardown", ["exit", "unregister"])
def test_a_reaped_range_ends_at_an_interval_notifier_whatever_unhashed_it(teardown: str) -> None:
    async def scenario(w: World) -> list[tuple[Any, ...]]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0, write=True)
        sub = _Logs()
        await w.mm.register_notifier(sub)

        async def reap() -> None:
            if not (w.mm.releasing or w.mm.is_dead):
                await w.mm.reap(0, P)

        async def unregister() -> None:
            await w.mm.unregister_notifier(sub)
            sub.log.append(("unregistered",))

        async with rt.task_group() as tg:
            tg.start_soon(reap, name="reaper")
            tg.start_soon(w.mm.exit if teardown == "exit" else unregister, name="teardown")
        return sub.log

    logs = [run_world(scenario, seed=s).sim.value for s in range(40)]
    assert all(_ends_match(log) for log in logs), next(log for log in logs if not _ends_match(log))
    # some schedules started the reap before the teardown unhashed the notifier
    assert any(
        log.index(("start", 0)) < log.index(("release",)) for log in logs if ("start", 0) in log
    )
    if teardown == "unregister":  # and the unregister returned only after the end
        assert all(
            log.index(("end", 0)) < log.index(("unregistered",))
            for log in logs
            if ("end", 0) in log
        )


def test_a_refused_non_blockable_range_still_ends_at_an_interval_notifier() -> None:
    async def scenario(w: World) -> tuple[bool, list[tuple[Any, ...]]]:
        await w.mm.mmap(0, P)
        await w.mm.cpu_fault(0, write=True)
        w.mm.nonblock_failure_rule = "2018"  # no end to the others under the old rule
        sub = _Logs()
        await w.mm.register_notifier(sub)
        await w.mm.register_notifier(_Refuses())
        reaped = await w.mm.reap(0, P)
        await w.mm.unregister_notifier(sub)  # owes nothing: returns
        return reaped, sub.log

    run = run_world(scenario)
    assert run.sim.outcome == "ok", run.sim.deadlock
    assert run.sim.value == (False, [("start", 0), ("end", 0), ("release",)])


def test_a_put_interval_notifier_is_freed_only_after_its_owed_end() -> None:
    async def scenario(w: World) -> list[tuple[Any, ...]]:
        w.mm.notifier_teardown = "put"
        sub, held = await _logged_then_held(w)

        async def freed() -> None:
            sub.log.append(("freed",))

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")
            while not held.held:
                await rt.checkpoint("until X is held")
            await w.mm.teardown_notifier(sub, freed)
            for _ in range(20):
                await rt.checkpoint("the deferred free may run now, if it does not wait")
            held.gate.complete_all()
        await w.workqueue.flush()
        return sub.log

    for seed in range(10):
        run = run_world(scenario, seed=seed)
        assert run.sim.outcome == "ok", run.sim.deadlock
        assert run.violations == (), run.violations[0].describe()
        assert run.sim.value == [("start", 0), ("end", 0), ("freed",)]  # put: no release


class _Holds:
    def __init__(self, gate: Completion) -> None:
        self.gate = gate
        self.held = False

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        self.held = True
        await self.gate.wait()

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        pass

    async def release(self) -> None:
        pass


async def _logged_then_held(w: World, *before: Any) -> tuple[_Logs, _Holds]:
    """A mapped, faulted page; the subscribers `before`, then a `_Logs` interval
    notifier, then a `_Holds` whose start waits for its gate "X may end", registered."""
    await w.mm.mmap(0, P)
    await w.mm.cpu_fault(0, write=True)
    for sub in before:
        await w.mm.register_notifier(sub)
    logs, held = _Logs(), _Holds(Completion("X may end"))
    await w.mm.register_notifier(logs)
    await w.mm.register_notifier(held)
    return logs, held


class _LateEndLocks:
    """An interval notifier whose late end (after its unhash) takes `lock`."""

    INTERVAL_NOTIFIER = True

    def __init__(self, w: World, lock: Mutex) -> None:
        self.w, self.lock = w, lock

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        pass

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        if not self.w.mm.is_registered(self):
            async with self.lock:
                pass

    async def release(self) -> None:
        pass


async def _unregister_under_the_lock_its_late_end_takes(w: World, *, ticker: bool = True) -> None:
    await w.mm.mmap(0, P)
    await w.mm.cpu_fault(0, write=True)
    lock = Mutex("sub.lock")
    sub = _LateEndLocks(w, lock)
    await w.mm.register_notifier(sub)
    gate = Completion("gate")
    await w.mm.register_notifier(_Holds(gate))

    async def unregister() -> None:
        async with lock:
            await w.mm.unregister_notifier(sub)

    async def tick() -> None:
        while True:
            await rt.sleep(1)

    async with rt.task_group() as outer:
        if ticker:
            outer.start_soon(tick, name="ticker")
        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="madvise")
            tg.start_soon(unregister, name="unregister")
            for _ in range(3):
                await rt.checkpoint("dawdle")
            gate.complete_all()
        outer.cancel_scope.cancel()


_OWED_ENDS = "invalidation ends owed to an interval notifier (mmu_interval_notifier_remove)"
_CYCLE = (
    f"madvise waits for Mutex 'sub.lock' held by unregister; unregister waits for {_OWED_ENDS} "
    "held by madvise"
)


def test_a_cycle_through_an_owed_end_is_a_deadlock_naming_its_holder() -> None:
    # found within 25 steps; the bound keeps a run that misses it short (the ticker spins)
    runs = [
        run_world(_unregister_under_the_lock_its_late_end_takes, seed=s, max_steps=1000)
        for s in range(20)
    ]
    stuck = [str(r.sim.deadlock) for r in runs if r.sim.outcome == "deadlock"]
    assert stuck, "no schedule deadlocked"
    # a partial deadlock: the ticker could still run, and is not waited for
    assert all(_CYCLE in text and "ticker could still run" in text for text in stuck), stuck[0]


def test_a_whole_deadlock_through_an_owed_end_names_its_holder_too() -> None:
    """Nothing else left to run: the wait's holder comes from the queue's owner alone."""
    runs = [
        run_world(
            functools.partial(_unregister_under_the_lock_its_late_end_takes, ticker=False), seed=s
        )
        for s in range(20)
    ]
    stuck = [str(r.sim.deadlock) for r in runs if r.sim.outcome == "deadlock"]
    assert stuck, "no schedule deadlocked"
    assert all(_CYCLE in text and "could still run" not in text for text in stuck), stuck[0]


def test_two_unregisters_of_one_interval_notifier_both_return_after_its_owed_end() -> None:
    """Both wait on one queue for the end an invalidation owes the notifier, both are woken
    by it; the wait is the queue named for ``mmu_interval_notifier_remove``."""

    async def scenario(w: World) -> list[tuple[Any, ...]]:
        sub, held = await _logged_then_held(w)

        async def unregister(name: str) -> None:
            await w.mm.unregister_notifier(sub)
            sub.log.append(("unregistered", name))

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")
            while not held.held:
                await rt.checkpoint("until X is held")
            tg.start_soon(unregister, "a", name="unregister-a")
            tg.start_soon(unregister, "b", name="unregister-b")
            for _ in range(20):
                await rt.checkpoint("both unregisters may park now")
            held.gate.complete_all()
        return [e for e in sub.log if e[0] != "release"]

    for seed in range(10):
        run = run_world(scenario, seed=seed, trace=True)
        assert run.sim.outcome == "ok", run.sim.deadlock
        assert run.sim.value[:2] == [("start", 0), ("end", 0)]
        assert sorted(run.sim.value[2:]) == [("unregistered", "a"), ("unregistered", "b")]
        assert run.sim.trace is not None
        names = dict(run.sim.tasks)
        parked = {
            names[task]
            for _, task, op, label in run.sim.trace
            if op == sim.PARK and label == _OWED_ENDS
        }
        assert parked == {"unregister-a", "unregister-b"}, parked


def test_the_flag_of_a_subscriber_class_is_judged_on_the_class() -> None:
    assert subscription_problem(_One) == subscription_problem(_One())
    assert subscription_problem(_One) is not None


class _One(_Plain):
    INTERVAL_NOTIFIER = 1


class _Prop(_Plain):
    @property
    def INTERVAL_NOTIFIER(self) -> bool:
        return True


def _on_instance() -> _Plain:
    sub = _Plain()
    sub.INTERVAL_NOTIFIER = True  # type: ignore[attr-defined]
    return sub


@pytest.mark.parametrize(
    ("sub", "problem"),
    [
        (_One(), "has INTERVAL_NOTIFIER = 1 on its class (must be True or False)"),
        (_Prop(), "has INTERVAL_NOTIFIER = <property"),
        (_on_instance(), "sets INTERVAL_NOTIFIER on the instance (set it on its class)"),
    ],
)
def test_an_interval_notifier_flag_that_would_be_ignored_is_refused(
    sub: object, problem: str
) -> None:
    found = subscription_problem(sub)
    assert found is not None
    assert found.startswith(problem), found

    async def scenario(w: World) -> str:
        with pytest.raises(InvalidArgument) as e:
            await w.mm.register_notifier(sub)  # type: ignore[arg-type]
        return str(e.value)

    run = run_world(scenario)
    assert run.sim.error is None, run.sim.error
    assert problem in run.sim.value
    assert "\n" not in run.sim.value
    assert subscription_problem(_Plain()) is None
    assert subscription_problem(_Logs()) is None


class _UnregistersInNonblockStart(_Plain):
    """Unregisters `other` from inside a non-blockable start: a wait where none may be."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.other: object = None

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if not inv.blockable:
            await self.w.mm.unregister_notifier(self.other)  # type: ignore[arg-type]


def test_waiting_for_owed_ends_in_a_non_blockable_start_names_the_wait() -> None:
    """The reaper's start reaches a subscriber that unregisters an interval notifier a
    running invalidation owes an end: the wait is a sleep where none may be, reported
    with the wait's name."""

    async def scenario(w: World) -> None:
        unregisters = _UnregistersInNonblockStart(w)
        unregisters.other, held = await _logged_then_held(w, unregisters)
        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="X")
            while not held.held:
                await rt.checkpoint("until X is held")
            tg.start_soon(w.mm.reap, 0, P, name="reaper")
            for _ in range(20):
                await rt.checkpoint("the reaper's start may wait now")
            held.gate.complete_all()

    run = run_world(scenario)
    assert run.sim.outcome == "ok", run.sim.deadlock
    # the first of the reaper's waits (the second: the holder's, on its gate)
    details = [v.detail for v in run.violations if v.kind == "sleep-in-nonblock"]
    assert details[0].endswith(f"may sleep on WaitQueue {_OWED_ENDS!r}"), details
