"""Every public method, property and repr of every primitive notes what it touches.

Under the noted-only promise a step's footprint is exactly its noted accesses, so a
primitive accessor that reads its state without noting it (``Mutex.locked()``,
``SlotPool.free``, ``repr(lock)``...) is a read DPOR cannot see: it claimed ``complete``
on programs whose bug `random` found (new-user trial 16a, f01).  This test enumerates the
public surface of each primitive (`odp_async.sync`, `odp_async.shared.SharedCell` and
the tracked `odp_async.srcu.Srcu`, `odp_async.workqueue.Workqueue` and ``WorkItem``):
each member is either used below and must note an access of its primitive in the step
that uses it (a write where it changes the primitive), or is listed in `EXEMPT` with
its reason.  A new public member that is in neither fails the test.

Then a user module written outside the package peeks at a primitive through each
accessor while another task holds it: DPOR, dfs and the default portfolio find the
peek, as `random` does.
"""

from __future__ import annotations

import copy
import inspect
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async._runtime import current_runtime, sim
from odp_async._runtime.footprint import FieldOf, ReadOf
from odp_async.check import Checker
from odp_async.explore import explore
from odp_async.explore.dpor import DporChooser
from odp_async.shared import SharedCell
from odp_async.srcu import Srcu
from odp_async.sync import Completion, Condition, Mutex, RWLock, SlotPool, WaitQueue
from odp_async.workqueue import WorkItem, Workqueue
from tests.conftest import UserModule

#: Dunders that read or change an object's state, looked for on each class.
STATE_DUNDERS = (
    "__repr__",
    "__str__",
    "__len__",
    "__bool__",
    "__iter__",
    "__contains__",
    "__getitem__",
    "__aenter__",
    "__aexit__",
    "__getstate__",
)

#: Members that read no state a task changes, with the reason.
EXEMPT: dict[str, str] = {
    "name": "set at construction (display only); the primitive never changes it",
    "fast_acquire": "configuration set at construction",
    "spins": "configuration set at construction",
    "size": "configuration set at construction",
    "attempt_notes_itself": "a class constant read by the runtime's footprints",
    "wait_is_completion": "what kind of wait this is (for deadlock reports): constant",
    "wait_needs_any": "what kind of wait this is (for deadlock reports): constant",
    "describe_wait": (
        "the runtime's interface (deadlock reports and step labels): the sim calls it "
        "inside steps, so noting there would add a note to every step at a primitive"
    ),
    "waits_behind": (
        "the runtime's interface for deadlock reports: the sim calls it only once a run "
        "has stopped, when no step is left to note"
    ),
    "wait_released_by_anyone": "what kind of wait this is (for the early stop): constant",
    "wait_woken_by_anyone": (
        "what kind of wait this is (for the early stop): fixed by the owner given at "
        "construction; the sim asks only when a block closes a cycle"
    ),
    "gate": "configuration set at construction (a one-shot gate or not)",
    "lock": "the Condition's Mutex, fixed at construction (its own accessors note)",
    "Srcu.workqueue": "a tracked field, noted by its class's hook (checked through call_srcu)",
    "checker": "a tracked field, noted by its class's hook",
    "Workqueue.schedule_work": "an alias of queue_work (the same function)",
}

Use = Callable[[Any], Awaitable[object]]


def _sync(fn: Callable[[Any], object]) -> Use:
    async def use(p: Any) -> object:
        return fn(p)

    return use


async def _nothing(p: Any) -> None:
    return None


async def _hold(p: Mutex) -> None:
    await p.acquire()


async def _fork(body: Callable[[], Awaitable[None]]) -> None:
    # Another task, started and run to its first park, so `p` has a waiter.
    tg_cm = rt.task_group()
    tg = await tg_cm.__aenter__()
    tg.start_soon(body)
    await rt.checkpoint("let it park")
    _open_groups.append(tg_cm)


_open_groups: list[Any] = []


async def _wake_later(q: WaitQueue) -> None:
    async def waker() -> None:
        q.wake_one()

    tg_cm = rt.task_group()
    tg = await tg_cm.__aenter__()
    tg.start_soon(waker)
    _open_groups.append(tg_cm)


