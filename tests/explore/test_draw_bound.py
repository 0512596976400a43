"""`draw(n)` is bounded by `odp_async.MAX_DRAW` on every runtime (new-user trial 18a,
finding 5): ``draw(10**12)`` made DPOR allocate a tuple of 10**12 entries (a
`MemoryError` traceback, exit 3).  Now every chooser, ``--jobs 2`` and the live runtimes
refuse it with an `InvalidArgument` naming the value; in the sim it is the explorer's
limit, not the program's bug, so it leaves the run whatever the program catches, and the
CLI exits 2 with one line.  User code in tmp_path; the CLI in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import odp_async
from odp_async import MAX_DRAW
from odp_async._runtime import run_live
from odp_async.errors import InvalidArgument
from odp_async.explore import check
from odp_async.sim import run
from tests._usermod import pythonpath_env, write_user_module
from tests.conftest import UserModule

USER_MODULE = """
import odp_async as oa
from odp_async.errors import InvalidArgument

SEEN = []


async def draw_big():
    oa.draw(10**12)


async def draw_one_past():
    await oa.checkpoint("before")
    oa.draw(oa.MAX_DRAW + 1, "too many")


async def draw_big_caught():
    try:
        oa.draw(10**12)
    except InvalidArgument:
        pass  # the program cannot hide the explorer's limit


async def draw_the_most():
    SEEN.append(oa.draw(oa.MAX_DRAW, "the most"))
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_drawbound")


def test_the_bound_is_public() -> None:
    assert odp_async.MAX_DRAW == MAX_DRAW == 65536


@pytest.mark.parametrize("chooser", ["portfolio", "random", "pct", "dfs", "dpor"])
@pytest.mark.parametrize("name", ["draw_big", "draw_one_past", "draw_big_caught"])
def test_every_chooser_refuses_a_draw_past_the_bound(
    user: ModuleType, chooser: str, name: str
) -> None:
    with pytest.raises(InvalidArgument, match=r"draw\(\) of \d+ options: at most"):
        check(getattr(user, name), chooser=chooser, schedules=5, seed=0)


def test_two_jobs_refuse_it_too(user: ModuleType) -> None:
    with pytest.raises(InvalidArgument, match="1000000000000"):
        check(user.draw_big, chooser="dpor", schedules=5, seed=0, jobs=2)


def test_a_draw_at_the_bound_runs(user: ModuleType) -> None:
    user.SEEN.clear()
    result = run(user.draw_the_most, seed=3)
    assert result.outcome == "ok"
    assert len(user.SEEN) == 1
    assert 0 <= user.SEEN[0] < MAX_DRAW


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_live_runtimes_refuse_it(user: ModuleType, backend: str) -> None:
    with pytest.raises(InvalidArgument, match="1000000000000"):
        run_live(user.draw_big, backend=backend)
    user.SEEN.clear()
    run_live(user.draw_the_most, backend=backend)
    assert 0 <= user.SEEN[0] < MAX_DRAW


def test_the_cli_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_user_module(tmp_path, USER_MODULE, "user_drawbound_cli", monkeypatch)
    for chooser in ("portfolio", "dpor", "dfs"):
        options = ["--chooser", chooser, "--schedules", "5"]
        proc = subprocess.run(
            [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:draw_big", *options],
            capture_output=True,
            text=True,
            env=pythonpath_env(tmp_path),
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(errors) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "draw() of 1000000000000 options" in errors[0]
