"""A failure found before a stalled step stays the result for every ``--jobs`` and
chooser, and the text says the stall stopped the search early (trial21a f9).

``--all-failures`` keeps the search going after a failure; a later schedule whose step
never returns then stops it.  With ``--jobs 2`` the worker that ran both raised the
stall and dropped what it had found: dpor and the portfolio said "inconclusive after 0
schedules", the failure lost, while ``--jobs 1`` reported it.  Now the schedules before
the stalled one count, wherever they ran, and the counts are those of ``--jobs 1``; the
text output names the stall (only ``--json`` did).  User module in tmp_path, each CLI
and API use in a fresh process; a tiny stall limit (0.5 s), no assertion on durations.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests._usermod import module_name, pythonpath_env

USER = """
import time

import odp_async as oa


async def fails_then_stalls():
    # dpor runs draw 0, 3 (fails), 2 (stalls), 1
    n = oa.draw(4)
    await oa.checkpoint()
    if n == 2:
        time.sleep(10_000)
    assert n != 3, "bad draw"


async def random_fails_then_stalls():
    # random, seed 0: schedule 13 draws 10 (fails), schedule 38 draws 2 (stalls)
    n = oa.draw(16)
    await oa.checkpoint()
    if n == 2:
        time.sleep(10_000)
    assert n != 10, "bad draw"
"""


@pytest.fixture
def user(tmp_path: Path) -> str:
    name = module_name("userstallfail", tmp_path)
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER))
    return name


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
    )


def _explore(tmp_path: Path, ref: str, chooser: str, jobs: str, *extra: str) -> dict[str, object]:
    proc = _run(
        tmp_path,
        *("-m", "odp_async.cli", "explore", ref, "--chooser", chooser, "--jobs", jobs),
        *("--stall", "0.5", "--all-failures", "--no-shrink", "--json", *extra),
    )
    data = json.loads(proc.stdout)
    data["exit"] = proc.returncode
    return data


def _shape(data: dict[str, object]) -> tuple[object, ...]:
    failure = data["failure"]
    index = failure["schedule_index"] if isinstance(failure, dict) else None
    return data["exit"], data["verdict"], data["schedules"], data["failing"], index


@pytest.mark.parametrize(
    ("fn", "chooser", "found"),
    [
        ("fails_then_stalls", "dpor", (1, "found", 2, [2], 2)),
        ("random_fails_then_stalls", "random", (1, "found", 37, [13], 13)),
    ],
)
def test_the_failure_before_the_stall_stays_for_every_jobs(
    user: str, tmp_path: Path, fn: str, chooser: str, found: tuple[object, ...]
) -> None:
    ref = f"{user}:{fn}"
    one = _explore(tmp_path, ref, chooser, "1")
    two = _explore(tmp_path, ref, chooser, "2")
    assert _shape(one) == found, one
    assert _shape(two) == found, two
    assert one["stalled"]
    assert two["stalled"]


def test_the_portfolio_gives_the_same_result_for_every_jobs(user: str, tmp_path: Path) -> None:
    for fn in ("fails_then_stalls", "random_fails_then_stalls"):
        one = _explore(tmp_path, f"{user}:{fn}", "portfolio", "1")
        two = _explore(tmp_path, f"{user}:{fn}", "portfolio", "2")
        assert one["stalled"]
        assert two["stalled"]
        assert _shape(one) == _shape(two), (one, two)


def test_the_text_says_the_search_stopped_early(user: str, tmp_path: Path) -> None:
    for jobs in ("1", "2"):
        proc = _run(
            tmp_path,
            *("-m", "odp_async.cli", "explore", f"{user}:random_fails_then_stalls"),
            *("--chooser", "random", "--jobs", jobs, "--stall", "0.5", "--all-failures"),
            "--no-shrink",
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("main: found - 37 schedules") or lines[0].startswith(
            "random_fails_then_stalls: found - 37 schedules"
        ), lines
        early = [line for line in lines if line.startswith("the search stopped early")]
        assert len(early) == 1, lines
        assert early[0].startswith(
            "the search stopped early, after 37 schedules: schedule 38 stalled: step 2 of task "
        ), early
        assert "has not returned after 0.5 s" in early[0]


API = """
import sys
from odp_async.explore import check

mod = sys.argv[1]
for jobs in (1, 2):
    r = check(f"{mod}:fails_then_stalls", chooser="dpor", jobs=jobs, stall=0.5,
              stop_on_first=False, shrink=False, schedules=100)
    print(jobs, r.verdict, r.schedules, r.failure is not None, r.stalled is not None)
"""


def test_check_keeps_the_failure_for_every_jobs(user: str, tmp_path: Path) -> None:
    (tmp_path / "api.py").write_text(API)
    proc = _run(tmp_path, "api.py", user)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1 found 2 True True", "2 found 2 True True"]
