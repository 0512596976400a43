"""State reached past the tracked objects' fields (module globals, class attributes, a
helper function's globals, ``mymod.state``) never lets DPOR claim ``complete`` past a
race on it: the noted-only walk reads the code (`odp_async._tracked_code`), and a class
attribute or global changed past the notes stops the search.

Every program here lives in a user module in tmp_path.  Before the fix, each user
protocol below made ``explore("registration-race", proto, chooser="dpor")`` claim
``complete: 917 traces, no violation`` while random found the race at schedule 1, and
each user scenario ``complete: 1 traces``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from odp_async.errors import NondeterminismError
from odp_async.explore import explore
from odp_async.tracked import track
from odp_async.world import World
from tests.conftest import UserModule
from tests.explore.test_dpor_model_claims import FULL
from tests.test_cli_user import cli_cmd, fresh_env

STATE = """
state = {}
"""

PROTOCOLS = """
from typing import ClassVar

from odp_async import checkpoint
from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.tracked import tracked

import {state}

_pending = {{}}
n = 0


def _mark():
    _pending["started"] = 1


def _started():
    return _pending.get("started")


class _Base(IntervalSeq):
    summary: ClassVar[str] = "a race on state the footprints do not see"

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
class GlobalDict(_Base):
    name: ClassVar[str] = "global-dict"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        _pending.clear()

    def mark(self):
        _pending["started"] = 1

    def started(self):
        return _pending.get("started")


@tracked
class GlobalCounter(_Base):
    name: ClassVar[str] = "global-counter"

    def __init__(self, ctx, **options):
        global n
        super().__init__(ctx, **options)
        n = 0

    def mark(self):
        global n
        n += 1

    def started(self):
        return n


@tracked
class ClassCounter(_Base):
    name: ClassVar[str] = "class-counter"
    total = 0

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        ClassCounter.total = 0

    def mark(self):
        ClassCounter.total += 1

    def started(self):
        return ClassCounter.total


@tracked
class ClassCache(_Base):
    name: ClassVar[str] = "class-cache"
    cache = {{}}

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        self.cache.clear()

    def mark(self):
        self.cache["started"] = 1

    def started(self):
        return self.cache.get("started")


@tracked
class Helper(_Base):
    name: ClassVar[str] = "helper"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        _pending.clear()

    def mark(self):
        _mark()

    def started(self):
        return _started()


@tracked
class ModuleAttr(_Base):
    name: ClassVar[str] = "module-attr"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        {state}.state.clear()

    def mark(self):
        {state}.state["started"] = 1

    def started(self):
        return {state}.state.get("started")


@tracked
class TypeSelf(_Base):
    name: ClassVar[str] = "type-self"
    busy = 0

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        type(self).busy = 0

    def mark(self):
        type(self).busy += 1

    def started(self):
        return type(self).busy


@tracked
class ClassMethod(_Base):
    name: ClassVar[str] = "class-method"
    busy = 0

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        self.reset()

    @classmethod
    def reset(cls):
        cls.busy = 0

    @classmethod
    def mark(cls):
        cls.busy += 1

    def started(self):
        return self.__class__.busy


@tracked
class Dynamic(_Base):
    # the owner is held in a local: the static read cannot tell; the watch does
    name: ClassVar[str] = "dynamic"
    total = 0

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        owner = type(self)
        owner.total = 0

    def mark(self):
        owner = type(self)
        owner.total += 1

    def started(self):
        return type(self).total


@tracked
class TrackedOnly(IntervalSeq):
    # only tracked state, a constant table and a helper reading it: keeps the reduction
    name: ClassVar[str] = "tracked-only"
    summary: ClassVar[str] = "interval-seq with a stateless helper"
    LIMIT = 3

    def holds_back(self, umem, rng):
        return _limit(self) and super().holds_back(umem, rng)


def _limit(proto):
    return proto.LIMIT > 0
