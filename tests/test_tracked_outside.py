"""`odp_async.tracked`: objects of tracked classes built before a tracking run and
reached other than through a tracked root (a module global, a closure, a default, a
class attribute) are noted too (the hooks are on their class during tracking runs), so a
program promising ``noted_only`` never gets a `complete` claim past a race on them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from odp_async import tracked as tracked_module
from odp_async._runtime import sim
from odp_async.explore import explore
from odp_async.explore.dfs import PrunedExecution
from odp_async.explore.dpor import DporChooser
from tests.conftest import UserModule

HELD = """
import attrs
from odp_async import checkpoint, task_group
from odp_async.tracked import tracked

@tracked
@attrs.define
class Counter:
    value: int = 0

@tracked
class Slotted:  # takes no weak reference: found by the look at every live object
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

class Sub(Counter):  # a subclass nobody decorated
    pass

GLOBAL = Counter()
SLOTTED = Slotted()
SUB = Sub()

class Holder:
    counter = Counter()  # a class attribute

def _closure():
    held = Counter()
    return lambda: held

CLOSURE = _closure()

def _default(c=Counter()):
    return c

def by_global():
    return GLOBAL

def by_class_attribute():
    return Holder.counter

def by_slotted():
    return SLOTTED

def by_subclass():
    return SUB

async def lost_update(get):
    get().value = 0

    async def inc():
        seen = get().value
        await checkpoint("between the read and the write")
        get().value = seen + 1

    async with task_group() as tg:
        tg.start_soon(inc)
        tg.start_soon(inc)
    return get().value

async def body():
    assert await lost_update(by_global) == 2, "a lost update"

from odp_async.scenarios import Scenario

