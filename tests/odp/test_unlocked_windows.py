"""Unlocked windows of the kernel are choice points of the model, for a protocol of your own.

Between get_user_pages returning and the protocol's ``fault_commit`` the kernel holds no
lock (mm/hmm.c ``hmm_range_fault`` returns, mmap_lock dropped; the driver then takes its
own lock for ``mmu_interval_read_retry``; KVM's ``hva_to_pfn`` returns before
``mmu_lock``): a whole invalidation may run there.  A KVM-style protocol that reads its
invalidation seq at commit time, after gup (the bug KVM avoids by reading
``mmu_invalidate_seq`` first), must be found by every chooser; before the model drew that
window it was proved clean (``complete``).  The protocol is a user module written to
tmp_path and imported by name, as a user's would be.
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

    from odp_async.odp.protocols.kvm_seq import KvmSeq
    from odp_async.tracked import tracked


    @tracked
    class SeqAfterGup(KvmSeq):
        """kvm-seq, but the seq is read at commit time, after gup (the bug)."""

        name: ClassVar[str] = "user-seq-after-gup"
        summary: ClassVar[str] = "mmu_invalidate_seq read after hva_to_pfn"

        async def fault_begin(self, umem: Any, rng: Any) -> object:
            await super().fault_begin(umem, rng)
            return None

        async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
            return await super().fault_commit(umem, rng, self.seq, pages)
    '''
)


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Any]:
    name = "user_seq_after_gup"
    (tmp_path / f"{name}.py").write_text(_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("chooser", "budget"), [("random", 400), ("pct", 400), ("dfs", 2000), ("dpor", 2000)]
)
def test_a_seq_read_after_gup_is_found(user_module: Any, chooser: str, budget: int) -> None:
    result = explore(
        "fault-vs-munmap",
        user_module.SeqAfterGup,
        chooser=chooser,
        schedules=budget,
        seed=1,
        shrink=False,
    )
    assert result.failure is not None, result.claim
    assert result.failure.violation.kind in ("stale-translation", "stale-dma")


def test_the_same_protocol_reading_the_seq_before_gup_stays_clean() -> None:
    # the control: kvm-seq itself reads the seq in fault_begin, and DPOR proves it
    result = explore("fault-vs-munmap", "kvm-seq", chooser="dpor", schedules=2000)
    assert result.claim.startswith("complete:"), result.claim


class _Sub:
    """A second subscriber of the mm (another device, a KVM): it does nothing."""

    async def invalidate_range_start(self, inv: Any) -> None:
        pass

    async def invalidate_range_end(self, inv: Any) -> None:
        pass

    async def release(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<sub>"


def test_every_unlocked_window_is_a_labelled_choice_point() -> None:
    """One task walks every path: each window the model draws is a checkpoint of its own
    with a label saying which, so a chooser may run another task there."""
    from odp_async._runtime import sim
    from odp_async.addr import PAGE_SIZE as P
    from odp_async.odp.implicit import ImplicitMr
    from odp_async.odp.protocols.kvm_seq import KvmSeq
    from odp_async.world import World, run_world

    class RefuseOnce(KvmSeq):
        name = "refuse-once"
        refused = False

        def must_retry(self, umem: Any, rng: Any, token: object) -> bool:
            if not self.refused:
                self.refused = True
                return True
            return super().must_retry(umem, rng, token)

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        await w.mm.register_notifier(_Sub())
        await w.ctx.fault(b, 0, write=True)  # refused once, then committed
        await w.mm.madvise_dontneed(0, P)  # two subscribers: the walk goes on between them
        await w.ctx.deregister_mr(b)  # the last region: unregister, release, unhash
        imr = ImplicitMr(w.mm, w.checker, w.workqueue)
        await imr.register()
        await imr.fault(4 * P)
        await imr.deregister()
        await w.ctx.register_mr(4 * P, P, name="C")
        await w.mm.exit()  # the release walk over two subscribers, then the unmap

    run = run_world(body, protocol=RefuseOnce, trace=True)
    run.sim.unwrap()
    assert run.sim.trace is not None
    labels = [str(label) for (_, _, op, label) in run.sim.trace if op == sim.CHECKPOINT]
    for window in [
        "('register', 'B', 'insert')",
        "('fault', 'B', 0, 'commit')",
        "('fault', 'B', 0, 'retry')",
        "('deregister', 'B', 'remove')",
        "('mmu_notifier_unregister', '<OdpSubscription",
        "'next start')",
        "'next end')",
        "('fault', 'imr child 1#1', 16384, 'begin')",
        "('exit_mmap', 'next release')",
        "('exit_mmap', 'unmap')",
    ]:
        assert any(label.startswith(window) or label.endswith(window) for label in labels), (
            window,
            labels,
        )
