"""A dfs or dpor search installs `tracked`'s hooks once for all its runs, not once per run
(a per-run install doubled the CPU time per schedule of a small program), and takes them
off when it ends: the classes are as written after the exploration."""

from __future__ import annotations

from typing import Any

import pytest

import odp_async.tracked as tracked_module
from odp_async.explore.runner import explore
from odp_async.tracked import tracked


@tracked
class _Box:
    def __init__(self) -> None:
        self.n = 0


@pytest.mark.parametrize("chooser", ["dpor", "dfs"])
def test_a_search_installs_the_hooks_once(chooser: str, monkeypatch: Any) -> None:
    installs: list[type] = []
    real = tracked_module._install

    def counting(klass: type, info: Any) -> None:
        installs.append(klass)
        real(klass, info)

    monkeypatch.setattr(tracked_module, "_install", counting)
    result = explore("classic:lost-update", chooser=chooser, schedules=50, shrink=False)
    assert result.schedules > 1
    assert installs.count(_Box) == 1
    assert "__getattribute__" not in _Box.__dict__


_PROGRAM = """
import attrs

from odp_async import checkpoint, task_group
from odp_async._runtime import RUNTIME_VAR
from odp_async.scenarios import Scenario
from odp_async.tracked import tracked

#: One (hooks on the class, the run keeps footprints) pair per run.
SEEN = []


@tracked
@attrs.define
class Account:
    balance: int = 0


async def deposits():
    account = Account()
    SEEN.append(("__getattribute__" in Account.__dict__, RUNTIME_VAR.get()._fp is not None))

    async def deposit(n):
        seen = account.balance
        await checkpoint("between")
        account.balance = seen + n

    async with task_group() as tg:
        for n in (1, 2, 3, 4):
            tg.start_soon(deposit, n)


SCENARIO = Scenario("deposits", "", deposits, (), needs_world=False, noted_only=True)
"""


@pytest.fixture
def user_program(tmp_path: Any, monkeypatch: Any) -> Any:
    import importlib

    (tmp_path / "s13_portfolio_prog.py").write_text(_PROGRAM)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("s13_portfolio_prog")
    yield module
    import sys

    sys.modules.pop("s13_portfolio_prog", None)


def test_the_portfolio_installs_the_hooks_once_per_batch(
    user_program: Any, monkeypatch: Any
) -> None:
    """The dpor slots of the default portfolio run ahead in batches, one install each (a
    batch doubles up to `AHEAD_MAX`): 100 dpor executions take 8 installs, not 100."""
    from odp_async.explore.portfolio import AHEAD_MAX

    installs: list[type] = []
    real = tracked_module._install

    def counting(klass: type, info: Any) -> None:
        installs.append(klass)
        real(klass, info)

    monkeypatch.setattr(tracked_module, "_install", counting)
    result = explore(user_program.SCENARIO, schedules=450, stop_on_first=False, shrink=False)
    assert result.schedules == 450
    assert result.failure is None
    dpor_runs = sum(1 for _, keeps in user_program.SEEN if keeps)
    assert dpor_runs == 100  # 2 of every 9 slots, the search far from over
    assert AHEAD_MAX == 32
    # batches of 1, 2, 4, 8, 16, 32, 32 and the last 5
    assert installs.count(user_program.Account) == 8
    assert "__getattribute__" not in user_program.Account.__dict__


@pytest.mark.parametrize("schedules", [9, 100, 450])
def test_only_the_portfolio_s_tracking_runs_see_the_hooks(
    user_program: Any, schedules: int
) -> None:
    """Runs of the other members (random, pct, sweep), interleaved with the dpor batches,
    see the class as written: the hooks are on exactly in the runs that keep footprints."""
    explore(user_program.SCENARIO, schedules=schedules, stop_on_first=False, shrink=False)
    seen = user_program.SEEN
    assert any(keeps for _, keeps in seen)
    assert any(not keeps for _, keeps in seen)
    assert all(hooked == keeps for hooked, keeps in seen)


def test_a_dfs_that_keeps_no_footprints_shows_no_hook(user_program: Any) -> None:
    """dfs without reduction or symmetry runs no tracking run: no session, no hook seen."""
    explore(
        user_program.SCENARIO,
        chooser="dfs",
        reduction=False,
        symmetry=False,
        schedules=30,
        stop_on_first=False,
        shrink=False,
    )
    seen = user_program.SEEN
    assert len(seen) == 31  # and the FIFO schedule's run before the search (start_check)
    assert not any(keeps for _, keeps in seen)
    assert not any(hooked for hooked, _ in seen)
