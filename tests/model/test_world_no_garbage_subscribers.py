"""A run that leaves subscribers registered leaves no reference cycle (issue 13).

A subscriber links to its mm (``sub.mm``) and the mm keeps it in its subscription list and
its per-subscriber SRCU bookkeeping: `AddressSpace._release` (called by `World._release` at
the end of `run_world`) drops the mm's side.  An implicit MR's children link back to it
weakly, and a child's free work holds its child weakly (the MR holds the child until the
work ends), so an MR left registered with children, or with children freed by work, is
freed by reference counting too.  The subscriber here is user code, written outside the
package.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from odp_async.odp.implicit import ImplicitMr
from odp_async.world import World, run_world
from tests.conftest import UserModule

USER_SUBSCRIBER = """
import weakref

from odp_async.subscribers import KvmMmu


class Mirror:
    '''A user's subscriber: links to its mm, counts its callbacks.'''

    def __init__(self, mm):
        self.mm = mm
        self.calls = 0

    async def invalidate_range_start(self, inv):
        self.calls += 1

    async def invalidate_range_end(self, inv):
        self.calls += 1

    async def release(self):
        self.calls += 1


def left_registered(refs):
    async def body(w):
        await w.mm.mmap(0, 4096 * 4)
        mine = Mirror(w.mm)
        kvm = KvmMmu(w.mm, w.checker, "vm")
        await w.mm.register_notifier(mine)
        await kvm.register()
        assert await kvm.fault(0, write=True) == "resolved"
        await w.mm.madvise_dontneed(0, 4096 * 4)  # both get their callbacks
        refs.extend(weakref.ref(o) for o in (mine, kvm, w.mm))
        return mine.calls  # neither is unregistered, the mm does not exit

    return body
"""


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_subscribers_left_registered_are_freed_on_return(
    user_module: UserModule, no_gc: None
) -> None:
    mod = user_module(USER_SUBSCRIBER, "subscriber")
    refs: list[weakref.ref[Any]] = []
    run = run_world(mod.left_registered(refs), seed=0)
    assert run.sim.is_ok, run.sim.error
    assert run.sim.value == 2  # its callbacks ran: the mm's bookkeeping knew it
    assert len(refs) == 3
    assert [r() for r in refs if r() is not None] == []
    assert gc.collect() == 0


def _implicit(refs: list[weakref.ref[Any]]) -> Any:
    async def body(w: World) -> tuple[str, bool]:
        await w.mm.mmap(0, 8 * 4096)
        imr = ImplicitMr(w.mm, w.checker, w.workqueue, "imr", child_pages=4)
        await imr.register()
        for address in (0, 4 * 4096):
            assert (await imr.fault(address, write=True)).value == "resolved"
        first, second = imr.children[0], imr.children[1]
        await w.mm.madvise_dontneed(0, 4096)  # empties child 0: its free work is queued
        assert first.work is not None
        assert 0 not in imr.children
        refs.extend(weakref.ref(o) for o in (imr, first, second, first.work, w.mm))
        # the MR stays registered with child 1; child 0's work runs at the flush
        return first.key, second.parent is imr

    return body


def test_an_implicit_mr_left_registered_is_freed_on_return(no_gc: None) -> None:
    refs: list[weakref.ref[Any]] = []
    run = run_world(_implicit(refs), seed=0)
    assert run.sim.is_ok, run.sim.error
    assert run.violations == ()
    freed_child, linked = run.sim.value
    assert linked
    assert any(
        e.kind == "free" and e.key == freed_child and "its work item" in e.detail
        for e in run.events
    )
    assert len(refs) == 5
    assert [r() for r in refs if r() is not None] == []
    assert gc.collect() == 0
