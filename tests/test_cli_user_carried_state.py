"""A user program whose runs share state (trial 22b f8): a lazily initialised module
global, set by the first run and read by every later one, gave ``complete: 6 traces``
under dpor and verdicts that depended on ``--jobs``.  `explore`, `check` and the CLI now
watch the program's state between a search's runs (`odp_async.explore.search_watch`)
and answer ``inconclusive`` (exit 5, JSON ``carried``) under every chooser and every
``--jobs``: never ``complete``, never a pass.  The user's module is written outside the
package and imported by its name, in this process and in a fresh one for the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.errors import ExplorationInconclusive
from odp_async.explore import check, explore
from odp_async.explore.target import Target
from odp_async.scenarios import Verdict
from tests._usermod import pythonpath_env, write_user_module
from tests.conftest import UserModule

SOURCE = """
from odp_async import checkpoint, task_group

_cache = None


async def main():
    global _cache
    if _cache is None:
        await checkpoint("before the cache is made")
        _cache = {"hits": 0}

    async def use():
        await checkpoint("use")
        _cache["hits"] += 0

    async with task_group() as tg:
        tg.start_soon(use, name="a")
        tg.start_soon(use, name="b")


_reset = None


async def resets_when_done():
    global _reset
    try:
        if _reset is None:
            await checkpoint("before the cache is made")
            _reset = {"hits": 0}
        await checkpoint("use")
    finally:
        _reset = None


async def counts(seen=[]):
    seen.append(1)
    await checkpoint("a step")


_calls = {"n": 0}


async def fails_from_the_second_run():
    _calls["n"] += 1
    await checkpoint("a step")
    assert _calls["n"] == 1, "only a fresh run passes"
"""

CHOOSERS = ("random", "pct", "dfs", "dpor", "portfolio")
#: At least `runner.SERIAL_BELOW`: ``jobs=2`` runs worker processes.
BUDGET = 600


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(SOURCE, "user_carried")


def _inconclusive(result: object, name: str = "_cache") -> None:
    assert result.verdict is Verdict.INCONCLUSIVE, result.claim  # type: ignore[attr-defined]
    assert result.inconclusive  # type: ignore[attr-defined]
    assert not result.complete  # type: ignore[attr-defined]
    assert result.traces is None  # type: ignore[attr-defined]
    carried = result.carried  # type: ignore[attr-defined]
    assert carried is not None
    assert name in carried, carried
    assert result.claim.startswith("inconclusive: the program's runs shared state")  # type: ignore[attr-defined]
    assert "complete" not in result.claim  # type: ignore[attr-defined]


@pytest.mark.parametrize("chooser", CHOOSERS)
@pytest.mark.parametrize("jobs", [1, 2])
def test_explore_says_the_runs_shared_state(user: ModuleType, chooser: str, jobs: int) -> None:
    if chooser == "dfs" and jobs == 2:
        pytest.skip("dfs runs in this process")
    result = explore(f"{user.__name__}:main", chooser=chooser, schedules=BUDGET, jobs=jobs)
    _inconclusive(result)


def test_check_says_it_and_raises_with_raise_on_failure(user: ModuleType) -> None:
    _inconclusive(check(user.main, chooser="dpor"))
    # a search's baseline is the state when it starts: the cache the first search made
    # would be this one's start (a limit of the watch), so the module starts afresh
    user._cache = None
    with pytest.raises(ExplorationInconclusive, match="runs shared state"):
        check(user.main, chooser="dpor", raise_on_failure=True)


def test_a_mutated_default_is_state_carried(user: ModuleType) -> None:
    _inconclusive(check(user.counts, chooser="dpor"), "counts.<defaults>[0]")


def test_a_failure_made_by_carried_state_is_no_verdict(user: ModuleType) -> None:
    result = check(user.fails_from_the_second_run, chooser="random", schedules=20)
    assert result.failure is not None  # kept, to be seen
    _inconclusive(result, "_calls")
    assert "which may come of that state" in result.claim
    user._calls["n"] = 0
    with pytest.raises(ExplorationInconclusive):
        check(user.fails_from_the_second_run, chooser="random", raise_on_failure=True)


def test_a_program_that_resets_its_state_keeps_its_verdict(user: ModuleType) -> None:
    result = explore(f"{user.__name__}:resets_when_done", chooser="dpor")
    assert result.carried is None
    assert result.complete, result.claim
    assert result.claim.startswith("complete: ")


def test_a_builtin_scenario_is_not_watched() -> None:
    target = Target.resolve("registration-race", "kvm-seq")
    from odp_async.explore.config import ExploreConfig
    from odp_async.explore.runner import explore_target

    result = explore_target(target, ExploreConfig(chooser="dpor", schedules=50))
    assert target._watch_holder.made
    assert target._watch_holder.watch is None
    assert result.carried is None


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )


@pytest.mark.parametrize("chooser", CHOOSERS)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_cli_exits_5_and_says_what_was_carried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chooser: str, jobs: str
) -> None:
    if chooser == "dfs" and jobs == "2":
        pytest.skip("dfs runs in this process")
    name = write_user_module(tmp_path, SOURCE, "user_carried_cli", monkeypatch)
    done = _cli(
        tmp_path,
        f"{name}:main",
        "--chooser",
        chooser,
        "--jobs",
        jobs,
        "--schedules",
        str(BUDGET),
        "--json",
    )
    assert done.returncode == 5, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"] == "inconclusive"
    assert data["complete"] is False
    assert "module global '_cache'" in data["carried"]
    assert "Traceback" not in done.stderr


def test_the_cli_says_it_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_user_module(tmp_path, SOURCE, "user_carried_words", monkeypatch)
    done = _cli(tmp_path, f"{name}:main", "--chooser", "dpor")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "main: inconclusive" in done.stdout
    assert "runs shared state: module global '_cache' changed between runs" in done.stdout