async def _cond_held(c: Condition) -> None:
    await c.acquire()


async def _cond_wait(c: Condition) -> object:
    async def notifier() -> None:
        async with c:
            c.notify()

    tg_cm = rt.task_group()
    tg = await tg_cm.__aenter__()
    tg.start_soon(notifier)
    _open_groups.append(tg_cm)
    return await c.wait()


async def _aexit(p: Any) -> object:
    return await p.__aexit__(None, None, None)


async def _rw_read_block(p: RWLock) -> None:
    async with p.read_locked():
        pass


async def _rw_write_block(p: RWLock) -> None:
    async with p.write_locked():
        pass


async def _srcu_synchronize(s: Srcu) -> None:
    await s.synchronize()


async def _srcu_section(s: Srcu) -> None:
    with s.read_section():
        pass


async def _noop_work() -> None:
    return None


async def _running(w: Workqueue) -> None:
    async with w.running():
        pass


async def _flush(w: Workqueue) -> None:
    await w.flush()


#: The item `flush_work` and `cancel_work_sync` wait for: what they read is its state.
_ITEM = WorkItem("other", _noop_work)


async def _flush_work(w: Workqueue) -> None:
    await w.flush_work(_ITEM)


async def _cancel_work(w: Workqueue) -> None:
    await w.cancel_work_sync(_ITEM)


async def _enter_running(w: Workqueue) -> None:
    # The workqueue serves items until the end of the run (closed by `noted_by`).
    cm = w.running()
    await cm.__aenter__()
    _open_groups.append(cm)


#: class -> (factory, {member: (setup, use, "read" | "write")}).
Surface = dict[str, tuple[Use | None, Use, str]]

