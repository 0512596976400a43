"""Run-stable footprint keys (`odp_async.explore.dfs`): objects first seen in one step
are told apart by their class and name, so DPOR does not see a race between them.

Objects first noted in the same step share that step's number; before they were also
told apart by class and name, two tracked objects read together in a task's first step
(a world's setup, a scenario's main) conflicted wherever either was touched later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from odp_async._runtime import sim
from odp_async.explore.dfs import PrunedExecution, _independent
from odp_async.explore.dpor import DporChooser
from odp_async.sync import Mutex
from tests.conftest import UserModule

TWO = """
import attrs
from odp_async import checkpoint, task_group
from odp_async.tracked import tracked

@tracked
@attrs.define
class Left:
    value: int = 0

@tracked
@attrs.define
class Right:
    value: int = 0

@tracked
@attrs.define
class Named:
    name: str
    value: int = 0

async def bump(cell, times):
    for _ in range(times):
        v = cell.value
        await checkpoint("between the read and the write")
        cell.value = v + 1

async def run(a, b):
    seen = a.value + b.value  # both first noted in main's first step
    async with task_group() as tg:
        tg.start_soon(bump, a, 3)
        tg.start_soon(bump, b, 3)
    return (seen, a.value, b.value)

async def two_classes():
    return await run(Left(), Right())

async def two_names():
    return await run(Named("a"), Named("b"))

async def one_object():
    a = Left()
    return await run(a, a)
"""


def _search(main: Callable[..., Any], *, noted_only: bool) -> tuple[set[object], int]:
    chooser = DporChooser()
    seen: set[object] = set()
    traces = 0
    while chooser.has_more:
        try:
            result = sim.run(main, chooser=chooser, noted_only=noted_only)
        except PrunedExecution:
            continue
        traces += 1
        seen.add(result.value)
    assert chooser.is_complete
    return seen, traces


def test_objects_first_seen_together_are_told_apart(user_module: UserModule) -> None:
    """Two objects of different classes, or of one class with different names, read in
    the same first step: their fields stay apart, so the two tasks are independent (one
    trace), and the outcomes are those of the unreduced search."""
    mod = user_module(TWO, "dpor_keys_two")
    for main in (mod.two_classes, mod.two_names):
        reduced, traces = _search(main, noted_only=True)
        plain, plain_traces = _search(main, noted_only=False)
        assert reduced == plain == {(0, 3, 3)}
        assert traces == 1 < plain_traces


def test_one_object_stays_one_resource(user_module: UserModule) -> None:
    """The same object under two names is one resource: its lost updates are found."""
    mod = user_module(TWO, "dpor_keys_one")
    reduced, _ = _search(mod.one_object, noted_only=True)
    plain, _ = _search(mod.one_object, noted_only=False)
    assert reduced == plain
    assert (0, 6, 6) in reduced
    assert len(reduced) > 1


def test_keys_of_primitives() -> None:
    """Two mutexes first seen in one step: apart by name, together without one (more
    conflicts, never fewer); one object always has one key."""
    chooser = DporChooser()
    a, b, c, d = Mutex("a"), Mutex("b"), Mutex(), Mutex()
    ka, kb, kc, kd = (chooser._key(m, 5) for m in (a, b, c, d))
    assert ka != kb
    assert kc == kd
    assert chooser._key(a, 9) == ka  # first sight fixes it
    reads, writes = chooser._stable_keys(_fp({a}), 7)
    assert writes == {ka}
    assert not reads


def test_fresh_objects_still_conflict() -> None:
    """Relative to an entry seen at step 3, objects first seen at or after it cannot be
    told apart across executions, whatever their class: they conflict."""
    from odp_async.explore.dfs import _Fp

    chooser = DporChooser()
    left = chooser._key(Mutex("x"), 4)
    right = chooser._key(Mutex("y"), 6)
    older = chooser._key(Mutex("z"), 1)
    assert not _independent(
        _Fp(frozenset(), frozenset({left}), 3), _Fp(frozenset(), frozenset({right}), 6)
    )
    assert _independent(
        _Fp(frozenset(), frozenset({older}), 3), _Fp(frozenset(), frozenset({right}), 6)
    )


def _fp(writes: set[object]) -> Any:
    from odp_async._runtime.footprint import Footprint

    return Footprint(writes=frozenset(writes))


def test_a_name_that_may_hold_an_address_is_not_used() -> None:
    """A name built from id() differs between executions: it must not tell objects
    apart, or a sleep set would compare the same object under two keys."""
    chooser = DporChooser()
    a, b = Mutex(), Mutex()
    a.name, b.name = f"m{id(a)}", f"<lock at {id(b):#x}>"
    assert chooser._key(a, 5) == chooser._key(b, 5) == chooser._key(Mutex(), 5)