"""

STATIC = (
    "GlobalDict",
    "GlobalCounter",
    "ClassCounter",
    "ClassCache",
    "Helper",
    "ModuleAttr",
    "TypeSelf",
    "ClassMethod",
)


@pytest.fixture
def protos(user_module: UserModule) -> str:
    state = user_module(STATE, "unseen_state")
    return user_module(PROTOCOLS.format(state=state.__name__), "unseen_protos").__name__


@pytest.mark.parametrize("name", STATIC)
def test_the_walk_names_what_the_code_reaches(protos: str, name: str) -> None:
    import importlib

    cls = getattr(importlib.import_module(protos), name)
    untracked = track(World.build(cls)).untracked
    assert untracked, name
    assert any(protos in u for u in untracked), untracked


@pytest.mark.parametrize("name", STATIC)
def test_dpor_finds_a_race_on_state_the_code_reaches(protos: str, name: str) -> None:
    found = explore("registration-race", f"{protos}:{name}", chooser="dpor", shrink=False)
    assert found.failure is not None, found.claim
    assert found.failure.violation.kind == "error"
    assert not found.claim.startswith("complete")


def test_a_class_attribute_written_through_a_computed_owner_is_no_verdict(
    protos: str,
) -> None:
    # the FIFO schedule's run before the search (odp_async.explore.start_check) is the
    # first run: the watch sees the class attribute it changed, and the search is
    # inconclusive (it raised `NondeterminismError` at a replayed prefix before)
    result = explore("registration-race", f"{protos}:Dynamic", chooser="dpor", shrink=False)
    assert not result.complete
    assert result.carried is not None
    assert "protocol class Dynamic changed between runs (Dynamic.total" in result.carried


def test_the_portfolio_never_claims_complete_past_it(protos: str) -> None:
    found = explore("registration-race", f"{protos}:Dynamic", schedules=300, shrink=False)
    assert not found.claim.startswith("complete")
    assert found.failure is not None  # random finds it


def test_a_protocol_with_only_tracked_state_keeps_its_reduction(protos: str) -> None:
    mine = explore("registration-race", f"{protos}:TrackedOnly", chooser="dpor", shrink=False)
    base = explore("registration-race", "interval-seq", chooser="dpor", shrink=False)
    assert base.claim == FULL["registration-race/interval-seq"]
    assert mine.claim == base.claim


def test_the_cli_does_not_claim_complete(protos: str, tmp_path: Path) -> None:
    # Helper clears its module's dict when made, not when a run ends: its runs share
    # that dict (search_watch), so no verdict (exit 5), and never complete either
    for name, code in (("Helper", 5), ("Dynamic", 5)):
        done = subprocess.run(
            cli_cmd("explore", "registration-race", "-p", f"{protos}:{name}", "--chooser", "dpor"),
            cwd=tmp_path,
            env=fresh_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == code, done.stdout + done.stderr
        assert "complete" not in done.stdout, done.stdout
        assert "Traceback" not in done.stderr
        if name == "Dynamic":
            assert "Dynamic.total" in done.stdout, done.stdout


SCENARIOS = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked

import {state}

STATE = {{"n": 0}}
n = 0


class Registry:
    total = 0
    cache = {{}}


@tracked
class Box:
    def __init__(self):
        self.n = 0


def _read():
    return STATE["n"]


def _write(v):
    STATE["n"] = v


async def _race(read, write):
    write(0)

    async def inc():
        seen = read()
        await checkpoint("between the read and the write")
        write(seen + 1)

    async with task_group() as tg:
        tg.start_soon(inc)
        tg.start_soon(inc)
    assert read() == 2, "a lost update"


async def global_dict():
    def write(v):
        STATE["n"] = v
    await _race(lambda: STATE["n"], write)


async def global_counter():
    def write(v):
        global n
        n = v
    await _race(lambda: n, write)


async def class_counter():
    def write(v):
        Registry.total = v
    await _race(lambda: Registry.total, write)


async def class_cache():
    r = Registry()
    def write(v):
        r.cache["n"] = v
    await _race(lambda: r.cache["n"], write)


async def helper():
    await _race(_read, _write)


async def module_attr():
    def write(v):
        {state}.state["n"] = v
    await _race(lambda: {state}.state["n"], write)


async def tracked_only():
    box = Box()
    def write(v):
        box.n = v
    await _race(lambda: box.n, write)


S = {{
    f.__name__: Scenario(f.__name__, "", f, (), needs_world=False, noted_only=True)
    for f in (global_dict, global_counter, class_counter, class_cache, helper, module_attr,
              tracked_only)
}}
"""