SURFACES: dict[type, tuple[Callable[[], Any], Surface]] = {
    WaitQueue: (
        lambda: WaitQueue("q"),
        {
            "park": (_wake_later, lambda q: q.park(), "write"),
            # nobody parked: a read of the queue (two such wakes commute); a wake that
            # finds a waiter writes (tests/explore/test_dpor_gates_and_wakes.py)
            "wake_one": (None, _sync(lambda q: q.wake_one()), "read"),
            "wake_all": (None, _sync(lambda q: q.wake_all()), "read"),
            "statistics": (None, _sync(lambda q: q.statistics()), "read"),
            "__len__": (None, _sync(len), "read"),
            "__repr__": (None, _sync(repr), "read"),
            "__getstate__": (None, _sync(copy.copy), "read"),
        },
    ),
    Mutex: (
        lambda: Mutex("m"),
        {
            "acquire": (None, lambda m: m.acquire(), "write"),
            "acquire_nowait": (None, _sync(lambda m: m.acquire_nowait()), "write"),
            "release": (_hold, _sync(lambda m: m.release()), "write"),
            "locked": (_hold, _sync(lambda m: m.locked()), "read"),
            "owner": (_hold, _sync(lambda m: m.owner), "read"),
            "statistics": (_hold, _sync(lambda m: m.statistics()), "read"),
            "__repr__": (_hold, _sync(repr), "read"),
            "__aenter__": (None, lambda m: m.__aenter__(), "write"),
            "__aexit__": (_hold, _aexit, "write"),
            "__getstate__": (None, _sync(copy.copy), "read"),
        },
    ),
    RWLock: (
        lambda: RWLock("rw"),
        {
            "acquire_read": (None, lambda p: p.acquire_read(), "read"),
            "acquire_write": (None, lambda p: p.acquire_write(), "write"),
            "acquire_read_nowait": (None, _sync(lambda p: p.acquire_read_nowait()), "write"),
            "acquire_write_nowait": (None, _sync(lambda p: p.acquire_write_nowait()), "write"),
            "try_acquire_read": (None, _sync(lambda p: p.try_acquire_read()), "write"),
            "try_acquire_write": (None, _sync(lambda p: p.try_acquire_write()), "write"),
            "release_read": (
                lambda p: p.acquire_read(),
                _sync(lambda p: p.release_read()),
                "read",
            ),
            "release_write": (
                lambda p: p.acquire_write(),
                _sync(lambda p: p.release_write()),
                "write",
            ),
            "downgrade": (lambda p: p.acquire_write(), _sync(lambda p: p.downgrade()), "write"),
            "read_locked": (None, _rw_read_block, "read"),
            "write_locked": (None, _rw_write_block, "write"),
            "readers": (None, _sync(lambda p: p.readers), "write"),
            "writer": (None, _sync(lambda p: p.writer), "read"),
            "statistics": (None, _sync(lambda p: p.statistics()), "write"),
            "__repr__": (None, _sync(repr), "write"),
            "__getstate__": (None, _sync(copy.copy), "read"),
        },
    ),
    Completion: (
        lambda: Completion("c"),
        {
            "wait": (_sync(lambda c: c.complete()), lambda c: c.wait(), "write"),
            "wait_nowait": (
                _sync(lambda c: c.complete()),
                _sync(lambda c: c.wait_nowait()),
                "write",
            ),
            "try_wait": (None, _sync(lambda c: c.try_wait()), "write"),
            "is_done": (None, _sync(lambda c: c.is_done()), "read"),
            "complete": (None, _sync(lambda c: c.complete()), "write"),
            "complete_all": (None, _sync(lambda c: c.complete_all()), "write"),
            "reinit": (None, _sync(lambda c: c.reinit()), "write"),
            "statistics": (None, _sync(lambda c: c.statistics()), "read"),
            "__repr__": (None, _sync(repr), "read"),
            "__getstate__": (None, _sync(copy.copy), "read"),
        },
    ),
    SlotPool: (
        lambda: SlotPool(2, "pool"),
        {
            "acquire": (None, lambda p: p.acquire(), "write"),
            "acquire_nowait": (None, _sync(lambda p: p.acquire_nowait()), "write"),
            "release": (
                lambda p: p.acquire(),
                _sync(lambda p: p.release(0)),
                "write",
            ),
            "free": (None, _sync(lambda p: p.free), "read"),
            "statistics": (None, _sync(lambda p: p.statistics()), "read"),
            "__repr__": (None, _sync(repr), "read"),
            "__getstate__": (None, _sync(copy.copy), "read"),
        },
    ),
    Condition: (
        lambda: Condition(Mutex("cm")),
        {
            "acquire": (None, lambda c: c.acquire(), "write"),
            "acquire_nowait": (None, _sync(lambda c: c.acquire_nowait()), "write"),
            "release": (_cond_held, _sync(lambda c: c.release()), "write"),
            "locked": (_cond_held, _sync(lambda c: c.locked()), "read"),
            "notify": (_cond_held, _sync(lambda c: c.notify()), "write"),
            "notify_all": (_cond_held, _sync(lambda c: c.notify_all()), "write"),
            "wait": (_cond_held, _cond_wait, "write"),
            "statistics": (None, _sync(lambda c: c.statistics()), "read"),
            "__repr__": (None, _sync(repr), "read"),
            "__aenter__": (None, lambda c: c.__aenter__(), "write"),
            "__aexit__": (_cond_held, _aexit, "write"),
            "__getstate__": (None, _sync(copy.deepcopy), "read"),
        },
    ),
    SharedCell: (
        lambda: SharedCell(0, "cell"),
        {
            "get": (None, _sync(lambda c: c.get()), "read"),
            "set": (None, _sync(lambda c: c.set(1)), "write"),
            "load": (None, lambda c: c.load(), "read"),
            "store": (None, lambda c: c.store(1), "write"),
            "__repr__": (None, _sync(repr), "read"),
        },
    ),
    Srcu: (
        lambda: Srcu("srcu", Workqueue(Checker(), "srcu_wq")),
        {
            "read_lock": (None, _sync(lambda s: s.read_lock()), "write"),
            "read_unlock": (
                _sync(lambda s: s.read_lock()),
                _sync(lambda s: s.read_unlock(0)),
                "write",
            ),
            "read_section": (None, _srcu_section, "write"),
            "synchronize": (None, _srcu_synchronize, "read"),
            "call_srcu": (None, _nothing, "read"),  # replaced below (needs the workqueue)
            "open_sections": (None, _sync(lambda s: s.open_sections()), "read"),
        },
    ),
    Workqueue: (
        lambda: Workqueue(Checker(), "wq"),
        {
            "queue_work": (
                _enter_running,
                _sync(lambda w: w.queue_work(WorkItem("job", _noop_work))),
                "write",
            ),
            "running": (None, _running, "write"),
            "flush": (None, _flush, "read"),
            "flush_work": (None, _flush_work, "read"),
            "cancel_work_sync": (None, _cancel_work, "read"),
            "busy": (None, _sync(lambda w: w.busy), "read"),
        },
    ),
    WorkItem: (
        lambda: WorkItem("item", _noop_work),
        {
            "busy": (None, _sync(lambda w: w.busy), "read"),
            "key": (None, _sync(lambda w: w.key), "read"),
            "fn": (None, _sync(lambda w: w.fn), "read"),
            "freed": (None, _sync(lambda w: w.freed), "read"),
            "pending": (None, _sync(lambda w: w.pending), "read"),
            "running": (None, _sync(lambda w: w.running), "read"),
            "runs": (None, _sync(lambda w: w.runs), "read"),
            "init": (None, _sync(lambda w: w.init(Checker())), "read"),
            "free": (None, _sync(lambda w: w.free(Checker())), "write"),
            "__repr__": (None, _sync(repr), "read"),
        },
    ),
}


