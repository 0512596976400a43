"""Deadlock reports of the sim: who waits on what, who holds it, and the wait-for cycle."""

from __future__ import annotations

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.errors import ProtocolViolation
from odp_async.explore.config import ExploreConfig
from odp_async.explore.runner import check, explore_target
from odp_async.explore.target import Target, failure_violations
from odp_async.scenarios import Scenario, Verdict
from odp_async.sync import Completion, Mutex, RWLock, SlotPool
from tests.conftest import Runner


async def abba(pause: bool) -> None:
    a, b = Mutex("a"), Mutex("b")

    async def first() -> None:
        async with a:
            if pause:
                await rt.sleep(1)
            async with b:
                pass

    async def second() -> None:
        async with b:
            if pause:
                await rt.sleep(1)
            async with a:
                pass

    async with rt.task_group() as tg:
        tg.start_soon(first, name="A")
        tg.start_soon(second, name="B")


def test_abba_on_two_mutexes() -> None:
    r = sim.run(abba, True)
    assert r.outcome == "deadlock"
    assert r.deadlock is not None
    assert " ; ".join(b.describe() for b in r.deadlock.cycle) == (
        "A waits for Mutex 'b' held by B ; B waits for Mutex 'a' held by A"
    )


def test_random_schedules_find_abba_and_only_it() -> None:
    outcomes = [sim.run(abba, False, seed=s) for s in range(40)]
    deadlocks = [r for r in outcomes if r.outcome == "deadlock"]
    assert deadlocks, "40 random schedules never interleaved the two lock orders"
    assert all(r.outcome in ("ok", "deadlock") for r in outcomes)
    assert {tuple(b.task for b in r.deadlock.cycle) for r in deadlocks if r.deadlock} == {
        ("A", "B")
    }


async def notifier_pool_deadlock(pause: bool) -> None:
    """The 2014 thread's argument against a fixed pool of notifier slots.

    Code 1: notify_start(); lock(); unlock(); notify_end()
    Code 2: lock(); notify_start(); ...; notify_end(); unlock()

    With one slot:  code1 takes the slot, code2 takes the lock, code1 blocks on the lock,
    code2 blocks in notify_start waiting for a slot.
    """
    pool = SlotPool(1, "notifier slots")
    lock = Mutex("lock")

    async def code1() -> None:
        slot = await pool.acquire()  # notify_start
        if pause:
            await rt.sleep(1)
        async with lock:
            pass
        pool.release(slot)  # notify_end

    async def code2() -> None:
        if pause:
            await rt.sleep(0.5)
        async with lock:
            slot = await pool.acquire()  # notify_start
            pool.release(slot)  # notify_end

    async with rt.task_group() as tg:
        tg.start_soon(code1, name="code1")
        tg.start_soon(code2, name="code2")


def test_slot_pool_of_one_with_the_lock_order_cycle_from_the_thread() -> None:
    r = sim.run(notifier_pool_deadlock, True)
    assert r.outcome == "deadlock"
    assert r.deadlock is not None
    assert r.deadlock.describe() == (
        "code1 waits for Mutex 'lock' held by code2; "
        "code2 waits for SlotPool 'notifier slots' (0 free) held by code1; "
        "also blocked: main waits for its task group's children to finish: code1, code2"
    )
    blocked = {b.task: b for b in r.deadlock.blocked}
    assert blocked["code2"].holders == ("code1",)
    assert blocked["code1"].waits_for == "Mutex 'lock'"


def test_random_schedules_find_the_pool_deadlock() -> None:
    found = [s for s in range(40) if sim.run(notifier_pool_deadlock, False, seed=s).deadlock]
    assert found


