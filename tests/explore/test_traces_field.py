"""`ExploreResult.traces` (and ``"traces"`` of ``--json``) is the N of a complete
search's claim ``complete: N traces, no violation`` for dpor as for the portfolio
(new-user trial 18a, finding 5: dpor's JSON had ``"traces": null`` beside that claim).
dfs, random and pct count schedules, not traces: None.  User code in tmp_path; the CLI
in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.explore import check
from tests._usermod import pythonpath_env, write_user_module
from tests.conftest import UserModule

USER_MODULE = """
import odp_async as oa


async def two_lockers():
    m = oa.Mutex("m")

    async def locker():
        async with m:
            await oa.checkpoint("inside")

    async with oa.task_group() as tg:
        tg.start_soon(locker)
        tg.start_soon(locker)
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_complete_dpor_search_counts_its_traces(user_module: UserModule, jobs: int) -> None:
    user = user_module(USER_MODULE, "user_traces")
    result = check(user.two_lockers, chooser="dpor", schedules=1000, jobs=jobs)
    assert result.complete
    assert result.traces == result.schedules
    assert result.claim == f"complete: {result.traces} traces, no violation"
    portfolio = check(user.two_lockers, schedules=1000)
    assert portfolio.traces == result.traces


def test_searches_that_are_not_complete_or_count_schedules_have_none(
    user_module: UserModule,
) -> None:
    user = user_module(USER_MODULE, "user_traces_none")
    assert check(user.two_lockers, chooser="dpor", schedules=2).traces is None
    dfs = check(user.two_lockers, chooser="dfs", schedules=1000)
    assert dfs.complete
    assert dfs.traces is None
    assert check(user.two_lockers, chooser="random", schedules=5).traces is None


def test_the_json_of_dpor_carries_the_claimed_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, USER_MODULE, "user_traces_cli", monkeypatch)
    for chooser in ("dpor", "portfolio"):
        options = ["--chooser", chooser, "--json"]
        proc = subprocess.run(
            [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:two_lockers", *options],
            capture_output=True,
            text=True,
            env=pythonpath_env(tmp_path),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert isinstance(data["traces"], int)
        assert data["claim"] == f"complete: {data['traces']} traces, no violation"