async def _srcu_running(s: Srcu) -> None:
    assert s.workqueue is not None
    await _enter_running(s.workqueue)


SURFACES[Srcu][1]["call_srcu"] = (
    _srcu_running,
    _sync(lambda s: s.call_srcu("job", _noop_work)),
    "read",
)


def public_surface(cls: type) -> set[str]:
    """The public names of `cls` and the state dunders it (or an odp_async base) defines."""
    # (mutmut's copies of the methods, ``xǁClassǁname__mutmut_N``, are not the class's)
    names = {n for n in dir(cls) if not n.startswith("_") and "ǁ" not in n}
    for dunder in STATE_DUNDERS:
        for klass in cls.__mro__:
            if klass.__module__.startswith("odp_async") and dunder in klass.__dict__:
                names.add(dunder)
                break
    return names


def _exempt(cls: type, name: str) -> bool:
    return name in EXEMPT or f"{cls.__name__}.{name}" in EXEMPT


@pytest.mark.parametrize("cls", list(SURFACES), ids=lambda c: c.__name__)
def test_every_public_member_is_classified(cls: type) -> None:
    surface = public_surface(cls)
    used = set(SURFACES[cls][1])
    unclassified = sorted(n for n in surface if n not in used and not _exempt(cls, n))
    assert not unclassified, (
        f"{cls.__name__} has public members this test does not know: {unclassified}; "
        "each must note the access it makes (add it to SURFACES) or be listed in EXEMPT "
        "with the reason it reads no state a task changes"
    )
    stale = sorted(used - surface)
    assert not stale, f"{cls.__name__} no longer has {stale}: drop them from SURFACES"


def _touches(resource: object, objects: list[object], *, write: bool) -> bool:
    if type(resource) is ReadOf:
        if write:
            return False
        resource = resource.read_of
    if type(resource) is FieldOf:
        resource = resource.owner
    return any(resource is o for o in objects)


def _objects_of(p: Any) -> list[object]:
    # The primitive and its parts (its queue; a Condition's lock; a tracked object's
    # tracked containers).
    found: list[object] = [p]
    for attr in ("_queue", "_lock", "_readers", "_items", "_changed", "_done"):
        try:
            part = object.__getattribute__(p, attr)
        except AttributeError:
            continue
        found.append(part)
        found.extend(_objects_of(part) if attr == "_lock" else [])
    return found


def noted_by(cls: type, member: str) -> tuple[set[object], list[object]]:
    """What one use of `member` notes in the step it happens in, and the objects that
    are its primitive's."""
    factory, surface = SURFACES[cls]
    setup, use, _ = surface[member]
    out: dict[str, Any] = {}

    async def main() -> None:
        p = factory()
        out["objects"] = _objects_of(p) + ([_ITEM] if cls is Workqueue else [])
        if setup is not None:
            await setup(p)
        await rt.checkpoint("before the use")
        runtime: Any = current_runtime()
        before_fp = runtime._fp
        before = set(before_fp)
        await use(p)
        after_fp = runtime._fp
        out["noted"] = set(after_fp) - before if after_fp is before_fp else set(after_fp)
        while _open_groups:
            await _open_groups.pop().__aexit__(None, None, None)

    result = sim.run(main, chooser=DporChooser(noted_only=True), noted_only=True)
    result.unwrap()
    return out["noted"], out["objects"]


