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
    the event loop and await your scenario yourself, inside ``async with
    world.workqueue.running():`` if it queues work (``mmput_async``, ``call_srcu``, your
    own work items); the checker works the same way.

    A world built once, reused per run: ``world.snapshot()`` records the state of
    everything the world reaches (`odp_async.snapshot.Snapshot`); its ``restore()`` puts
    it all back in place, far faster than building it again (about 0.1 µs per reference
    held against about 50 µs per registered region to build).  `PreparedWorld` is that,
    ready made: ``PreparedWorld.build(setup, protocol)`` builds a world and runs
    ``setup(world)`` on it once (under the sim, seed 0, events not recorded), and each
    ``prepared.run(scenario, ...)`` runs a scenario on that state and puts the world back
    after it.  A run is the same as ``run_world(scenario, setup=setup, ...)``, which
    builds and sets up a fresh world every time: same sim result, violations, events and
    final state.  A `Scenario` with a ``setup`` is explored this way.

Concurrency
    One world per run; nothing is shared between worlds.

See also
    `odp_async.mm`, `odp_async.device`, `odp_async.odp`, `odp_async.check`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableSequence
from typing import Any, cast

import attrs

from ._runtime import current_runtime
from ._runtime.choosers import Chooser
from ._runtime.sim import DEFAULT_MAX_STEPS, SimResult, SimRuntime
from ._runtime.sim import run as sim_run
from .check import Checker, Event, Violation, ViolationKind
from .device import Device
from .errors import BodyNotAwaitable, InvalidArgument, ProtocolViolation
from .mm import AddressSpace, File, PhysicalMemory
from .odp import OdpProtocol, UContext
from .snapshot import Snapshot
from .srcu import Srcu
from .sync import Mutex, RWLock
from .tracked import TrackedDict, TrackedList, TrackedSet, track, tracked
from .workqueue import Workqueue

__all__ = ["PreparedWorld", "Scenario", "World", "WorldRun", "run_world"]


def _where() -> tuple[int | None, str]:
    # a live runtime numbers no steps: None, never a made-up 0 (the setup's step)
    try:
        runtime = current_runtime()
        task = runtime.current_task()
    except ProtocolViolation:
        return 0, "-"
    step = runtime.steps if isinstance(runtime, SimRuntime) else None
    return step, runtime.task_name(task)


