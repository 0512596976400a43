"""State kept on a function object, an enum member or a module held in a tracked field
never lets DPOR claim ``complete`` past a race on it: such a value carries a mutable
attribute dict of its own, which no hook notes (`odp_async.tracked._carries_state`).

Every protocol here lives in a user module in tmp_path.  Before the fix, each one made
``explore("registration-race", proto, chooser="dpor")`` claim ``complete`` (the values
were on the tracked allow-list as stateless), while random found the race.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from odp_async.errors import NondeterminismError
from odp_async.explore import ExploreResult, explore
from odp_async.tracked import track
from odp_async.world import World
from tests.conftest import UserModule
from tests.explore.test_dpor_model_claims import FULL
from tests.test_cli_user import cli_cmd, fresh_env

STATE = """
started = 0
"""

PROTOCOLS = """
import enum
from typing import ClassVar

from odp_async import checkpoint
from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.tracked import tracked

import {state}


def _flag():
    "C's `static int started;`: the state lives on the function object."


def _fresh():
    "No attribute until a run adds one."


def _plain():
    return 3


class Mode(enum.Enum):
    A = "a"
    B = "b"


class _Base(IntervalSeq):
    summary: ClassVar[str] = "a race on state a value in a tracked field carries"

    async def invalidate_range_start(self, inv):
        await checkpoint("before mark")
        self.mark()
        await checkpoint("after mark")
        await super().invalidate_range_start(inv)

    async def fault_begin(self, umem, rng):
        await checkpoint("before look")
        assert self.started(), "a fault began before any invalidation started"
        await checkpoint("after look")
        return await super().fault_begin(umem, rng)


@tracked
class FuncAttr(_Base):
    name: ClassVar[str] = "func-attr"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        _flag.started = 0
        self.holder = _flag

    def mark(self):
        self.holder.started = 1

    def started(self):
        return self.holder.started


@tracked
class FuncAttrAdded(_Base):
    name: ClassVar[str] = "func-attr-added"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        self.holder = _fresh
        self.holder.__dict__.pop("started", None)

    def mark(self):
        self.holder.started = 1

    def started(self):
        return getattr(self.holder, "started", 0)


@tracked
class EnumAttr(_Base):
    name: ClassVar[str] = "enum-attr"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        Mode.A.started = 0
        self.mode = Mode.A

    def mark(self):
        self.mode.started = 1

    def started(self):
        return self.mode.started


@tracked
class ModuleAttr(_Base):
    name: ClassVar[str] = "module-attr"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        self.mod = {state}
        self.mod.started = 0

    def mark(self):
        self.mod.started = 1

    def started(self):
        return self.mod.started


def _gflag():
    "Named, not held: the code writes its attribute through the global name."


@tracked
class FuncGlobal(_Base):
    name: ClassVar[str] = "func-global"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        _gflag.started = 0

    def mark(self):
        _gflag.started = 1

    def started(self):
        return _gflag.started


@tracked
class PlainValues(IntervalSeq):
    # a plain enum member and a function with nothing of its own: keeps the reduction
    name: ClassVar[str] = "plain-values"
    summary: ClassVar[str] = "interval-seq with constant values in fields"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        self.mode = Mode.B
        self.limit = _plain

    def holds_back(self, umem, rng):
        return self.mode is Mode.B and self.limit() > 0 and super().holds_back(umem, rng)
"""

KINDS = {
    "FuncAttr": "_flag",
    "FuncAttrAdded": "_fresh",
    "EnumAttr": "Mode.A",
    "ModuleAttr": None,
    "FuncGlobal": "_gflag",
}


def _dpor(*target: Any, **options: Any) -> tuple[ExploreResult | None, str | None]:
    # DPOR's result, or the NondeterminismError's message when the watch stopped it.
    try:
        return explore(*target, chooser="dpor", shrink=False, **options), None
    except NondeterminismError as stop:
        return None, str(stop)


@pytest.fixture
def protos(user_module: UserModule) -> str:
    state = user_module(STATE, "value_attrs_state")
    return user_module(PROTOCOLS.format(state=state.__name__), "value_attrs_protos").__name__


@pytest.mark.parametrize("name", sorted(KINDS))
def test_dpor_never_claims_complete_past_a_value_attribute(protos: str, name: str) -> None:
    found, stop = _dpor("registration-race", f"{protos}:{name}")
    if stop is not None:  # the watch saw the attributes change
        obj = KINDS[name]
        assert obj is not None, stop
        assert f"the attributes of {protos}.{obj}" in stop, stop
        return
    assert found is not None
    assert found.failure is not None, found.claim
    assert found.failure.violation.kind == "error"
    assert not found.claim.startswith("complete")


def test_the_walk_names_a_function_attribute_written_by_name(protos: str) -> None:
    import importlib

    cls = importlib.import_module(protos).FuncGlobal
    untracked = track(World.build(cls)).untracked
    mine = f"of {protos}._gflag: an attribute of a function"
    assert any(mine in u for u in untracked), untracked


def test_an_attribute_added_during_a_run_stops_the_search(protos: str) -> None:
    # empty when first handed out: the reading steps were not unknown; the watch sees it
    with pytest.raises(NondeterminismError, match=rf"attributes of {protos}\._fresh "):
        explore("registration-race", f"{protos}:FuncAttrAdded", chooser="dpor", shrink=False)


def test_constant_values_keep_the_reduction(protos: str) -> None:
    mine = explore("registration-race", f"{protos}:PlainValues", chooser="dpor", shrink=False)
    base = explore("registration-race", "interval-seq", chooser="dpor", shrink=False)
    assert base.claim == FULL["registration-race/interval-seq"]
    assert mine.claim == base.claim


def test_the_cli_does_not_claim_complete(protos: str, tmp_path: Path) -> None:
    done = subprocess.run(
        cli_cmd("explore", "registration-race", "-p", f"{protos}:EnumAttr", "--chooser", "dpor"),
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "complete" not in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    if done.returncode == 2:
        assert f"the attributes of {protos}.Mode.A" in done.stderr, done.stderr


SCENARIOS = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked


@tracked
class Box:
    def __init__(self, held):
        self.held = held


class Pair(tuple):
    "A tuple subclass: its instances carry an attribute dict."


def lost_update(make):
    async def prog():
        box = Box(make())
        box.held.n = 0

        async def inc():
            seen = box.held.n
            await checkpoint("between")
            box.held.n = seen + 1

        async with task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        assert box.held.n == 2, "lost update"

    return Scenario("lost-update", "", prog, (), needs_world=False, noted_only=True)


def _new_class():
    class Counter:
        pass

    return Counter


CLASS = lost_update(_new_class)
PAIR = lost_update(lambda: Pair((1, 2)))
"""


@pytest.mark.parametrize(("name", "obj"), [("CLASS", "Counter"), ("PAIR", "Pair value")])
def test_a_class_or_tuple_subclass_made_in_the_run(
    user_module: UserModule, name: str, obj: str
) -> None:
    mod = user_module(SCENARIOS, f"value_attrs_scen_{name.lower()}")
    found, stop = _dpor(getattr(mod, name), schedules=200)
    if stop is not None:  # the watch saw the attributes change
        assert obj in stop, stop
        return
    assert found is not None
    assert found.failure is not None, found.claim
    assert not found.claim.startswith("complete")