CASES = [
    pytest.param(cls, member, id=f"{cls.__name__}.{member}")
    for cls, (_, surface) in SURFACES.items()
    for member in surface
]


@pytest.mark.parametrize(("cls", "member"), CASES)
def test_each_member_notes_its_primitive(cls: type, member: str) -> None:
    kind = SURFACES[cls][1][member][2]
    noted, objects = noted_by(cls, member)
    assert any(_touches(r, objects, write=kind == "write") for r in noted), (
        f"{cls.__name__}.{member} noted {noted or 'nothing'}: it must note a "
        f"{kind} of the {cls.__name__} in the step that uses it"
    )


_COPIES_NOTED = """
from tests.test_sync_noted_surface import SURFACES, _touches, noted_by

for cls, (_, surface) in SURFACES.items():
    if "__getstate__" in surface:
        noted, objects = noted_by(cls, "__getstate__")
        assert any(_touches(r, objects, write=False) for r in noted), (cls, noted)
print("copies noted")
"""


def test_a_copy_notes_its_primitive_in_a_fresh_process() -> None:
    """The primitives' `__getstate__` is made noting once, at import
    (`odp_async.sync._noting_getstate`): the case above, again in a fresh process whose
    import is this test's own (under tools/mutation.sh, mutmut's fork server imports the
    model once, unmutated, so only a fresh process runs a mutant of it)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", _COPIES_NOTED],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert done.stdout.splitlines() == ["copies noted"], done.stdout + done.stderr


def test_noting_getstate_makes_a_copy_a_noted_write_of_the_object() -> None:
    """`_noting_getstate` on a class of one's own (an attrs slotted class, which has a
    `__getstate__`): a copy of an instance notes the instance in the step, and is the
    same copy as before (in this process: under tools/mutation.sh its mutants run here)."""
    from odp_async.sync import _noting_getstate

    @attrs.define(eq=False)
    class Box:
        n: int = 0
        items: list[int] = attrs.Factory(list)

    _noting_getstate(Box)
    out: dict[str, Any] = {}

    async def main() -> None:
        box = Box(3, [1])
        await rt.checkpoint("before the copy")
        runtime: Any = current_runtime()
        before_fp = runtime._fp
        before = set(before_fp)
        out["copy"] = copy.copy(box)
        after_fp = runtime._fp
        out["noted"] = set(after_fp) - before if after_fp is before_fp else set(after_fp)
        out["box"] = box

    sim.run(main, chooser=DporChooser(noted_only=True), noted_only=True).unwrap()
    twin = out["copy"]
    assert (twin.n, twin.items) == (3, [1])
    assert twin is not out["box"]
    assert any(r is out["box"] for r in out["noted"]), out["noted"]


def test_the_surface_covers_every_primitive_class_of_sync() -> None:
    from odp_async import sync

    classes = {
        obj
        for name in sync.__all__
        if inspect.isclass(obj := getattr(sync, name)) and hasattr(obj, "statistics")
    }
    assert classes <= set(SURFACES), (
        f"primitives without a surface check: {classes - set(SURFACES)}"
    )


# --- from a user module: each peek is found, never claimed complete -------------------

USER_MODULE = """
import odp_async as oa
from odp_async.explore import SharedCell
from odp_async.scenarios import Scenario