@tracked
@attrs.define(eq=False)
class World:
    """One machine: `checker`, `memory`, `mm`, `device`, `ctx` (and ``ctx.protocol``)."""

    checker: Checker
    memory: PhysicalMemory
    mm: AddressSpace
    device: Device
    ctx: UContext
    files: TrackedDict[str, File] = attrs.field(factory=TrackedDict)
    #: The kernel's ``system_wq``: `AddressSpace.mmput_async`, ``call_srcu`` and your own
    #: work items run here; `run_world` serves it around the scenario.
    workqueue: Workqueue = attrs.field(kw_only=True)
    #: Locks and SRCU structs a scenario or subscriber made, checked at the end of a run
    #: for ``lock-held-at-exit`` (the mm's, the context's and the regions' are always).
    tracked: TrackedList[Mutex | RWLock | Srcu] = attrs.field(factory=TrackedList, kw_only=True)

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
        # The checker's containers are tracked ones (it sits below `odp_async.tracked`).
        checker = Checker(
            where=_where,
            record_events=record_events,
            violations=TrackedList(),
            events=TrackedList(),
            translations=TrackedDict(),
            by_frame=TrackedDict(),
            released_tables=TrackedDict(),
            seen=TrackedSet(),
            freed=TrackedDict(),
        )
        memory = PhysicalMemory(checker)
        workqueue = Workqueue(checker)
        mm = AddressSpace(memory, checker, workqueue=workqueue)
        # The device context keeps the mm struct (not its memory) for the world's life, as
        # ib_umem_odp holds mmgrab(owning_mm) (drivers/infiniband/core/umem_odp.c, v5.4+).
        mm.mmgrab()
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
        return cls(checker, memory, mm, device, ctx, workqueue=workqueue)

    @property
    def protocol(self) -> OdpProtocol:
        return self.ctx.protocol

    @property
    def violations(self) -> MutableSequence[Violation]:
        return self.checker.violations

    def file(self, name: str, npages: int, *, hugetlb: bool = False) -> File:
        """A new file of `npages` pages (its page cache is in this machine's memory)."""
        f = File(name, npages, self.memory, hugetlb)
        self.files[name] = f
        return f

    def track(self, obj: Mutex | RWLock | Srcu) -> None:
        """Check `obj` for ``lock-held-at-exit`` at the end of the run too."""
        self.tracked.append(obj)

    def run_setup(self, setup: Scenario) -> None:
        """Run ``setup(world)`` on this world as a sim run of its own (seed 0, events not
        recorded; violations are kept): how a `Scenario`'s ``setup`` builds the state its
        schedules start from.  Blocks until it is done; call it outside any event loop's
        task.  Raises `InvalidArgument` if the setup is not an async function (one line
        naming it) or does not finish cleanly (an error, a deadlock, the step bound).  A
        violation the setup records is kept at step 0 (its steps are not a run's), with
        its setup step in its detail."""
        if not callable(setup):
            raise InvalidArgument(f"the world's setup must be an async function, got {setup!r}")
        record = self.checker.record_events
        self.checker.record_events = False
        earlier = len(self.checker.violations)
        try:
            result = sim_run(
                world_main(self, _awaited_setup(setup)), seed=0, max_steps=DEFAULT_MAX_STEPS
            )
        finally:
            self.checker.record_events = record
        if isinstance(result.error, _NotAsync):
            raise InvalidArgument(str(result.error)) from None
        if result.outcome != "ok":
            why = repr(result.error) if result.error is not None else result.outcome
            raise InvalidArgument(f"the world's setup {_qualname(setup)} did not finish: {why}")
        # A violation the setup recorded is kept, but its step is not one of a run's: it
        # is shown at step 0 (before the run's first step), its setup step in the detail.
        found = self.checker.violations
        for i in range(earlier, len(found)):
            v = found[i]
            detail = f"{v.detail} (in the setup, at its step {v.step})"
            found[i] = attrs.evolve(v, step=0, detail=detail)

    def snapshot(self) -> Snapshot:
        """Record this world's state, to put it back later with ``.restore()`` (in place:
        the same objects, state as now; see `odp_async.snapshot`).  Take it between runs,
        with no work queued and no lock held.  Raises `InvalidArgument` if work is queued
        or the world reaches something a snapshot cannot copy (naming its path).  Sync."""
        if self.workqueue.busy:
            raise InvalidArgument("World.snapshot(): work is still queued on the workqueue")
        return Snapshot.take(self)

    def _release(self) -> None:
        """Cut the wiring's reference cycles once a run is over, so reference counting
        frees the machine on return instead of the garbage collector (`run_world` calls
        it; its world is not reachable afterwards).  What it cuts is wiring, not state:
        the checker's lookups into the mm and memory, the device's fault handler, the
        context's links to its protocol and subscription, the regions' tree handles, the
        mm's links to its subscribers (`AddressSpace._release`)."""
        wiring = attrs.fields(Checker)
        self.checker.page_lookup = cast(Any, wiring.page_lookup.default)
        self.checker.frame_live = cast(Any, wiring.frame_live.default)
        self.device.fault_handler = None
        ctx = self.ctx
        ctx.subscription.ctx = None  # type: ignore[assignment]
        for umem in ctx.umems.values():
            umem.handle = None
        for file in self.files.values():
            file.mappings.clear()
        ctx.protocol.ctx = None  # type: ignore[assignment]
        self.mm._release()

    def check_locks_at_exit(self) -> None:
        """Record a ``lock-held-at-exit`` for every lock, read lock or SRCU read section
        still held once every task of the run finished (call it from the main task after
        the scenario returned; `run_world` does).  Sync."""
        locks: list[Mutex | RWLock | Srcu] = [self.mm.mmap_sem, self.mm.anon_vma]
        locks.append(self.ctx.umem_rwsem)
        locks.extend(u.mutex for u in self.ctx.umems.values())
        locks.extend(f.i_mmap for f in self.files.values())
        locks.extend(self.tracked)
        for lock in locks:
            if isinstance(lock, Mutex):
                if lock.owner is not None:
                    self.checker.lock_held_at_exit(_name(lock.owner), f"mutex {lock.name}")
            elif isinstance(lock, RWLock):
                if lock.writer is not None:
                    self.checker.lock_held_at_exit(_name(lock.writer), f"{lock.name} (write)")
                for reader in lock.readers:
                    self.checker.lock_held_at_exit(_name(reader), f"{lock.name} (read)")
            else:
                for reader in lock.open_sections():
                    self.checker.lock_held_at_exit(_name(reader), f"an {lock.name} read section")


def _name(task: object) -> str:
    return current_runtime().task_name(task)


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


def world_main(world: World, scenario: Scenario) -> Callable[[], Awaitable[Any]]:
    """The sim's main task for ``scenario(world)``: the world's workqueue served around the
    scenario and flushed after it (only when work is queued: no extra step otherwise), and
    the locks-held-at-exit check at the end.  An exception of the scenario is re-raised as
    it is, not inside the queue's task group."""

    async def main() -> Any:
        failed: Exception | None = None
        result: Any = None
        async with world.workqueue.running():
            try:
                made = scenario(world)
                if not inspect.isawaitable(made):
                    raise BodyNotAwaitable(f"the scenario body {_qualname(scenario)}", made)
                result = await made
                if world.workqueue.busy:
                    await world.workqueue.flush()
            except Exception as e:
                failed = e
        if failed is not None:
            raise failed
        world.check_locks_at_exit()
        return result

    return main