def test_a_reader_waiting_behind_a_writer_behind_itself() -> None:
    """Recursive read against a queued writer, through two tasks: a real rwsem deadlock."""

    async def main() -> None:
        lock = RWLock("umem_rwsem")
        gate = Mutex("gate")

        async def reader() -> None:
            async with lock.read_locked():
                await rt.sleep(1)
                async with gate:
                    pass

        async def writer() -> None:
            async with gate:
                await rt.sleep(0.5)
                async with lock.write_locked():
                    pass

        async with rt.task_group() as tg:
            tg.start_soon(reader, name="reader")
            tg.start_soon(writer, name="writer")

    r = sim.run(main)
    assert r.deadlock is not None
    assert [b.describe() for b in r.deadlock.cycle] == [
        "reader waits for Mutex 'gate' held by writer",
        "writer waits for RWLock 'umem_rwsem' held by reader",
    ]


def test_a_partial_deadlock_is_reported_while_others_could_run() -> None:
    async def main() -> None:
        a, b = Mutex("a"), Mutex("b")

        async def first() -> None:
            async with a:
                await rt.checkpoint()
                async with b:
                    pass

        async def second() -> None:
            async with b:
                await rt.checkpoint()
                async with a:
                    pass

        async def busy() -> None:
            while True:
                await rt.checkpoint("busy")

        async with rt.task_group() as tg:
            tg.start_soon(first, name="A")
            tg.start_soon(second, name="B")
            tg.start_soon(busy, name="spinner")

    runs = [sim.run(main, seed=seed, max_steps=10_000) for seed in range(30)]
    assert {r.outcome for r in runs} == {"deadlock", "step-limit"}  # the spinner never ends
    r = next(r for r in runs if r.outcome == "deadlock")
    assert r.deadlock is not None
    assert r.deadlock.is_partial
    assert r.deadlock.runnable == ("spinner",)
    assert [b.task for b in r.deadlock.cycle] == ["A", "B"]
    assert r.steps < 100  # stopped on the block that closed the cycle, not at the bound
    assert r.deadlock.describe().endswith("(partial: spinner could still run)")


def test_a_cycle_with_a_deadline_is_not_called_a_deadlock_early() -> None:
    async def main() -> str:
        a, b = Mutex("a"), Mutex("b")

        async def first() -> None:
            async with a:
                await rt.sleep(1)
                with rt.move_on_after(5):
                    async with b:
                        pass

        async def second() -> None:
            async with b:
                await rt.sleep(1)
                async with a:
                    pass

        async with rt.task_group() as tg:
            tg.start_soon(first, name="A")
            tg.start_soon(second, name="B")
        return "the timeout broke the cycle"

    assert sim.run(main).unwrap() == "the timeout broke the cycle"


def test_a_pool_wait_is_not_a_deadlock_while_another_holder_can_release() -> None:
    """Waiting for a slot of a pool of two needs any holder to let go, not every one."""

    async def main() -> None:
        pool = SlotPool(2, "p")

        async def greedy() -> None:
            first = await pool.acquire()
            second = await pool.acquire()
            pool.release(first)
            pool.release(second)

        async def worker() -> None:
            slot = await pool.acquire()
            for _ in range(3):
                await rt.checkpoint("work")
            pool.release(slot)

        async with rt.task_group() as tg:
            tg.start_soon(greedy, name="greedy")
            tg.start_soon(worker, name="worker")

    assert {sim.run(main, seed=s).outcome for s in range(100)} == {"ok"}


def test_a_cycle_a_running_task_cancels_is_not_a_deadlock() -> None:
    async def main() -> str:
        a, b = Mutex("a"), Mutex("b")

        async def first() -> None:
            async with a:
                await rt.checkpoint()
                async with b:
                    pass

        async def second() -> None:
            async with b:
                await rt.checkpoint()
                async with a:
                    pass

        async with rt.task_group() as tg:
            tg.start_soon(first, name="A")
            tg.start_soon(second, name="B")
            for _ in range(20):
                await rt.checkpoint("watchdog")
            tg.cancel_scope.cancel()
        return "the watchdog broke it"

    assert {sim.run(main, seed=s).outcome for s in range(100)} == {"ok"}


# --- one-task cycles and finished holders --------------------------------------------------