PEEKS = {
    "locked": lambda lock, cond, comp, pool: lock.locked(),
    "owner": lambda lock, cond, comp, pool: lock.owner is not None,
    "mutex_statistics": lambda lock, cond, comp, pool: lock.statistics().locked,
    "mutex_repr": lambda lock, cond, comp, pool: "unlocked" not in repr(lock),
    "condition_locked": lambda lock, cond, comp, pool: cond.locked(),
    "condition_statistics": (
        lambda lock, cond, comp, pool: cond.statistics().lock_statistics.locked
    ),
    "condition_repr": lambda lock, cond, comp, pool: "unlocked" not in repr(cond),
    "completion_statistics": lambda lock, cond, comp, pool: comp.statistics().done > 0,
    "completion_repr": lambda lock, cond, comp, pool: "done=1" in repr(comp),
    "pool_free": lambda lock, cond, comp, pool: pool.free == 0,
    "pool_statistics": lambda lock, cond, comp, pool: pool.statistics().free == 0,
    "pool_repr": lambda lock, cond, comp, pool: " 0/1 free" in repr(pool),
}


def peeking(kind):
    async def prog():
        lock = oa.Mutex("m")
        cond = oa.Condition(lock)
        comp = oa.Completion("c")
        pool = oa.SlotPool(1, "p")
        seen = SharedCell(False, "seen")

        async def holder():
            await lock.acquire()
            slot = await pool.acquire()
            comp.complete()
            await oa.checkpoint("inside")
            comp.wait_nowait()
            pool.release(slot)
            lock.release()

        async def peeker():
            await oa.checkpoint("before peek")
            if PEEKS[kind](lock, cond, comp, pool):
                seen.set(True)
            await oa.checkpoint("after peek")

        async with oa.task_group() as tg:
            tg.start_soon(peeker, name="peeker")
            tg.start_soon(holder, name="holder")
        assert not seen.get(), f"saw the state mid-way ({kind})"

    return Scenario(f"peek-{kind}", "", prog, (), needs_world=False, noted_only=True)


SCENARIOS = {kind: peeking(kind) for kind in PEEKS}
"""


@pytest.fixture
def peeks(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_peeks")


PEEK_KINDS = [
    "locked",
    "owner",
    "mutex_statistics",
    "mutex_repr",
    "condition_locked",
    "condition_statistics",
    "condition_repr",
    "completion_statistics",
    "completion_repr",
    "pool_free",
    "pool_statistics",
    "pool_repr",
]


@pytest.mark.parametrize("chooser", ["dpor", "dfs", "portfolio"])
@pytest.mark.parametrize("kind", PEEK_KINDS)
def test_a_peek_at_a_held_primitive_is_found(peeks: ModuleType, kind: str, chooser: str) -> None:
    assert sorted(peeks.PEEKS) == sorted(PEEK_KINDS)
    result = explore(peeks.SCENARIOS[kind], chooser=chooser, schedules=200, shrink=False)
    assert result.failure is not None, f"{kind} under {chooser}: {result.claim}"
    assert "saw the state mid-way" in str(result.failure.describe())
    assert not result.claim.startswith("complete")


@pytest.mark.parametrize(
    "make", [lambda: Mutex("m"), lambda: RWLock("rw")], ids=["Mutex", "RWLock"]
)
def test_a_cancelled_waiter_leaving_the_queue_writes_the_primitive(make: Any) -> None:
    # The step in which a parked task is cancelled takes it out of the queue (and, on an
    # RWLock, may let queued readers in): a write of the primitive, noted even when the
    # step's label declares nothing (noted-only, untrusted primitives: the model's case).
    noted: list[set[object]] = []

    async def main() -> None:
        p = make()
        acquire = p.acquire if isinstance(p, Mutex) else p.acquire_write
        await acquire()

        async def waiter() -> None:
            with rt.cancel_scope() as scope:
                scopes.append(scope)
                try:
                    await acquire()
                except BaseException:
                    noted.append(set(current_runtime()._fp))  # type: ignore[attr-defined]
                    raise

        async def canceller() -> None:
            await rt.checkpoint("cancel")
            assert p._queue._waiters, "the first schedule runs the waiter to its park"
            scopes[0].cancel()

        scopes: list[Any] = []
        async with rt.task_group() as tg:
            tg.start_soon(waiter, name="waiter")
            tg.start_soon(canceller, name="canceller")
        noted.append({p})  # what the first entry must hold

    chooser = DporChooser(noted_only=True, trust_primitives=False)
    sim.run(main, chooser=chooser, noted_only=True).unwrap()
    left, expected = noted
    assert expected <= left, f"the cancelled waiter's step noted {left}"
