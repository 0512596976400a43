"""Explored tests whose schedules would share state through their arguments (a fixture, a
parameter, ``self``), and replays that do not reproduce their token, driven through
`pytester` as a user writes them (trial 20a, f2)."""

from __future__ import annotations

import re
import textwrap

import pytest

pytest_plugins = ["pytester"]

# The trial's test, as the user wrote it: correct (the lock is held across the
# read-modify-write), but its state is a fixture's dict, built once for the test.
TRIAL_F2 = textwrap.dedent(
    """
    import pytest
    import odp_async as oa
    from odp_async import checkpoint, task_group
    from odp_async.explore.testing import explore_test


    @pytest.fixture
    def box():
        return {"x": 0}


    @explore_test(schedules=50, chooser="random")
    async def test_locked_with_fixture(box):
        m = oa.Mutex("m")
        async def w():
            async with m:
                v = box["x"]; await checkpoint(); box["x"] = v + 1
        async with task_group() as tg:
            tg.start_soon(w); tg.start_soon(w)
        assert box["x"] == 2, box
    """
)

# Correct tests that read fixtures, parameters and pytest's own fixtures, or mutate a
# fixture and put it back before the schedule ends; and a buggy one, still found.
FIXTURES_USED_WELL = textwrap.dedent(
    """
    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @pytest.fixture
    def config():
        return {"workers": 3, "names": ["a", "b", "c"]}


    @pytest.fixture
    def box():
        return {"x": 0}


    async def add_under_lock(lock, state, n):
        async def increment():
            async with lock:
                value = state["x"]
                await oa.checkpoint()
                state["x"] = value + 1

        async with oa.task_group() as tg:
            for i in range(n):
                tg.start_soon(increment, name=f"inc{i}")


    @explore_test(schedules=60, chooser="random")
    async def test_reads_a_fixture(config, tmp_path, request):
        assert str(tmp_path) and request.node.name
        state = {"x": 0}
        await add_under_lock(oa.Mutex("m"), state, config["workers"])
        assert state["x"] == len(config["names"])


    @explore_test(schedules=60, chooser="random")
    async def test_mutates_a_fixture_and_restores_it(box):
        try:
            await add_under_lock(oa.Mutex("m"), box, 2)
            assert box["x"] == 2
        finally:
            box["x"] = 0


    @pytest.mark.parametrize("n", [2, 3])
    @explore_test(schedules=60, chooser="random")
    async def test_a_parameter(n, config):
        state = {"x": 0}
        await add_under_lock(oa.Mutex("m"), state, n)
        assert state["x"] == n


    @explore_test(schedules=200, chooser="random")
    async def test_buggy_with_a_fixture(config):
        state = {"x": 0}

        async def increment():
            value = state["x"]
            await oa.checkpoint()
            state["x"] = value + 1

        async with oa.task_group() as tg:
            for i in range(config["workers"]):
                tg.start_soon(increment, name=f"inc{i}")
        assert state["x"] == config["workers"], f"lost update: x == {state['x']}"
    """
)


def test_a_fixture_shared_by_the_schedules_is_named_not_judged(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_f2_fixture=TRIAL_F2)
    result = pytester.runpytest("--odp-database=none")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "ExplorationInconclusive" in output, output
    assert (
        "fixture 'box' changed between the test's runs (box['x'] was 0 before the first run, "
        "2 after run 1)" in output
    ), output
    assert "this is not a violation" in output
    assert "ExplorationFailed" not in output  # no lost update claimed
    assert "AssertionError" not in output
    assert "--odp-replay=" not in output  # no token for a verdict it does not give
    assert not (pytester.path / ".odp-async").exists()


def test_the_shared_fixture_is_refused_by_every_chooser(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_f2_fixture=TRIAL_F2)
    for chooser in ("portfolio", "dfs", "dpor", "pct"):
        result = pytester.runpytest("--odp-database=none", f"--odp-chooser={chooser}")
        result.assert_outcomes(failed=1)
        output = result.stdout.str()
        assert "fixture 'box' changed between the test's runs" in output, (chooser, output)


def test_state_on_self_shared_by_the_schedules_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cls="""
        import odp_async as oa
        from odp_async.explore.testing import explore_test

        class TestCounter:
            count = 0

            @explore_test(schedules=10, chooser="random")
            async def test_counts(self):
                self.count += 1
                await oa.checkpoint()
                assert self.count == 1
        """
    )
    result = pytester.runpytest("--odp-database=none")
    result.assert_outcomes(failed=1)
    assert (
        "the test's instance (self) changed between the test's runs "
        "(self.count was absent before the first run, 1 after run 1)" in result.stdout.str()
    ), result.stdout.str()


