"""`odp_async.tracked`: objects of tracked classes built before a tracking run and
reached other than through a tracked root (a module global, a closure, a default, a
class attribute) are adopted when a noted run starts, so a program promising
``noted_only`` never gets a `complete` claim past a race on them."""

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


def test_a_lost_birth_makes_the_next_noted_run_look_everywhere(
    user_module: UserModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More births than are remembered: the live objects are looked up instead."""
    mod = user_module(HELD, "tracked_outside_overflow")
    monkeypatch.setattr(tracked_module, "_LOST", [False])
    births = tracked_module._BIRTHS
    births.clear()  # as if the global's birth had been pushed out
    assert births.maxlen is not None
    for _ in range(births.maxlen):
        mod.Counter()
    assert _outcomes(mod.lost_update, mod.by_global) == {1, 2}


def test_adopted_objects_keep_their_state_and_class_contract(user_module: UserModule) -> None:
    mod = user_module(HELD, "tracked_outside_contract")
    mod.GLOBAL.value = 7
    sim.run(mod.lost_update, mod.by_global, chooser=DporChooser(), noted_only=True)
    assert isinstance(mod.GLOBAL, mod.Counter)
    assert type(mod.GLOBAL) is not mod.Counter  # adopted: its tracking twin
    assert repr(mod.GLOBAL).startswith("Counter(")
    assert isinstance(mod.SUB, mod.Sub)


def test_random_runs_adopt_nothing(user_module: UserModule) -> None:
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
