"""Every chooser names itself as the finder of a failure (`found_by`).

random, pct and the portfolio named the chooser (or member) that found a failure, but a
failure found by ``dfs`` or ``dpor`` had ``found_by`` None, in the result and in the CLI's
``--json`` (trial 16, f09).  Now dfs says ``dfs`` and dpor ``dpor``, serial or split into
subtrees (its head, and a subtree after it).  Tried on a user's own module (tmp_path,
imported by name) and the CLI in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import InlineExecutor, check, dpor_parallel
from odp_async.explore.config import CHOOSERS
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER = """
import odp_async as oa


async def lost_update() -> None:
    box = {"n": 0}

    async def bump() -> None:
        seen = box["n"]
        await oa.checkpoint("between")
        box["n"] = seen + 1

    async with oa.task_group() as tg:
        tg.start_soon(bump, name="a")
        tg.start_soon(bump, name="b")
    assert box["n"] == 2, f"lost update: {box['n']}"
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "found_by_user")


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_the_finder_is_named(user: ModuleType, chooser: str) -> None:
    result = check(user.lost_update, chooser=chooser, schedules=200)
    assert result.failure is not None
    assert result.found_by is not None
    assert result.failure.found_by == result.found_by
    if chooser != "portfolio":  # the portfolio names its member (random, pct-d3, dpor...)
        assert result.found_by == chooser


@pytest.mark.parametrize("head", [dpor_parallel.HEAD_TRACES, 0])
def test_split_dpor_names_itself(
    user: ModuleType, head: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Split into subtrees: found in the head (the serial search's first traces) or, with
    no head, in a subtree."""
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", head)
    result = check(user.lost_update, chooser="dpor", executor=InlineExecutor(), shrink=False)
    assert result.failure is not None
    assert result.found_by == "dpor"
    assert result.failure.found_by == "dpor"


@pytest.mark.parametrize(("chooser", "jobs"), [("dfs", 1), ("dpor", 1), ("dpor", 2)])
def test_the_cli_json_names_the_finder(
    user: ModuleType, tmp_path: Path, chooser: str, jobs: int
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odp_async.cli",
            "explore",
            f"{user.__name__}:lost_update",
            "--chooser",
            chooser,
            "--jobs",
            str(jobs),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["found_by"] == chooser
