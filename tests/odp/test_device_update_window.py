"""The device page-table update after a commit's check is a choice point of the model.

In the kernel the commit's check (``mmu_interval_read_retry``) and the device page-table
write are not one step: mlx5's ``mlx5r_umr_update_xlt`` posts a UMR and sleeps until it
completes, ``umem_mutex`` held.  A party that takes that lock is blocked there; an
invalidate callback that sets the interval's seq and zaps *without* it runs there, zaps a
table not yet written, and the fault then installs a page the mm frees: the bug class of
``mmu_interval_set_seq`` called outside the user's lock.  Before the model drew that
window (`UContext.update_device`) such a protocol was proved clean (``complete``) by DPOR.
The protocols are user modules written to tmp_path and imported by name, as a user's
would be; they inherit the built-in commit, as a user's subclass would.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odp_async.explore import explore

_MODULE = textwrap.dedent(
    '''
    from typing import Any, ClassVar

    from odp_async import checkpoint
    from odp_async.odp.protocols.interval_seq import IntervalSeq
    from odp_async.odp.protocols.kvm_seq import KvmSeq
    from odp_async.tracked import tracked


    @tracked
    class NoLockInvalidate(IntervalSeq):
        """interval-seq whose invalidate sets the interval's seq and zaps without
        umem_mutex (the bug); the commit is interval-seq's own."""

        name: ClassVar[str] = "user-nolock-invalidate"
        summary: ClassVar[str] = "interval-seq, invalidate without umem_mutex"

        async def _start(self, rng: Any, what: str) -> None:
            await self._lock()
            self.active += 1
            hits = self.ctx.overlapping(rng)
            if hits and not self.seq & 1:
                self.seq |= 1
            cur = self.seq
            for umem in hits:
                umem.touch(what)
                self._iv(umem).iseq = cur  # no umem.mutex: the bug
                inside = umem.range.intersection(rng)
                if inside is not None:
                    umem.table.zap(inside)


    @tracked
    class OwnCommit(IntervalSeq):
        """Correct interval-seq with a commit of its own that draws the UMR wait with
        update_device and an extra checkpoint under umem_mutex (the control)."""

        name: ClassVar[str] = "user-own-commit"
        summary: ClassVar[str] = "interval-seq, commit with update_device"

        async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
            async with umem.mutex:
                umem.touch("a fault commit")
                if self._iv(umem).iseq != token:
                    return False
                await checkpoint("mlx5r_umr_update_xlt posts the UMR")
                await self.ctx.update_device(umem, rng, pages)
                return True


    @tracked
    class SyncCommit(KvmSeq):
        """kvm-seq with a sync commit_locked of its own: kept, and atomic."""

        name: ClassVar[str] = "user-sync-commit"
        summary: ClassVar[str] = "kvm-seq, own commit_locked"
        calls: ClassVar[list[str]] = []

        def commit_locked(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
            SyncCommit.calls.append(umem.name)
            return super().commit_locked(umem, rng, token, pages)
    '''
)


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Any]:
    name = "user_device_update"
    (tmp_path / f"{name}.py").write_text(_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("chooser", "budget"),
    [("random", 400), ("pct", 400), ("dfs", 2000), ("dpor", 2000), ("portfolio", 1000)],
)
def test_an_invalidate_without_the_commit_lock_is_found(
    user_module: Any, chooser: str, budget: int
) -> None:
    result = explore(
        "fault-vs-munmap",
        user_module.NoLockInvalidate,
        chooser=chooser,
        schedules=budget,
        seed=1,
        shrink=False,
    )
    assert result.failure is not None, result.claim
    assert result.failure.violation.kind in ("stale-translation", "stale-dma")


@pytest.mark.parametrize("protocol", ["OwnCommit", "interval-seq"])
def test_a_correct_commit_stays_proved_clean(user_module: Any, protocol: str) -> None:
    # the control: the same window, every invalidation under umem_mutex
    proto = getattr(user_module, protocol, protocol)
    result = explore("fault-vs-munmap", proto, chooser="dpor", schedules=5000)
    assert result.claim.startswith("complete:"), result.claim


def _checkpoint_labels(protocol: Any) -> list[str]:
    from odp_async._runtime import sim
    from odp_async.addr import PAGE_SIZE as P
    from odp_async.world import World, run_world

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        await w.ctx.fault(b, 0, write=True)

    # a small step bound: a commit that never passes fails fast (tools/mutation.sh)
    run = run_world(body, protocol=protocol, trace=True, max_steps=20_000)
    run.sim.unwrap()
    assert run.sim.trace is not None
    return [str(label) for (_, _, op, label) in run.sim.trace if op == sim.CHECKPOINT]


def test_every_builtin_commit_draws_the_device_update() -> None:
    from odp_async.odp.protocols import PROTOCOLS

    for name in PROTOCOLS:
        labels = _checkpoint_labels(name)
        assert "('fault', 'B', 0, 'update')" in labels, (name, labels)


def test_a_sync_commit_locked_of_a_users_is_kept_and_atomic(user_module: Any) -> None:
    user_module.SyncCommit.calls.clear()
    labels = _checkpoint_labels(user_module.SyncCommit)
    assert user_module.SyncCommit.calls == ["B"]
    assert "('fault', 'B', 0, 'update')" not in labels


def test_the_subscribers_and_implicit_children_draw_it_too() -> None:
    from odp_async._runtime import sim
    from odp_async.addr import PAGE_SIZE as P
    from odp_async.odp.implicit import ImplicitMr
    from odp_async.subscribers.hmm_mirror import HmmMirror
    from odp_async.subscribers.kvm import KvmMmu
    from odp_async.world import World, run_world

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        kvm = KvmMmu(w.mm, w.checker)
        await kvm.register()
        assert await kvm.fault(0) == "resolved"
        mirror = HmmMirror(w.mm, w.checker)
        await mirror.register()
        assert await mirror.fault(P) == "resolved"
        imr = ImplicitMr(w.mm, w.checker, w.workqueue)
        await imr.register()
        await imr.fault(4 * P)

    run = run_world(body, trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    labels = [str(label) for (_, _, op, label) in run.sim.trace if op == sim.CHECKPOINT]
    for window in [
        "('kvm', 'fault', 0, 'update')",
        "('hmm', 'fault', 4096, 'update')",
        "('fault', 'imr child 1#1', 16384, 'update')",
    ]:
        assert window in labels, (window, labels)


_KVM_MODULE = textwrap.dedent(
    '''
    from odp_async.subscribers.kvm import KvmMmu
    from odp_async.tracked import tracked


    @tracked
    class LocklessKvm(KvmMmu):
        """KVM-style subscriber whose invalidate start skips mmu_lock (the bug)."""

        async def invalidate_range_start(self, inv):
            self.in_progress += 1
            self.zap(inv.range)
    '''
)


def _kvm_scenario(cls: Any) -> Any:
    from odp_async import _runtime as rt
    from odp_async.addr import PAGE_SIZE as P
    from odp_async.scenarios import Scenario
    from odp_async.world import World

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        await w.mm.cpu_fault(0, write=True)
        kvm = cls(w.mm, w.checker)
        await kvm.register()

        async def vcpu() -> None:
            await kvm.fault(0)
            kvm.access(0)

        async with rt.task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, 0, P, name="madvise")
            tg.start_soon(vcpu, name="vcpu")

    return Scenario(f"kvm-{cls.__name__}", "", body, ("madvise", "vcpu"))


@pytest.mark.parametrize("chooser", ["random", "pct", "dpor"])
def test_a_kvm_invalidate_without_mmu_lock_is_found(tmp_path: Path, chooser: str) -> None:
    (tmp_path / "user_lockless_kvm.py").write_text(_KVM_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module("user_lockless_kvm")
        result = explore(
            _kvm_scenario(mod.LocklessKvm),
            "naive",
            chooser=chooser,
            schedules=2000,
            seed=1,
            shrink=False,
        )
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("user_lockless_kvm", None)
    assert result.failure is not None, result.claim
    assert result.failure.violation.kind in ("stale-translation", "stale-dma")


def test_the_kvm_subscriber_itself_stays_proved_clean() -> None:
    from odp_async.subscribers.kvm import KvmMmu

    result = explore(_kvm_scenario(KvmMmu), "naive", chooser="dpor", schedules=5000)
    assert result.claim.startswith("complete:"), result.claim