def run_world(
    scenario: Scenario,
    *,
    protocol: str | type[OdpProtocol] = "odp2014",
    options: dict[str, Any] | None = None,
    seed: int = 0,
    chooser: Chooser | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    trace: bool = False,
    setup: Scenario | None = None,
    noted_only: bool = False,
    **world_kwargs: Any,
) -> WorldRun:
    """Build a world and run ``scenario(world)`` under the sim runtime.

    With `setup`, ``setup(world)`` runs first on the new world, as its own sim run (seed
    0, events not recorded; `PreparedWorld` runs it once for many runs).  Raises
    `InvalidArgument` if the setup does not finish cleanly.  A deadlock of the run is
    recorded as a ``deadlock`` violation; an exception the scenario raised stays in
    ``run.sim.error``.

    `noted_only` is the scenario's promise that its body shares state between its tasks
    only through the world (and other tracked objects, `odp_async.tracked`).  When the
    chooser keeps footprints, the world is then walked (`track`) and, if nothing
    stateful in it escapes tracking (its classes `@tracked`, its containers tracked
    ones), the run's steps are exactly their noted accesses, so DPOR reduces; if the
    walk meets a stateful object nobody notes (a user protocol not marked ``@tracked``,
    a plain dict in one), the promise is not taken and steps stay unknown (sound,
    unreduced).
    """
    world = World.build(protocol, options=options, **world_kwargs)
    if setup is not None:
        _set_up(world, setup)
    run = _run_on(world, scenario, seed, chooser, max_steps, trace, noted_only)
    world._release()
    return run


def _set_up(world: World, setup: Scenario) -> None:
    world.run_setup(setup)


def _qualname(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))


class _NotAsync(Exception):
    """A setup that returned something not awaitable (a plain ``def``)."""


def _awaited_setup(setup: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def setup_run(world: World) -> Any:
        made = setup(world)
        if not inspect.isawaitable(made):
            module = getattr(setup, "__module__", None)
            name = f"{module}.{_qualname(setup)}" if module else _qualname(setup)
            raise _NotAsync(
                f"the world's setup {name} is not an async function: it returned {made!r} "
                "(define it with async def)"
            )
        return await made

    return setup_run


def _run_on(
    world: World,
    scenario: Scenario,
    seed: int,
    chooser: Chooser | None,
    max_steps: int,
    trace: bool,
    noted_only: bool,
) -> WorldRun:
    main = world_main(world, scenario)
    if noted_only and getattr(chooser, "wants_footprints", False):
        # Every field of the world's classes notes itself in this run; steps are exactly
        # their noted accesses only if nothing stateful escapes tracking.
        noted_only = not track(world).untracked
    else:
        noted_only = False

    def stop_recording() -> None:
        world.checker.closed = True

    result = sim_run(
        main,
        seed=seed,
        chooser=chooser,
        max_steps=max_steps,
        trace=trace,
        on_stop=stop_recording,
        noted_only=noted_only,
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


@attrs.define(eq=False)
class PreparedWorld:
    """A world set up once and put back after every run (see the module docstring).

    ``PreparedWorld.build(setup, protocol, ...)`` takes `World.build`'s arguments;
    `run` takes `run_world`'s run arguments.  One run at a time (it reuses one world).
    """

    world: World
    snapshot: Snapshot
    setup: Scenario

    @classmethod
    def build(
        cls,
        setup: Scenario,
        protocol: str | type[OdpProtocol] = "odp2014",
        *,
        options: dict[str, Any] | None = None,
        **world_kwargs: Any,
    ) -> PreparedWorld:
        """Build a world, run ``setup(world)`` on it (a sim run, seed 0, events not
        recorded) and snapshot it.  Raises `InvalidArgument` for a bad protocol or
        option, a setup that does not finish cleanly, or a world the snapshot cannot
        copy."""
        world = World.build(protocol, options=options, **world_kwargs)
        _set_up(world, setup)
        return cls(world, world.snapshot(), setup)

    def run(
        self,
        scenario: Scenario,
        *,
        seed: int = 0,
        chooser: Chooser | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        trace: bool = False,
        record_events: bool | None = None,
        noted_only: bool = False,
    ) -> WorldRun:
        """Run ``scenario(world)`` on the set-up world, then put the world back.  The
        same as ``run_world(scenario, setup=self.setup, ...)`` on a fresh world.
        `record_events` (None: as built) sets the checker's for this run; `noted_only` as
        in `run_world` (the world is walked afresh after each restore)."""
        world = self.world
        try:
            if record_events is not None:
                world.checker.record_events = record_events
            return _run_on(world, scenario, seed, chooser, max_steps, trace, noted_only)
        finally:
            self.snapshot.restore()