def test_fixtures_read_or_restored_pass_and_a_bug_is_still_found(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fixtures=FIXTURES_USED_WELL)
    result = pytester.runpytest("--odp-database=none", "-v")
    result.assert_outcomes(passed=4, failed=1)
    output = result.stdout.str()
    assert "changed between the test's runs" not in output, output
    result.stdout.fnmatch_lines(
        [
            "*test_buggy_with_a_fixture: found after * schedule*",
            "*lost update: x == *",
            "*pytest 'test_fixtures.py::test_buggy_with_a_fixture' --odp-replay=odp2.*",
        ]
    )


# --- a replay that does not reproduce its token ------------------------------------------

BUGGY = textwrap.dedent(
    """
    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @pytest.fixture
    def box():
        return {"x": 0}


    @explore_test(schedules=200, chooser="random")
    async def test_race(box):
        state = STATE

        async def increment():
            value = state["x"]
            await oa.checkpoint()
            state["x"] = value + 1

        async with oa.task_group() as tg:
            tg.start_soon(increment, name="a")
            tg.start_soon(increment, name="b")
        assert CHECK, f"lost update: x == {state['x']}"
    """
)


def _token(output: str) -> str:
    found = set(re.findall(r"--odp-replay=(\S+)$", output, re.M))
    assert len(found) == 1, output
    return found.pop()


def _variant(state: str, check: str) -> str:
    return BUGGY.replace("STATE", state).replace("CHECK", check)


def test_a_replay_that_no_longer_fails_is_a_mismatch_not_a_pass(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_race=_variant('{"x": 0}', 'state["x"] == 2'))
    found = pytester.runpytest("--odp-database=none")
    found.assert_outcomes(failed=1)
    token = _token(found.stdout.str())

    # the same choices, but the check no longer fails: the token does not reproduce
    pytester.makepyfile(test_race=_variant('{"x": 0}', 'state["x"] >= 1'))
    replayed = pytester.runpytest("--odp-database=none", f"--odp-replay={token}")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(
        [
            "*ReplayMismatch: test_race.py::test_race: the replay token recorded error at "
            "step *, the replay gave no failure: the test, its fixtures or odp_async changed "
            "since the token was made*"
        ]
    )

    # the original test still reproduces its token
    pytester.makepyfile(test_race=_variant('{"x": 0}', 'state["x"] == 2'))
    again = pytester.runpytest("--odp-database=none", f"--odp-replay={token}")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*test_race.py::test_race: replayed token *lost update*"])


def test_a_replay_raising_another_exception_is_a_mismatch(pytester: pytest.Pytester) -> None:
    # The same step fails, with a KeyError where the token recorded an AssertionError.
    pytester.makepyfile(test_race=_variant('{"x": 0}', 'state["x"] == 2'))
    token = _token(pytester.runpytest("--odp-database=none").stdout.str())

    pytester.makepyfile(test_race=_variant('{"x": 0}', 'state["x"] == 2 or {}["key"]'))
    replayed = pytester.runpytest("--odp-database=none", f"--odp-replay={token}")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(
        [
            "*ReplayMismatch: test_race.py::test_race: the replay token recorded an error at "
            "step * raising AssertionError, the replay raised KeyError there: *"
        ]
    )


def test_a_replay_mismatch_names_a_fixture_the_replay_changed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_race=_variant('{"x": 0}', 'state["x"] == 2'))
    token = _token(pytester.runpytest("--odp-database=none").stdout.str())

    pytester.makepyfile(test_race=_variant("box", 'state["x"] >= 1'))
    replayed = pytester.runpytest("--odp-database=none", f"--odp-replay={token}")
    replayed.assert_outcomes(failed=1)
    output = replayed.stdout.str()
    assert "ReplayMismatch: test_race.py::test_race: the replay token recorded error" in output
    assert "the replay changed fixture 'box' (box['x'] went from 0 to 1)" in output, output


def test_a_module_global_the_test_mutates_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_global="""
        import odp_async as oa
        from odp_async.explore.testing import explore_test

        CACHE = {"hits": 0}
        LIMIT = 3  # read, never written: not a change


        @explore_test(schedules=10, chooser="random")
        async def test_cache():
            lock = oa.Mutex("m")

            async def hit():
                async with lock:
                    value = CACHE["hits"]
                    await oa.checkpoint()
                    CACHE["hits"] = value + 1

            async with oa.task_group() as tg:
                tg.start_soon(hit)
            assert CACHE["hits"] <= LIMIT
        """
    )
    result = pytester.runpytest("--odp-database=none")
    result.assert_outcomes(failed=1)
    assert (
        "module global 'CACHE' changed between the test's runs (CACHE['hits'] was 0 before "
        "the first run, 1 after run 1)" in result.stdout.str()
    ), result.stdout.str()