SCENARIO = Scenario("lost", "", body, (), needs_world=False, noted_only=True)
"""

GETTERS = ("by_global", "by_class_attribute", "CLOSURE", "_default", "by_slotted", "by_subclass")


def _outcomes(main: Any, *args: Any) -> set[object]:
    chooser = DporChooser()
    seen: set[object] = set()
    while chooser.has_more:
        try:
            seen.add(sim.run(main, *args, chooser=chooser, noted_only=True).value)
        except PrunedExecution:
            continue
    return seen


@pytest.mark.parametrize("getter", GETTERS)
def test_dpor_sees_a_race_on_an_object_built_before_the_run(
    user_module: UserModule, getter: str
) -> None:
    """Before the fix DPOR ran one trace and saw only the serial outcome (2)."""
    mod = user_module(HELD, f"tracked_outside_{getter.strip('_')}")
    assert _outcomes(mod.lost_update, getattr(mod, getter)) == {1, 2}


def test_explore_never_claims_complete_past_it(user_module: UserModule) -> None:
    mod = user_module(HELD, "tracked_outside_explore")
    found = explore(mod.SCENARIO, chooser="dpor", schedules=100)
    assert found.failure is not None
    assert found.failure.violation.kind == "error"
    assert not found.claim.startswith("complete")


def test_an_object_built_after_a_noted_run_is_noted_by_the_next(
    user_module: UserModule,
) -> None:
    """Built after a noted run, outside any: noted by the next (no look, no switch)."""
    mod = user_module(HELD, "tracked_outside_later")
    assert _outcomes(mod.lost_update, mod.by_global) == {1, 2}  # a noted run: all seen
    later = mod.Counter()  # built outside any run, after it
    assert type(later) is mod.Counter
    assert _outcomes(mod.lost_update, lambda: later) == {1, 2}
    assert type(later) is mod.Counter


def test_built_during_a_random_run_and_kept(user_module: UserModule) -> None:
    """Built in a run that keeps no footprints (a portfolio's random member) and kept in
    a global: the next noted run notes it."""
    mod = user_module(HELD, "tracked_outside_lazy")
    assert _outcomes(mod.lost_update, mod.by_global) == {1, 2}
    kept: list[object] = []

    async def build() -> None:
        kept.append(mod.Counter())

    sim.run(build, seed=0)
    assert type(kept[0]) is mod.Counter
    assert _outcomes(mod.lost_update, lambda: kept[0]) == {1, 2}


def test_noted_objects_keep_their_state_and_class_contract(user_module: UserModule) -> None:
    mod = user_module(HELD, "tracked_outside_contract")
    mod.GLOBAL.value = 7
    sim.run(mod.lost_update, mod.by_global, chooser=DporChooser(), noted_only=True)
    assert isinstance(mod.GLOBAL, mod.Counter)
    assert type(mod.GLOBAL) is mod.Counter  # its own class, after the run as in it
    assert repr(mod.GLOBAL).startswith("Counter(")
    assert isinstance(mod.SUB, mod.Sub)


def test_random_runs_change_nothing(user_module: UserModule) -> None:
    mod = user_module(HELD, "tracked_outside_random")
    sim.run(mod.lost_update, mod.by_global, seed=1, noted_only=True)
    assert type(mod.GLOBAL) is mod.Counter


def test_in_a_fresh_process_with_workers(tmp_path: Path) -> None:
    """The program as a user writes it, explored by DPOR in a fresh process, alone and
    with worker processes (the global is built at import in every process).  Before
    the fix, ``jobs=1`` said ``complete: 1 traces, no violation``."""
    (tmp_path / "held_counter.py").write_text(textwrap.dedent(HELD))
    code = textwrap.dedent(
        """
        from odp_async.explore import explore

        for jobs in (1, 2):
            found = explore("held_counter:SCENARIO", chooser="dpor", schedules=200, jobs=jobs)
            print(jobs, found.claim)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**_env(), "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    for line in lines:
        assert "complete" not in line, line
        assert "error" in line, line


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


PROTOCOL = """
from typing import Any, ClassVar

import attrs
from odp_async import checkpoint, task_group
from odp_async.odp.protocols.odp2014 import Odp2014
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked

@tracked
@attrs.define
class Stats:
    value: int = 0

LAST: list = []  # what the protocol keeps outside the world

@tracked
class Keeping(Odp2014):
    name: ClassVar[str] = "keeping"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        LAST[:] = [Stats()]  # built with the world, reached only through the global

async def body(world):
    async def inc():
        seen = LAST[0].value
        await checkpoint("between the read and the write")
        LAST[0].value = seen + 1

    async with task_group() as tg:
        tg.start_soon(inc)
        tg.start_soon(inc)
    assert LAST[0].value == 2, "a lost update"

SCENARIO = Scenario("kept", "", body, ("inc",), noted_only=True)
"""


def test_an_object_a_world_build_keeps_outside_the_world(user_module: UserModule) -> None:
    """Built with the world (outside the run) and reached through a global, not the world:
    its class's hooks note it like any tracked object, so DPOR sees the race."""
    mod = user_module(PROTOCOL, "tracked_outside_protocol")
    found = explore(mod.SCENARIO, mod.Keeping, chooser="dpor", schedules=200)
    assert found.failure is not None, found.claim
    assert found.failure.violation.kind == "error"


def test_a_model_dpor_run_leaves_every_class_as_written() -> None:
    """The hooks are on the tracked classes during a model DPOR run and gone after it:
    no tracked class keeps a ``__getattribute__`` of the explorer's."""
    from odp_async.scenarios import BUILTIN
    from odp_async.world import World, run_world

    scenario = BUILTIN["registration-count"].body
    before = {k: dict(k.__dict__) for k in tracked_module._TRACKED_CLASSES}
    seen: list[bool] = []

    async def body(world: World) -> None:
        seen.append(tracked_module._is_hook(type(world).__getattribute__))
        await scenario(world)

    run = run_world(body, chooser=DporChooser(), noted_only=True)
    assert run.sim.outcome == "ok"
    assert seen == [True]
    for klass, own in before.items():
        assert {n: klass.__dict__.get(n) for n in tracked_module._HOOK_NAMES} == {
            n: own.get(n) for n in tracked_module._HOOK_NAMES
        }, klass


def test_an_object_aged_by_a_collection_is_still_found(user_module: UserModule) -> None:
    """The look reads the young generations only while no older one was collected; a
    collection that ages a new object into the oldest generation makes it read them all
    (without that, this object was missed)."""
    import gc

    mod = user_module(HELD, "tracked_outside_aged")
    assert _outcomes(mod.lost_update, mod.by_global) == {1, 2}  # a look: flags cleared
    later = mod.Counter()
    gc.collect()  # `later` now sits in the oldest generation
    assert any(o is later for o in gc.get_objects(2))
    assert _outcomes(mod.lost_update, lambda: later) == {1, 2}
    assert type(later) is mod.Counter


def test_a_noted_object_still_pickles_and_copies_as_its_class(
    user_module: UserModule,
) -> None:
    """Tracking must not change what the object does elsewhere: it pickles and copies
    as its own class, outside a tracking run and inside one."""
    import copy
    import pickle

    mod = user_module(HELD, "tracked_outside_pickle")
    _outcomes(mod.lost_update, mod.by_global)
    assert type(mod.GLOBAL) is mod.Counter
    mod.GLOBAL.value = 5
    back = pickle.loads(pickle.dumps(mod.GLOBAL))
    assert type(back) is mod.Counter
    assert back.value == 5
    assert type(copy.deepcopy(mod.GLOBAL)) is mod.Counter

    async def copy_inside() -> bool:
        return type(copy.copy(mod.GLOBAL)) is mod.Counter

    assert sim.run(copy_inside, chooser=DporChooser()).value is True
