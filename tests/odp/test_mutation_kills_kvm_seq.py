"""kvm-seq's count and seq, driven step by step (found lacking by mutation testing:
tools/mutation.sh): a fault waits for *every* running invalidation to end, a seq read
between two invalidations is stale after the second, an unbalanced end is reported with
its names, and its own lock and wait queue are named in a deadlock report."""

from __future__ import annotations

from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.world import World, run_world

P = PAGE_SIZE


def _inv(n: int) -> Invalidation:
    return Invalidation(90 + n, AddrRange(0, P), InvalidateEvent.UNMAP)


def _kvm(w: World) -> KvmSeq:
    proto = w.protocol
    assert isinstance(proto, KvmSeq)
    return proto


def test_a_waiting_fault_sleeps_until_the_last_running_invalidation_ends() -> None:
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        kvm = _kvm(w)
        first, second = _inv(1), _inv(2)
        await kvm.before_start(first)
        await kvm.before_start(second)

        async def fault() -> None:
            seen.append(await w.ctx.fault(a, 0, write=True))

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if len(kvm._idle):
                    break
                await rt.checkpoint()
            seen.append(("parked", len(kvm._idle)))
            await kvm.after_end(first)  # one still runs: the fault must stay asleep
            seen.append(("after one end", kvm.in_progress, len(kvm._idle)))
            await kvm.after_end(second)
            seen.append(("after both", kvm.in_progress, len(kvm._idle)))
        seen.append(("seq", kvm.seq))

    for seed in range(5):
        seen.clear()
        run = run_world(body, protocol="kvm-seq", seed=seed)
        run.sim.unwrap()
        assert seen == [
            ("parked", 1),
            ("after one end", 1, 1),
            ("after both", 0, 0),
            FaultOutcome.RESOLVED,
            ("seq", 2),
        ]


def test_a_seq_read_after_one_invalidation_is_refused_after_a_second() -> None:
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        kvm = _kvm(w)
        rng = AddrRange(0, P)
        await w.mm.madvise_dontneed(0, P)
        token = await kvm.fault_begin(a, rng)
        seen.append(token)
        await w.mm.madvise_dontneed(0, P)  # a whole invalidation between read and commit
        seen.append(kvm.must_retry(a, rng, token))
        seen.append(await kvm.fault_commit(a, rng, token, []))
        fresh = await kvm.fault_begin(a, rng)
        seen.append((fresh, await kvm.fault_commit(a, rng, fresh, [])))

    run_world(body, protocol="kvm-seq").sim.unwrap()
    assert seen == [1, True, False, (2, True)]


class _EndWithoutStart(KvmSeq):
    """A broken kvm-seq whose starts forget to raise ``in_progress``."""

    name = "kvm-seq-end-without-start"

    async def before_start(self, inv: Invalidation) -> None:
        pass


def test_an_end_without_a_start_is_reported_with_the_context_count_name() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        await w.mm.madvise_dontneed(0, 4 * P)

    run = run_world(body, protocol=_EndWithoutStart)
    run.sim.unwrap()
    assert [v.detail for v in run.violations] == [
        "invalidate_range_end() for [0x0, 0x4000) without a matching start: "
        "ctx.in_progress went to -1"
    ]


def test_the_deadlock_report_names_kvm_seqs_lock_and_queue() -> None:
    async def stuck_on_idle(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await _kvm(w).before_start(_inv(1))  # no end will come
        await w.ctx.fault(a, 0, write=True)

    async def stuck_on_lock(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        await _kvm(w).mmu_lock.acquire()
        await w.mm.madvise_dontneed(0, P)

    details = []
    for body in (stuck_on_idle, stuck_on_lock):
        run = run_world(body, protocol="kvm-seq")
        assert run.sim.outcome == "deadlock"
        details += [v.detail for v in run.violations]
    assert details == [
        "main waits for WaitQueue 'kvm in_progress == 0'",
        "main waits for Mutex 'mmu_lock' held by main itself (recursive locking)",
    ]


def test_release_raises_the_count_on_top_of_a_running_invalidation() -> None:
    seen: list[object] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 8 * P, name="A")
        kvm = _kvm(w)
        await kvm.before_start(_inv(1))  # its end never comes before the exit
        await w.mm.exit()
        seen.append((kvm.in_progress, kvm.dead))

    run_world(body, protocol="kvm-seq").sim.unwrap()
    assert seen == [(2, True)]


def test_the_state_view_shows_a_fresh_kvm_seq_idle_and_alive_before_its_first_region() -> None:
    """The report's state view reads the protocol's counters at every step, before the
    first region too: a new context has no invalidation in progress and is not
    released."""
    from odp_async.explore.target import Target
    from odp_async.report.states import step_states
    from odp_async.sim import RandomChooser

    target = Target.resolve("registration-race", "kvm-seq")
    execution = target.run(RandomChooser(1), max_steps=20_000, trace=True)
    first = step_states(execution, target)[0]
    assert first["regions"] == []
    assert first["protocol"] == (
        "kvm-seq: dead=False, in_progress=0, literal_release=False, seq=0, unregistering=False"
    )


def test_kvm_seq_hands_the_fault_s_range_on_to_the_next_fault_begin() -> None:
    """kvm-seq's ``fault_begin`` calls the next one in the MRO with the fault's own range
    (a user protocol may mix in a ``fault_begin`` that reads it)."""
    from odp_async.odp.protocols.base import TreeProtocol

    seen: list[object] = []

    class _RangeNoting(TreeProtocol):
        async def fault_begin(self, umem: Any, rng: AddrRange) -> object:
            seen.append(rng)
            return await super().fault_begin(umem, rng)

    class Mixed(KvmSeq, _RangeNoting):
        name = "t-kvm-range-noting"

    async def body(w: World) -> object:
        await w.mm.mmap(0, 8 * PAGE_SIZE)
        a = await w.ctx.register_mr(0, 8 * PAGE_SIZE, name="A")
        return await w.ctx.fault(a, 3 * PAGE_SIZE, write=True)

    assert run_world(body, protocol=Mixed).sim.unwrap() == FaultOutcome.RESOLVED
    assert seen == [AddrRange(3 * PAGE_SIZE, 4 * PAGE_SIZE)]
