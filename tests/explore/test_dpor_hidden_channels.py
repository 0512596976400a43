"""State a noted-only program reaches past its globals, closures and class attributes
never lets DPOR (or the default portfolio) claim ``complete`` past a lost update on it:
function default arguments (``__defaults__``, ``__kwdefaults__``: a helper's, the main
function's own, a method's of a `@tracked` class), the fields of a subclass of a primitive
(``class CountingLock(Mutex)`` with ``self.uses``), the standard library's side channels
(``os.environ``, files, the `random` module's generator, the clocks) and a closure cell
written through ``fn.__closure__[i].cell_contents`` (`odp_async._tracked_code`).

Every program here lives in a user module in tmp_path.  Before the fix, each scenario below
made ``explore(scenario, chooser="dpor")`` claim ``complete: 1 trace, no violation`` (2 for
the Mutex subclass), while random found the lost update within 20 schedules; the narrow
ones made the default portfolio claim ``complete`` too.
"""

from __future__ import annotations

import importlib
import random
import subprocess
from pathlib import Path

import pytest

from odp_async.explore import explore
from odp_async.tracked import track
from tests.conftest import UserModule
from tests.test_cli_user import cli_cmd, fresh_env

PROGRAMS = """
import dataclasses
import os
import random
import time

import attrs

from odp_async import Completion, Mutex, checkpoint, task_group
from odp_async.explore import SharedCell
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked

PATH = {path!r}


async def _race(read, write, work=0):
    write(0)

    async def inc():
        for _ in range(work):
            await checkpoint("work")
        seen = read()
        await checkpoint("between the read and the write")
        write(seen + 1)

    try:
        async with task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        assert read() == 2, "a lost update"
    finally:
        write(0)  # as the run found it: no state left to the next run


def _store(d={{"n": 0}}):
    return d


def _kw(*, d={{"n": 0}}):
    return d


async def default_arg():
    def write(v):
        _store()["n"] = v
    await _race(lambda: _store()["n"], write)


async def narrow_default_arg():
    def write(v):
        _store()["n"] = v
    await _race(lambda: _store()["n"], write, work=30)


async def kwdefault():
    def write(v):
        _kw()["n"] = v
    await _race(lambda: _kw()["n"], write)


@dataclasses.dataclass
class Acc:
    n: int = 0


async def main_default(acc=Acc()):
    def write(v):
        acc.n = v
    await _race(lambda: acc.n, write)


@tracked
@attrs.define
class Account:
    balance: int = 0

    def side(self, d={{}}):
        return d


async def method_default():
    account = Account()
    def write(v):
        account.side()["n"] = v
    await _race(lambda: account.side()["n"], write)


class CountingLock(Mutex):
    def __init__(self, name):
        super().__init__(name)
        self.uses = 0


class NamedLock(Mutex):
    __slots__ = ()


async def mutex_subclass():
    lock = CountingLock("counting")
    def write(v):
        lock.uses = v
    await _race(lambda: lock.uses, write)


class MyCell(SharedCell):
    pass


async def cell_subclass():
    cell = MyCell(0, "c")
    def write(v):
        cell.extra = v
    await _race(lambda: cell.extra, write)


class MyCompletion(Completion):
    __slots__ = ("extra",)


async def completion_subclass():
    done = MyCompletion("c")
    def write(v):
        done.extra = v
    await _race(lambda: done.extra, write)


async def environ():
    def write(v):
        os.environ["ODP_ASYNC_TEST_HIDDEN"] = str(v)
    await _race(lambda: int(os.environ["ODP_ASYNC_TEST_HIDDEN"]), write)


async def getenv():
    def write(v):
        os.putenv("ODP_ASYNC_TEST_HIDDEN", str(v))
        os.environ["ODP_ASYNC_TEST_HIDDEN"] = str(v)
    await _race(lambda: int(os.getenv("ODP_ASYNC_TEST_HIDDEN")), write)


def _read_file():
    with open(PATH) as f:
        return int(f.read())


def _write_file(v):
    with open(PATH, "w") as f:
        f.write(str(v))


async def diskfile():
    await _race(_read_file, _write_file)


async def rng():
    random.seed(1)
    first = random.random()
    random.seed(1)
    got = {{}}

    async def draw(name):
        await checkpoint(name)
        got[name] = random.random()

    async with task_group() as tg:
        tg.start_soon(draw, "a")
        tg.start_soon(draw, "b")
    assert got["a"] == first, "b drew first"


async def clock():
    got = {{}}

    async def stamp(name):
        await checkpoint(name)
        got[name] = time.monotonic_ns()

    async with task_group() as tg:
        tg.start_soon(stamp, "a")
        tg.start_soon(stamp, "b")
    assert got["a"] < got["b"], "b ran first"


def _make():
    n = 0

    def get():
        return n

    return get


_getter = _make()


async def cellwrite():
    def write(v):
        _getter.__closure__[0].cell_contents = v
    await _race(_getter, write)


async def local_nonlocal():
    n = 0

    async def inc():
        nonlocal n
        seen = n
        await checkpoint("between the read and the write")
        n = seen + 1

    async with task_group() as tg:
        tg.start_soon(inc)
        tg.start_soon(inc)
    assert n == 2, "a lost update"


class Plain:
    def __init__(self):
        self.n = 0


async def local_object():
    box = Plain()
    def write(v):
        box.n = v
    await _race(lambda: box.n, write)


def _counter():
    n = 0
    while True:
        n += 1
        yield n


async def local_generator():
    g = _counter()
    got = {{}}

    async def take(name):
        await checkpoint(name)
        got[name] = next(g)

    async with task_group() as tg:
        tg.start_soon(take, "a")
        tg.start_soon(take, "b")
    assert got["a"] == 1, "b went first"


S = {{
    f.__name__: Scenario(f.__name__, "", f, (), needs_world=False, noted_only=True)
    for f in (default_arg, narrow_default_arg, kwdefault, main_default, method_default,
              mutex_subclass, cell_subclass, completion_subclass, environ, getenv,
              diskfile, rng, clock, cellwrite, local_nonlocal, local_object,
              local_generator)
}}
scenario = S["narrow_default_arg"]


def immutable_defaults(n=0, limits=(1, 2), name="x", *, flag=None, lock=Mutex("m")):
    return n


async def named_lock():
    lock = NamedLock("named")
    async with lock:
        pass


@tracked
@attrs.define
class Ledger:
    balance: int = 0


async def noted_locals():
    account = Ledger()
    cell = SharedCell(0, "c")
    lock = NamedLock("n")
    k = 3

    async def use():
        async with lock:
            account.balance = cell.get() + k

    await use()
"""

