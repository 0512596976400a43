"""A finished world run leaves no reference cycle: the machine is freed on return.

With the garbage collector off, weak references to a run's world and its parts die as
soon as `run_world` returns (the wiring is cut at run end, and the primitives hold their
queues without a cycle), and a collection afterwards finds nothing to free, for every
built-in scenario.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from odp_async._runtime.choosers import StreamChooser
from odp_async.explore.target import Target
from odp_async.odp.protocols import PROTOCOLS
from odp_async.scenarios import BUILTIN
from odp_async.world import World, run_world


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _cells() -> list[tuple[str, str]]:
    cells = []
    for name in BUILTIN:
        for protocol in PROTOCOLS:
            try:
                Target.resolve(name, protocol)
            except Exception:  # a scenario that does not take this protocol
                continue
            cells.append((name, protocol))
            break
    return cells


@pytest.mark.parametrize(("scenario", "protocol"), _cells())
def test_each_builtin_run_leaves_no_cycle(scenario: str, protocol: str) -> None:
    target = Target.resolve(scenario, protocol)
    target.run(StreamChooser(0, 0), max_steps=20_000)  # warm-up: lazy imports, caches
    gc.collect()
    gc.disable()
    try:
        for i in range(3):
            target.run(StreamChooser(0, i), max_steps=20_000)
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_world_parts_are_freed_on_return(protocol: str, no_gc: None) -> None:
    refs: list[weakref.ref[Any]] = []

    async def scenario(w: World) -> None:
        await w.mm.mmap(0, 4096 * 4)
        umem = await w.ctx.register_mr(0, 4096 * 4)
        refs.extend(weakref.ref(o) for o in (w, w.mm, w.ctx, w.device, w.checker, umem))
        refs.append(weakref.ref(w.ctx.protocol))
        refs.append(weakref.ref(umem.mutex))
        await w.ctx.deregister_mr(umem)

    run = run_world(scenario, protocol=protocol, seed=1)
    assert run.sim.is_ok, run.sim.error
    assert len(refs) == 8
    assert [r() for r in refs if r() is not None] == []
    assert gc.collect() == 0
