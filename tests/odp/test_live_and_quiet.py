"""The model on real event loops, and a quiet workload the checker must find nothing in."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from odp_async import task_group
from odp_async.addr import PAGE_SIZE
from odp_async.device import FaultOutcome
from odp_async.odp import PROTOCOLS
from odp_async.scenarios import BUILTIN, Verdict
from odp_async.world import World, run_world
from tests.conftest import Runner

P = PAGE_SIZE


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_scenarios_run_live_to_completion(live: Runner, name: str) -> None:
    """Live interleavings are not controlled: no verdict is asserted, only completion
    (or, for the pool scenario under hmm-pool, whatever the loop happened to do)."""
    scenario = BUILTIN[name]
    for protocol in PROTOCOLS:
        if scenario.expected_for(protocol) is Verdict.DEADLOCK:
            continue  # may really deadlock on a live loop (in shielded kernel sections)

        async def main(protocol: str = protocol) -> tuple[dict[str, Any], World]:
            world = World.build(protocol)
            with anyio.fail_after(10):
                async with world.workqueue.running():  # mmput_async and work items run here
                    out = await scenario.body(world)
            return out, world

        out, world = live.run(main)
        assert isinstance(out, dict)
        assert world.ctx.protocol.name == protocol


async def quiet_workload(world: World) -> dict[str, Any]:
    """Registration, faults, DMA and teardown with no invalidation racing anything."""
    mm, ctx, device = world.mm, world.ctx, world.device
    await mm.mmap(0, 32 * P)
    a = await ctx.register_mr(0, 16 * P, name="A")
    b = await ctx.register_mr(16 * P, 16 * P, name="B")
    results: dict[str, Any] = {}

    async def user(umem: Any, base: int, tag: str) -> None:
        for i in range(4):
            results[f"{tag}{i}"] = await ctx.fault(umem, base + i * P, write=True)
            await device.dma(umem.table, base + i * P, write=True)

    async with device.fault_handlers(2), task_group() as tg:
        tg.start_soon(user, a, 0, "a")
        tg.start_soon(user, b, 16 * P, "b")
    # DMA through the fault queue (no translation yet at page 8 of A)
    await device.dma(a.table, 8 * P, write=False)
    await ctx.deregister_mr(a)
    await ctx.deregister_mr(b)
    await mm.munmap(0, 32 * P)
    return results


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_quiet_workload_is_clean_in_the_sim(protocol: str) -> None:
    for seed in range(10):
        run = run_world(quiet_workload, protocol=protocol, seed=seed)
        assert run.sim.error is None, run.sim.error
        assert run.violations == ()
        assert set(run.sim.value.values()) == {FaultOutcome.RESOLVED}  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_quiet_workload_is_clean_live(live: Runner, protocol: str) -> None:
    async def main() -> World:
        world = World.build(protocol)
        await quiet_workload(world)
        return world

    world = live.run(main)
    assert world.violations == []
    assert not world.device.tables
    assert world.memory.frames_in_use == 0
