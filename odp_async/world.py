"""The public entry point of the model: one simulated machine, wired from its parts.

Contract
    `World.build(protocol)` makes a checker, physical memory, one process address space,
    one RDMA device and the process's ODP context running `protocol` (a built-in name or
    your `OdpProtocol` subclass), and wires them: the mm and the device feed the checker,
    the device's fault handler is the context's fault path.  It holds no logic of its own.

    `run_world(scenario, protocol=..., seed=...)` builds a world, runs
    ``scenario(world)`` under the sim runtime and returns a `WorldRun`: the sim result,
    the violations (a deadlock of the run is one too) and the semantic events.  The same
    seed (or schedule) gives the same run.  On trio or asyncio, build the world inside
    the event loop and await your scenario yourself; the checker works the same way.

Concurrency
    One world per run; nothing is shared between worlds.

See also
    `odp_async.mm`, `odp_async.device`, `odp_async.odp`, `odp_async.check`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ._runtime import current_runtime
from ._runtime.choosers import Chooser
from ._runtime.sim import DEFAULT_MAX_STEPS, SimResult, SimRuntime
from ._runtime.sim import run as sim_run
from .check import Checker, Event, Violation, ViolationKind
from .device import Device
from .errors import ProtocolViolation
from .mm import AddressSpace, File, PhysicalMemory
from .odp import OdpProtocol, UContext

__all__ = ["Scenario", "World", "WorldRun", "run_world"]


def _where() -> tuple[int, str]:
    try:
        runtime = current_runtime()
        task = runtime.current_task()
    except ProtocolViolation:
        return 0, "-"
    step = runtime.steps if isinstance(runtime, SimRuntime) else 0
    return step, runtime.task_name(task)


@attrs.define(eq=False)
class World:
    """One machine: `checker`, `memory`, `mm`, `device`, `ctx` (and ``ctx.protocol``)."""

    checker: Checker
    memory: PhysicalMemory
    mm: AddressSpace
    device: Device
    ctx: UContext
    files: dict[str, File] = attrs.field(factory=dict)

    @classmethod
    def build(
        cls,
        protocol: str | type[OdpProtocol] = "odp2014",
        *,
        options: dict[str, Any] | None = None,
        max_fault_retries: int = 12,
        starvation_bound: int = 12,
        record_events: bool = True,
    ) -> World:
        """Wire a fresh machine.  Raises `InvalidArgument` for an unknown protocol/option."""
        checker = Checker(where=_where, record_events=record_events)
        memory = PhysicalMemory(checker)
        mm = AddressSpace(memory, checker)
        checker.page_lookup = mm.lookup
        checker.frame_live = memory.is_live
        device = Device(checker)
        ctx = UContext(
            mm,
            device,
            checker,
            protocol,
            options=options,
            max_fault_retries=max_fault_retries,
            starvation_bound=starvation_bound,
        )
        device.fault_handler = ctx.handle_device_fault
        return cls(checker, memory, mm, device, ctx)

    @property
    def protocol(self) -> OdpProtocol:
        return self.ctx.protocol

    @property
    def violations(self) -> list[Violation]:
        return self.checker.violations

    def file(self, name: str, npages: int, *, hugetlb: bool = False) -> File:
        """A new file of `npages` pages (its page cache is in this machine's memory)."""
        f = File(name, npages, self.memory, hugetlb)
        self.files[name] = f
        return f


Scenario = Callable[[World], Awaitable[Any]]


@attrs.frozen
class WorldRun:
    """One run of a scenario under the sim: what the runtime saw and what the checker saw."""

    protocol: str
    sim: SimResult
    violations: tuple[Violation, ...]
    events: tuple[Event, ...]

    @property
    def kinds(self) -> tuple[ViolationKind, ...]:
        return tuple(dict.fromkeys(v.kind for v in self.violations))

    @property
    def first(self) -> Violation | None:
        return self.violations[0] if self.violations else None


def run_world(
    scenario: Scenario,
    *,
    protocol: str | type[OdpProtocol] = "odp2014",
    options: dict[str, Any] | None = None,
    seed: int = 0,
    chooser: Chooser | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    trace: bool = False,
    **world_kwargs: Any,
) -> WorldRun:
    """Build a world and run ``scenario(world)`` under the sim runtime.

    A deadlock of the run is recorded as a ``deadlock`` violation; an exception the
    scenario raised stays in ``run.sim.error``.
    """
    world = World.build(protocol, options=options, **world_kwargs)

    async def main() -> Any:
        return await scenario(world)

    def stop_recording() -> None:
        world.checker.closed = True

    result = sim_run(
        main, seed=seed, chooser=chooser, max_steps=max_steps, trace=trace, on_stop=stop_recording
    )
    world.checker.closed = False
    if result.deadlock is not None:
        cycle = result.deadlock.cycle or result.deadlock.blocked
        world.checker.deadlock(
            result.deadlock.describe(), tuple(b.task for b in cycle), result.steps
        )
    return WorldRun(
        world.protocol.name, result, tuple(world.violations), tuple(world.checker.events)
    )
