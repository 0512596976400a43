"""An `IntervalTree` a user's program keeps as shared state (trial_d f1): a module global
tree every run empties again (each insert removed, or ``clear()`` in a ``finally``, as
the README advises) was reported inconclusive by every chooser ("TREE._mutation was
'nothing' before the first run, 'remove()' after run 1"): the carried-state watch
compared the tree's fail-fast bookkeeping, which no program can reset.  It now compares
the tree's intervals and values, so such a program gets its verdict, while a tree left
changed (an interval not removed) and an iterator of it kept across runs are still
named, never a pass.  The user's module is written outside the package and explored by
the CLI in a fresh process; a pytest fixture tree goes through the plugin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._usermod import pythonpath_env, write_user_module

pytest_plugins = ["pytester"]

SOURCE = """
import odp_async as oa
from odp_async import IntervalTree

TREE = IntervalTree()
CLEARED = IntervalTree()
LEFT = IntervalTree()
ITERATED = IntervalTree()
KEPT = ITERATED.overlapping(0, 100)


async def inserts_and_removes():
    async def use(i):
        h = TREE.insert(i, i + 3, f"t{i}")
        await oa.checkpoint()
        assert [x.value for x in TREE.overlapping(i, i)][-1] == f"t{i}"
        TREE.remove(h)

    async with oa.task_group() as tg:
        for i in range(3):
            tg.start_soon(use, i)
    assert len(TREE) == 0


async def clears_in_finally():
    try:
        async def use(i):
            CLEARED.insert(i, i + 3, f"t{i}")
            await oa.checkpoint()

        async with oa.task_group() as tg:
            for i in range(2):
                tg.start_soon(use, i)
        assert len(CLEARED) == 2
    finally:
        CLEARED.clear()


async def leaves_one_in():
    async def use(i):
        h = LEFT.insert(i, i + 3, f"t{i}")
        await oa.checkpoint()
        if i:
            LEFT.remove(h)

    async with oa.task_group() as tg:
        for i in range(2):
            tg.start_soon(use, i)


async def keeps_an_iterator():
    async def use(i):
        h = ITERATED.insert(i, i + 3, f"t{i}")
        await oa.checkpoint()
        ITERATED.remove(h)

    async with oa.task_group() as tg:
        for i in range(2):
            tg.start_soon(use, i)
    assert KEPT is not None
"""


def _explore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, object]:
    name = write_user_module(tmp_path, SOURCE, "user_tree_state", monkeypatch)
    function, *rest = args
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:{function}", *rest, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )
    assert "Traceback" not in done.stderr, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    data["exit"] = done.returncode
    return data


@pytest.mark.parametrize("chooser", ["dpor", "random"])
@pytest.mark.parametrize("function", ["inserts_and_removes", "clears_in_finally"])
def test_a_tree_emptied_by_every_run_gets_its_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chooser: str, function: str
) -> None:
    data = _explore(tmp_path, monkeypatch, function, "--chooser", chooser, "--schedules", "200")
    assert data["carried"] is None, data["carried"]
    assert (data["exit"], data["verdict"]) == (0, "clean"), data
    if chooser == "dpor":
        assert data["complete"] is True


@pytest.mark.parametrize("chooser", ["dpor", "random"])
@pytest.mark.parametrize(
    ("function", "carried"),
    [
        (
            "leaves_one_in",
            "module global 'LEFT' changed between runs (LEFT.<intervals> was a list of 0 "
            "items before the first run, a list of 1 items after run 1)",
        ),
        (
            "keeps_an_iterator",
            "module global 'KEPT' changed between runs (KEPT.<state>['valid'] was True "
            "before the first run, False after run 1)",
        ),
    ],
)
def test_a_tree_left_changed_or_a_kept_iterator_is_still_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chooser: str, function: str, carried: str
) -> None:
    data = _explore(tmp_path, monkeypatch, function, "--chooser", chooser, "--schedules", "200")
    assert (data["exit"], data["verdict"]) == (5, "inconclusive"), data
    assert data["carried"] == carried
    assert data["complete"] is False


FIXTURE_TESTS = """
import pytest
import odp_async as oa
from odp_async import IntervalTree
from odp_async.explore.testing import explore_test


@pytest.fixture
def tree():
    return IntervalTree()


@explore_test(schedules=50, chooser="{chooser}")
async def test_tree_fixture_restored(tree):
    async def use(i):
        h = tree.insert(i, i + 3, i)
        await oa.checkpoint()
        tree.remove(h)

    async with oa.task_group() as tg:
        tg.start_soon(use, 1)
        tg.start_soon(use, 2)
    assert len(tree) == 0


@explore_test(schedules=50, chooser="{chooser}")
async def test_tree_fixture_left_changed(tree):
    async def use(i):
        tree.insert(i, i + 3, i)
        await oa.checkpoint()

    async with oa.task_group() as tg:
        tg.start_soon(use, 1)
    assert len(tree) >= 1
"""


@pytest.mark.parametrize("chooser", ["dpor", "random"])
def test_a_fixture_tree_through_the_plugin(pytester: pytest.Pytester, chooser: str) -> None:
    pytester.makepyfile(test_treefx=FIXTURE_TESTS.replace("{chooser}", chooser))
    result = pytester.runpytest("--odp-database=none", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "FAILED test_treefx.py::test_tree_fixture_left_changed" in output, output
    assert (
        "fixture 'tree' changed between the test's runs (tree.<intervals> was a list of 0 "
        "items before the first run, a list of 1 items after run 1)" in output
    ), output
    assert "_mutation" not in output