def test_a_holder_that_already_finished_is_named_so() -> None:
    async def main() -> None:
        m = Mutex("m")

        async def leaker() -> None:
            await m.acquire()  # and returns without releasing it

        async def victim() -> None:
            await leaker_done.wait()
            async with m:
                pass

        leaker_done = Completion("leaker done")

        async def run_leaker() -> None:
            await leaker()
            leaker_done.complete()

        async with rt.task_group() as tg:
            tg.start_soon(run_leaker, name="leaker")
            tg.start_soon(victim, name="victim")

    r = sim.run(main)
    assert r.deadlock is not None
    assert r.deadlock.describe() == (
        "main waits for its task group's children to finish: victim; "
        "victim waits for Mutex 'm' held by leaker (finished)"
    )
    assert r.deadlock.cycle == ()


def test_a_task_waiting_on_a_completion_only_it_would_complete_waits_on_itself() -> None:
    async def main() -> None:
        done = Completion("done")

        async def worker() -> None:
            await done.wait()
            done.complete()  # never reached: only this task would complete it

        async with rt.task_group() as tg:
            tg.start_soon(worker, name="worker")

    r = sim.run(main)
    assert r.deadlock is not None
    assert [b.task for b in r.deadlock.cycle] == ["worker"]
    # a completion has no owner: the report names the wait-for edges, not a completer
    assert not r.deadlock.cycle[0].waits_on_itself
    assert r.deadlock.cycle[0].holders == ()
    assert r.deadlock.describe() == (
        "worker waits for Completion 'done' (not completed), while every other task waits, "
        "directly or through others, for worker; also blocked: main waits for its task "
        "group's children to finish: worker"
    )


def test_the_only_task_left_waiting_on_a_completion_is_not_said_to_block_others() -> None:
    """No other task: "every other task waits for it" would be vacuous (trial 171)."""

    async def main() -> None:
        await Completion("c").wait()

    r = sim.run(main)
    assert r.deadlock is not None
    assert [b.task for b in r.deadlock.cycle] == ["main"]
    assert r.deadlock.describe() == (
        "main waits for Completion 'c' (not completed), and no other task is left to end it"
    )
    report = check(main, schedules=1).failure
    assert report is not None
    text = report.describe()
    assert "the only task left:" in text
    assert "every other task" not in text


def test_completion_waits_another_task_could_end_are_not_self_waits() -> None:
    async def main() -> None:
        ping, pong = Completion("ping"), Completion("pong")

        async def left() -> None:
            await ping.wait()
            pong.complete()

        async def right() -> None:
            await pong.wait()
            ping.complete()

        async with rt.task_group() as tg:
            tg.start_soon(left, name="left")
            tg.start_soon(right, name="right")

    r = sim.run(main)
    assert r.deadlock is not None
    assert r.deadlock.cycle == ()  # each could be completed by the other: no holder to name
    assert not any(b.waits_on_itself for b in r.deadlock.blocked)


async def recursive_mutex() -> None:
    m = Mutex("m")

    async def worker() -> None:
        async with m:
            await rt.checkpoint("inner")
            async with m:  # recursive locking
                pass

    async with rt.task_group() as tg:
        tg.start_soon(worker, name="worker")


def test_a_recursive_mutex_under_the_sim_is_a_deadlock_naming_the_lock() -> None:
    r = sim.run(recursive_mutex)
    assert r.outcome == "deadlock"
    assert r.deadlock is not None
    assert [b.describe() for b in r.deadlock.cycle] == [
        "worker waits for Mutex 'm' held by worker itself (recursive locking)"
    ]
    violations = failure_violations(r)
    assert [(v.kind, v.tasks) for v in violations] == [("deadlock", ("worker",))]
    assert "Mutex 'm'" in violations[0].detail
    assert "recursive locking" in violations[0].detail


def test_a_recursive_mutex_is_a_deadlock_verdict_when_explored() -> None:
    target = Target(Scenario("recursive", "", recursive_mutex, (), needs_world=False))
    result = explore_target(target, ExploreConfig(schedules=10))
    assert result.verdict is Verdict.DEADLOCK