@pytest.fixture
def scenarios(user_module: UserModule) -> str:
    state = user_module(STATE, "unseen_state2")
    return user_module(SCENARIOS.format(state=state.__name__), "unseen_scen").__name__


@pytest.mark.parametrize(
    "name",
    ["global_dict", "global_counter", "class_counter", "class_cache", "helper", "module_attr"],
)
def test_a_noted_only_scenario_is_checked_too(scenarios: str, name: str) -> None:
    import importlib

    scenario = importlib.import_module(scenarios).S[name]
    found = explore(scenario, chooser="dpor", schedules=200)
    assert found.failure is not None, found.claim
    assert found.failure.violation.kind == "error"


def test_a_noted_only_scenario_on_tracked_state_keeps_its_reduction(scenarios: str) -> None:
    import importlib

    import attrs

    scenario = importlib.import_module(scenarios).S["tracked_only"]
    noted = explore(scenario, chooser="dpor", schedules=200, stop_on_first=False)
    unpromised = attrs.evolve(scenario, noted_only=False)
    unknown = explore(unpromised, chooser="dpor", schedules=200, stop_on_first=False)
    assert noted.failure is not None
    assert unknown.failure is not None
    assert noted.schedules < unknown.schedules  # the promise stands: reduced


REACH = """
import {state}
from odp_async.tracked import tracked


@tracked
class Box:
    def __init__(self):
        self.n = 0


BOX = Box()
LIMITS = (1, 2, 3)


def _counter():
    n = 0

    def bump():
        nonlocal n
        n += 1
        return n

    return bump


BUMP = _counter()


def imports_state():
    from {state} import state

    return state


def imports_module():
    import {state} as s

    return s.state


def bumps():
    return BUMP()


def reads_constants_and_tracked():
    BOX.n += LIMITS[0]
    return BOX.n
"""


@pytest.mark.parametrize(
    ("fn", "found"),
    [
        ("imports_state", "state (builtins.dict)"),
        ("imports_module", "state (builtins.dict)"),
        ("bumps", "rebinds 'n' of its closure"),
        ("reads_constants_and_tracked", None),
    ],
)
def test_the_walk_reads_what_a_function_reaches(
    user_module: UserModule, fn: str, found: str | None
) -> None:
    state = user_module(STATE, "unseen_state3")
    mod = user_module(REACH.format(state=state.__name__), "unseen_reach")
    untracked = track((), code=(getattr(mod, fn),)).untracked
    if found is None:
        assert untracked == ()
    else:
        assert any(found in u for u in untracked), untracked


QUIET = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked


@tracked
class Box:
    calls = 0

    def __init__(self):
        self.a = 0
        self.b = 0

    def count(self):
        owner = type(self)  # a computed owner: only the watch sees the write
        owner.calls += 1


async def body():
    box = Box()

    async def a():
        box.count()
        await checkpoint("a")
        box.a = 1

    async def b():
        await checkpoint("b")
        box.b = 1

    async with task_group() as tg:
        tg.start_soon(a)
        tg.start_soon(b)


S = Scenario("quiet", "", body, (), needs_world=False, noted_only=True)
"""


def test_no_claim_of_completeness_past_an_unseen_write(user_module: UserModule) -> None:
    """No race to find here, but a class attribute written past the hooks: neither dpor
    nor the portfolio's dpor share may claim that every trace was explored."""
    mod = user_module(QUIET, "unseen_quiet")
    with pytest.raises(NondeterminismError, match=r"Box\.calls changed during a run"):
        explore(mod.S, chooser="dpor", schedules=100)
    found = explore(mod.S, schedules=300)
    assert found.failure is None
    assert not found.complete, found.claim