RACES = [
    "default_arg",
    "kwdefault",
    "main_default",
    "method_default",
    "mutex_subclass",
    "cell_subclass",
    "completion_subclass",
    "environ",
    "getenv",
    "diskfile",
    "rng",
    "clock",
    "cellwrite",
    "local_nonlocal",
    "local_object",
    "local_generator",
]


@pytest.fixture
def programs(user_module: UserModule, tmp_path: Path) -> str:
    path = tmp_path / "counter.txt"
    return user_module(PROGRAMS.format(path=str(path)), "hidden_channels").__name__


@pytest.mark.parametrize("name", RACES)
def test_dpor_finds_the_lost_update(
    programs: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = importlib.import_module(programs).S[name]
    monkeypatch.setenv("ODP_ASYNC_TEST_HIDDEN", "0")  # restored after the test
    state = random.getstate()
    try:
        found = explore(scenario, chooser="dpor", schedules=200, shrink=False)
    finally:
        random.setstate(state)
    assert found.failure is not None, found.claim
    assert found.failure.violation.kind == "error"


def test_the_portfolio_does_not_stop_at_a_reduced_complete(programs: str) -> None:
    # 30 checkpoints of work before the race: random needs ~20 schedules, and DPOR's
    # share, reduced over empty footprints, claimed `complete: 1 trace` before it.
    found = explore(importlib.import_module(programs).S["narrow_default_arg"], schedules=2000)
    assert found.failure is not None, found.claim


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("default_arg", "_store: a default argument (builtins.dict)"),
        ("kwdefault", "_kw: a default argument (builtins.dict)"),
        ("main_default", "main_default: a default argument"),
        ("method_default", "Account.side: a default argument (builtins.dict)"),
        ("mutex_subclass", "CountingLock (a subclass of odp_async.sync.Mutex"),
        ("cell_subclass", "MyCell (a subclass of odp_async.shared.SharedCell"),
        ("completion_subclass", "MyCompletion (a subclass of odp_async.sync.Completion"),
        ("environ", "uses os.environ"),
        ("getenv", "uses os.getenv"),
        ("diskfile", "uses builtins.open"),
        ("rng", "uses random.random"),
        ("clock", "uses time.monotonic_ns"),
        ("cellwrite", "reaches a closure cell through `__closure__`"),
        ("local_nonlocal", "shares its local 'n' (rebound by a function it defines)"),
        ("local_object", "shares its local 'box' (a hidden_channels_"),
        ("local_generator", "shares its local 'g' (a generator of hidden_channels_"),
    ],
)
def test_the_walk_names_what_it_cannot_see(programs: str, name: str, reason: str) -> None:
    untracked = track((), code=(getattr(importlib.import_module(programs), name),)).untracked
    assert any(reason in u for u in untracked), untracked


def test_immutable_defaults_noted_locals_and_a_subclass_for_a_name_keep_the_promise(
    programs: str,
) -> None:
    mod = importlib.import_module(programs)
    assert track((), code=(mod.immutable_defaults,)).untracked == ()
    assert track((), code=(mod.named_lock,)).untracked == ()
    assert track((), code=(mod.noted_locals,)).untracked == ()


def test_the_cli_does_not_claim_complete(programs: str, tmp_path: Path) -> None:
    done = subprocess.run(
        cli_cmd("explore", f"{programs}:scenario", "--schedules", "2000", "--no-shrink"),
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "complete" not in done.stdout, done.stdout
    assert "a lost update" in done.stdout, done.stdout


def test_an_instance_of_a_primitive_subclass_with_fields_is_not_a_primitive(
    programs: str,
) -> None:
    # The objects alone (no code walk): a plain Mutex and a subclass for a name note
    # themselves; a subclass's instance with a __dict__ or slots of its own does not.
    from odp_async import Mutex

    mod = importlib.import_module(programs)
    assert track(Mutex("m"), deep=False).untracked == ()
    assert track(mod.NamedLock("n"), deep=False).untracked == ()
    assert track(mod.CountingLock("c"), deep=False).untracked == (f"{programs}.CountingLock",)
    assert track(mod.MyCompletion("c"), deep=False).untracked == (f"{programs}.MyCompletion",)
