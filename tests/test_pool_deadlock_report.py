"""A deadlock on a `SlotPool` is told as what it is: tasks that each hold a slot and
wait for one more wait on each other (a wait-for cycle), not "recursive locking"; a task
that holds every slot and asks for one more does wait on itself (new-user report: three
tasks holding one slot each were listed as "n2 waits for SlotPool 'slots' (0 free) held
by n2 itself (and n1, n0) (recursive locking)")."""

from __future__ import annotations

import odp_async as oa
from odp_async._runtime import sim
from odp_async.sync import SlotPool


async def three_hold_one_each() -> None:
    pool = SlotPool(3, "slots")
    holding = [0]

    async def worker() -> None:
        await pool.acquire()
        holding[0] += 1
        while holding[0] < 3:  # every worker holds a slot before any asks for another
            await oa.checkpoint()
        await pool.acquire()

    async with oa.task_group() as tg:
        for i in range(3):
            tg.start_soon(worker, name=f"n{i}")


async def holds_every_slot() -> None:
    pool = SlotPool(2, "slots")
    await pool.acquire()
    await pool.acquire()
    await pool.acquire()


def test_a_pool_exhausted_by_its_waiters_is_a_cycle_not_recursive_locking() -> None:
    result = sim.run(three_hold_one_each, seed=0)
    assert result.deadlock is not None
    cycle = result.deadlock.cycle
    said = "; ".join(b.describe() for b in result.deadlock.blocked)
    assert "recursive locking" not in said, said
    assert len(cycle) >= 2, cycle
    assert not any(b.waits_on_itself for b in cycle), cycle
    # every holder is still named, the waiter's own slot too
    assert all(set(b.holders) == {"n0", "n1", "n2"} for b in cycle), cycle


def test_a_task_holding_every_slot_waits_on_itself() -> None:
    result = sim.run(holds_every_slot, seed=0)
    assert result.deadlock is not None
    (blocked,) = result.deadlock.cycle
    assert blocked.waits_on_itself
    assert blocked.describe().endswith("held by main itself (recursive locking)")
