"""Issue 10, item 8 (last sentence): the region tree's insert and remove check the region's
lifetime themselves (`UContext.tree_insert`, `UContext.tree_remove`), so a protocol that
gets it wrong is reported without checking anything itself.  Each mistake is made by a
user protocol written outside the package (tmp_path), explored by ``module:qualname``."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from odp_async.addr import PAGE_SIZE as P
from odp_async.explore.runner import explore
from odp_async.scenarios import Scenario
from odp_async.world import World

from ._explore import CHOOSERS, assert_clean

SOURCE = """
from typing import Any, ClassVar

from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.workqueue import WorkItem


class ReinsertsFreed(Odp2014):
    name: ClassVar[str] = "reinserts-freed"
    summary: ClassVar[str] = "puts every region it removed back at the next invalidation end"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.removed: list[Any] = []

    async def remove(self, umem: Any) -> None:
        await super().remove(umem)
        self.removed.append(umem)

    async def invalidate_range_end(self, inv: Any) -> None:
        await super().invalidate_range_end(inv)
        for umem in self.removed:
            self.ctx.tree_insert(umem)
        self.removed.clear()


class InsertsAtRelease(Odp2014):
    name: ClassVar[str] = "inserts-at-release"
    summary: ClassVar[str] = "keeps new regions aside and inserts them when the mm goes"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.pending: list[Any] = []

    async def insert(self, umem: Any) -> None:
        if not self.ctx.mm.is_registered(self.ctx.subscription):
            await self.ctx.mm.register_notifier(self.ctx.subscription)
        self.pending.append(umem)

    async def release(self) -> None:
        for umem in self.pending:
            self.ctx.tree_insert(umem)
        await super().release()


class InsertsFromWorker(Odp2014):
    name: ClassVar[str] = "inserts-from-worker"
    summary: ClassVar[str] = "inserts from a kworker that holds no mm_users reference"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.work: Any = None

    async def insert(self, umem: Any) -> None:
        async def late() -> None:
            self.ctx.tree_insert(umem)

        self.work = WorkItem(f"insert {umem.name}", late)
        self.ctx.mm.workqueue.queue_work(self.work)


class RemovesTwice(Odp2014):
    name: ClassVar[str] = "removes-twice"
    summary: ClassVar[str] = "unlinks a region from the tree a second time"

    async def remove(self, umem: Any) -> None:
        await super().remove(umem)
        self.ctx.tree_remove(umem)
"""


async def _reregister_then_invalidate(w: World) -> None:
    await w.mm.mmap(0, 8 * P)
    await w.ctx.register_mr(4 * P, 4 * P, name="keep")
    a = await w.ctx.register_mr(0, 4 * P, name="A")
    await w.ctx.deregister_mr(a)
    await w.mm.madvise_dontneed(0, 8 * P)


async def _register_then_exit(w: World) -> None:
    await w.mm.mmap(0, 4 * P)
    await w.ctx.register_mr(0, 4 * P, name="A")
    await w.mm.exit()


async def _register_after_exit_with_a_driver_ref(w: World) -> None:
    await w.mm.mmap(0, 4 * P)
    w.mm.mmget()  # the driver keeps the mm alive past the process's exit
    await w.mm.exit()
    await w.ctx.register_mr(0, 4 * P, name="A")
    await w.workqueue.flush_work(w.ctx.protocol.work)  # type: ignore[attr-defined]
    await w.mm.mmput()


async def _register_deregister(w: World) -> None:
    await w.mm.mmap(0, 4 * P)
    a = await w.ctx.register_mr(0, 4 * P, name="A")
    await w.ctx.deregister_mr(a)


CASES: list[tuple[str, Callable[[World], object], str, str]] = [
    ("ReinsertsFreed", _reregister_then_invalidate, "use-after-free", "a region tree insert"),
    ("InsertsAtRelease", _register_then_exit, "insert-after-release", "release walk began"),
    (
        "InsertsFromWorker",
        _register_after_exit_with_a_driver_ref,
        "insert-after-release",
        "no mm_users reference",
    ),
    ("RemovesTwice", _register_deregister, "double-free", "removed from the region tree twice"),
]


@pytest.fixture
def protocols(user_module: Callable[[str, str], ModuleType]) -> str:
    return user_module(SOURCE, "treelife").__name__


@pytest.mark.parametrize(("qualname", "body", "kind", "detail"), CASES)
def test_the_tree_reports_a_protocols_lifetime_mistake(
    protocols: str, qualname: str, body: Callable[[World], object], kind: str, detail: str
) -> None:
    scenario = Scenario(f"tree-{qualname}", "", body, ("main",))  # type: ignore[arg-type]
    result = explore(scenario, f"{protocols}:{qualname}", schedules=20, shrink=False)
    assert result.failure is not None, qualname
    assert result.failure.violation.kind == kind
    assert "region A" in result.failure.violation.detail
    assert detail in result.failure.violation.detail


@pytest.mark.parametrize("body", [c[1] for c in CASES[:2]] + [_register_deregister])
@pytest.mark.parametrize("chooser", CHOOSERS)
def test_the_built_in_protocol_does_none_of_it(
    chooser: str, body: Callable[[World], object]
) -> None:
    scenario = Scenario("tree-clean", "", body, ("main",))  # type: ignore[arg-type]
    assert_clean(scenario, chooser, protocol="odp2014")