def test_a_recursive_mutex_live_keeps_raising(live: Runner) -> None:
    async def main() -> str:
        m = Mutex("m")
        async with m:
            try:
                await m.acquire()
            except ProtocolViolation as e:
                return str(e)
        return "no error"

    assert "not reentrant" in live.run(main)


def test_a_recursive_nowait_acquire_raises_under_the_sim_too() -> None:
    async def main() -> None:
        m = Mutex("m")
        async with m:
            m.acquire_nowait()

    r = sim.run(main)
    assert isinstance(r.error, ProtocolViolation)


@pytest.mark.parametrize(
    ("first", "again"), [("write", "write"), ("write", "read"), ("read", "write")]
)
def test_rwlock_recursion_by_the_holder_is_a_sim_deadlock(first: str, again: str) -> None:
    async def main() -> None:
        lock = RWLock("sem")

        async def worker() -> None:
            await (lock.acquire_write() if first == "write" else lock.acquire_read())
            await (lock.acquire_write() if again == "write" else lock.acquire_read())

        async with rt.task_group() as tg:
            tg.start_soon(worker, name="worker")

    r = sim.run(main)
    assert r.deadlock is not None
    assert [b.describe() for b in r.deadlock.cycle] == [
        "worker waits for RWLock 'sem' held by worker itself (recursive locking)"
    ]


def test_rwlock_recursion_live_keeps_raising(live: Runner) -> None:
    async def main() -> str:
        lock = RWLock("sem")
        await lock.acquire_write()
        try:
            await lock.acquire_write()
        except ProtocolViolation as e:
            return str(e)
        finally:
            lock.release_write()
        return "no error"

    assert "already held for writing" in live.run(main)


def test_a_recursive_lock_beside_a_running_task_is_a_partial_deadlock() -> None:
    async def main() -> None:
        m = Mutex("m")

        async def worker() -> None:
            async with m, m:
                pass

        async def spinner() -> None:
            while True:
                await rt.checkpoint("busy")

        async with rt.task_group() as tg:
            tg.start_soon(worker, name="worker")
            tg.start_soon(spinner, name="spinner")

    r = sim.run(main, max_steps=200)
    assert r.outcome == "deadlock"
    assert r.deadlock is not None
    assert r.deadlock.runnable == ("spinner",)
    assert [b.task for b in r.deadlock.cycle] == ["worker"]


@pytest.mark.parametrize("who", ["body", "child"])
def test_an_error_waiting_to_leave_a_blocked_task_group_is_in_the_report(who: str) -> None:
    # The error cancels the group, but a shielded child blocked for good keeps it from
    # leaving: the run is a deadlock, and its report says what was raised.
    never = Completion("never")

    async def stuck() -> None:
        with rt.cancel_scope(shield=True):
            await never.wait()

    async def fails() -> None:
        raise ValueError("boom")

    async def main() -> None:
        async with rt.task_group() as tg:
            tg.start_soon(stuck, name="X")
            await rt.checkpoint("spawned")
            if who == "child":
                tg.start_soon(fails, name="F")
            else:
                raise ValueError("boom")

    r = sim.run(main)
    assert r.deadlock is not None
    raised = "its body raised" if who == "body" else "a child raised"
    assert (
        f"main waits for its task group's children ({raised} ValueError: boom) to finish: X"
        in r.deadlock.describe()
    )


def test_a_long_or_multi_line_error_is_one_short_line_in_the_report() -> None:
    never = Completion("never")

    async def stuck() -> None:
        with rt.cancel_scope(shield=True):
            await never.wait()

    async def main() -> None:
        async with rt.task_group() as tg:
            tg.start_soon(stuck, name="X")
            await rt.checkpoint("spawned")
            raise ValueError("first line\n" + "x" * 1000)

    r = sim.run(main)
    assert r.deadlock is not None
    text = r.deadlock.describe()
    assert "\n" not in text
    assert "(its body raised ValueError: first line...) to finish: X" in text
