"""The pytest plugin, driven through `pytester`: options, ini, profiles, failure database."""

from __future__ import annotations

import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest

import odp_async as oa
from odp_async.explore.testing import (
    ExplorationFailed,
    FailureDatabase,
    Profile,
    explore_test,
    explored_test_of,
    get_profile,
    register_profile,
)

pytest_plugins = ["pytester"]

# A test module written by a user: each schedule appends one line to runs.txt (so a test
# can count how many schedules ran and see what they drew); `lost_update` is a real race.
USER_TESTS = textwrap.dedent(
    """
    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    def log(text):
        with open("runs.txt", "a") as f:
            f.write(text + "\\n")


    @explore_test(schedules=5, chooser="random")  # one call per schedule (no pct probes)
    async def test_counts():
        log(str(oa.draw(1000)))


    @pytest.mark.parametrize("n", [2, 3])
    @explore_test(schedules=200, chooser="random")
    async def test_lost_update(n):
        log("lost_update")
        state = {"x": 0}

        async def increment():
            value = state["x"]
            await oa.checkpoint()
            state["x"] = value + 1

        async with oa.task_group() as tg:
            for i in range(n):
                tg.start_soon(increment, name=f"inc{i}")
        assert state["x"] == n, f"lost update: x == {state['x']}"
    """
)

FIXED_LOST_UPDATE = textwrap.dedent(
    """
        lock = oa.Mutex("x")

        async def increment():
            async with lock:
                value = state["x"]
                await oa.checkpoint()
                state["x"] = value + 1
    """
)


def _runs(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "runs.txt"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    path.unlink()
    return lines


def _explored(pytester: pytest.Pytester) -> list[str]:
    """The runs of the exploration: `_runs` but the probe's (one FIFO schedule run before
    the exploration and again after it, `odp_async.explore.testing._Probe`)."""
    runs = _runs(pytester)
    assert runs[0] == runs[-1] == "0", runs  # the probe's FIFO schedule draws 0
    return runs[1:-1]


def _replay_line(output: str, node_id: str) -> list[str]:
    """The ready-to-paste command of `node_id`'s failure, split as a shell would."""
    pattern = re.compile(r"^\s*(pytest '" + re.escape(node_id) + r"' --odp-replay=\S+)$", re.M)
    # with CI set, pytest's short summary repeats the whole message: the same line twice
    found = sorted(set(pattern.findall(output)))
    assert len(found) == 1, output
    return shlex.split(found[0])


@pytest.fixture
def user_tests(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester


# --- settings: options, ini, profiles, precedence ---------------------------------------


def test_the_plugin_is_registered_through_its_entry_point(user_tests: pytest.Pytester) -> None:
    result = user_tests.runpytest("-k", "counts")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["odp_async: profile 'default', failure database *"])
    assert len(_explored(user_tests)) == 5  # the decorator's budget

    result = user_tests.runpytest("-k", "counts", "-p", "no:odp_async", "--odp-schedules=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # no plugin: no such option


def test_precedence_is_decorator_then_ini_then_profile_then_command_line(
    user_tests: pytest.Pytester,
) -> None:
    user_tests.makeconftest(
        """
        from odp_async.explore.testing import register_profile

        register_profile("plugin-test-nine", schedules=9)
        """
    )
    user_tests.makeini("[pytest]\nodp_schedules = 7\n")
    user_tests.runpytest("-k", "counts").assert_outcomes(passed=1)
    assert len(_explored(user_tests)) == 7  # ini over the decorator

    user_tests.runpytest("-k", "counts", "--odp-profile=plugin-test-nine")
    assert len(_explored(user_tests)) == 9  # the selected profile over the ini

    user_tests.runpytest("-k", "counts", "--odp-profile=plugin-test-nine", "--odp-schedules=3")
    assert len(_explored(user_tests)) == 3  # the command line over everything

    user_tests.makeini("[pytest]\nodp_schedules = 7\nodp_profile = ci\n")
    result = user_tests.runpytest("-k", "counts")
    result.stdout.fnmatch_lines(["odp_async: profile 'ci', *"])
    assert len(_explored(user_tests)) == 100  # the built-in quick profile


def test_seed_and_chooser_from_the_command_line_and_the_ini(user_tests: pytest.Pytester) -> None:
    user_tests.runpytest("-k", "counts", "--odp-seed=1")
    seed_1 = _explored(user_tests)
    user_tests.runpytest("-k", "counts", "--odp-seed=1")
    assert _explored(user_tests) == seed_1  # a seed is a schedule list
    user_tests.makeini("[pytest]\nodp_seed = 2\n")
    user_tests.runpytest("-k", "counts")
    seed_2 = _explored(user_tests)
    assert len(seed_2) == len(seed_1) == 5
    assert seed_2 != seed_1

    # dfs sees a single schedule (no choice point in the body but the draw's 1000 values
    # are walked one by one): with a budget of 4 it runs 4, each a different value
    user_tests.runpytest("-k", "counts", "--odp-chooser=dfs", "--odp-schedules=4")
    assert _explored(user_tests) == ["0", "1", "2", "3"]
    user_tests.makeini("[pytest]\nodp_chooser = dfs\nodp_schedules = 2\n")
    user_tests.runpytest("-k", "counts")
    assert _explored(user_tests) == ["0", "1"]


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--odp-schedules=abc"], "", "--odp-schedules: expected an integer, got 'abc'"),
        (["--odp-schedules=0"], "", "--odp-schedules must be a positive int, got '0'"),
        ([], "odp_stall = 0", "ini odp_stall must be *, got '0'"),
        (["--odp-chooser=bfs"], "", "--odp-chooser: unknown chooser 'bfs'*"),
        ([], "odp_seed = x1", "ini odp_seed: expected an integer, got 'x1'"),
        (["--odp-profile=nope"], "", "--odp-profile: unknown odp_async profile 'nope'*"),
        ([], "odp_profile = nope", "ini odp_profile: unknown odp_async profile 'nope'*"),
        (["--odp-replay=garbage"], "", "--odp-replay: malformed token 'garbage'*"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(
    user_tests: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    if ini:
        user_tests.makeini(f"[pytest]\n{ini}\n")
    result = user_tests.runpytest("-k", "counts", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_a_scenario_token_is_refused_as_a_test_replay(user_tests: pytest.Pytester) -> None:
    from odp_async.explore.runner import explore

    token = explore("classic:lost-update", chooser="dfs").failure.token  # type: ignore[union-attr]
    result = user_tests.runpytest("-k", "counts", f"--odp-replay={token}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --odp-replay: token for * replay it with `odp-async*"])


# --- the failure message and its replay line -------------------------------------------------


def test_the_failure_ends_with_a_replay_line_that_works(user_tests: pytest.Pytester) -> None:
    result = user_tests.runpytest("-k", "lost_update", "--odp-database=none")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "lost update: x == 1" in output
    assert "odp-async replay" not in output  # the CLI refuses a test's token
    assert "odp_async/explore/testing.py" not in output  # the decorator's frames are hidden
    args = _replay_line(output, "test_user.py::test_lost_update[2]")
    assert args[0] == "pytest"
    _runs(user_tests)

    replayed = user_tests.runpytest(*args[1:], "--odp-database=none")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(
        ["*test_user.py::test_lost_update[[]2[]]: replayed token *lost update: x == 1"]
    )
    assert _runs(user_tests) == ["lost_update"]  # one run: the replay, no exploration
    assert "nothing was replayed" not in replayed.stdout.str()

    # pasted into a shell as it is (the brackets of the parameter id quoted)
    line = re.search(r"^\s*(pytest '.*\[2\]' --odp-replay=\S+)$", output, re.M)
    assert line is not None
    command = line.group(1).replace("pytest", f"{shlex.quote(sys.executable)} -m pytest", 1)
    shell = user_tests.run("sh", "-c", f"{command} -p no:cacheprovider --odp-database=none")
    assert shell.ret == pytest.ExitCode.TESTS_FAILED
    shell.stdout.fnmatch_lines(["*test_lost_update[[]2[]]: replayed token *", "*1 failed*"])


def test_the_replay_line_works_from_below_the_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trial: run from a directory under the rootdir, the line named the test by its node
    # id (relative to the rootdir): "file or directory not found" when pasted there.
    pytester.makeini("[pytest]\n")
    work = pytester.mkpydir("work")
    (work / "test_user.py").write_text(USER_TESTS)
    monkeypatch.chdir(work)
    result = pytester.runpytest("-k", "lost_update", "--odp-database=none")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "pytest 'work/test_user.py::" not in output
    args = _replay_line(output, "test_user.py::test_lost_update[2]")
    replayed = pytester.runpytest(*args[1:], "--odp-database=none")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["*test_lost_update[[]2[]]: replayed token *"])


@pytest.mark.parametrize("via", ["option", "env", "ini"])
def test_a_replay_applies_only_to_the_test_it_was_made_by(
    user_tests: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    output = user_tests.runpytest("-k", "lost_update", "--odp-database=none").stdout.str()
    token = _replay_line(output, "test_user.py::test_lost_update[2]")[-1].split("=", 1)[1]

    args = ["-k", "lost_update", "--odp-database=none"]
    if via == "option":
        args.append(f"--odp-replay={token}")
    elif via == "env":
        monkeypatch.setenv("ODP_ASYNC_REPLAY", token)
    else:
        user_tests.makeini(f"[pytest]\nodp_replay = {token}\n")
    result = user_tests.runpytest(*args)
    # the other parameter still explores (and finds its own race): not a trivial pass
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_lost_update[[]2[]]: replayed token *",
            "*test_lost_update[[]3[]]: found after * schedule*",
        ]
    )


def test_a_replay_token_whose_test_did_not_run_is_reported(user_tests: pytest.Pytester) -> None:
    output = user_tests.runpytest("-k", "lost_update", "--odp-database=none").stdout.str()
    args = _replay_line(output, "test_user.py::test_lost_update[2]")
    result = user_tests.runpytest("-k", "counts", args[-1])
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["odp_async: the token of --odp-replay was made by *, which did not run*"]
    )


def test_a_token_made_under_another_rootdir_is_told_apart(user_tests: pytest.Pytester) -> None:
    """Run from another folder, the token's test has another node id: the note names this
    run's test that ends the same and says why (second new-user trial, 2026-12-06)."""
    output = user_tests.runpytest("-k", "lost_update", "--odp-database=none").stdout.str()
    args = _replay_line(output, "test_user.py::test_lost_update[2]")
    (user_tests.path / "sub").mkdir()
    (user_tests.path / "test_user.py").rename(user_tests.path / "sub" / "test_user.py")
    result = user_tests.runpytest("-k", "lost_update", "--odp-database=none", args[-1])
    result.stdout.fnmatch_lines(
        [
            "odp_async: the token of --odp-replay was made by "
            "'test_user.py::test_lost_update[[]2[]]', which did not run: nothing was replayed "
            "(this run's "
            "'sub/test_user.py::test_lost_update[[]2[]]' ends the same: a node id is relative "
            "to pytest's rootdir, here *; run pytest where the token was made)"
        ]
    )


def test_a_test_method_with_fixtures_is_explored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cls="""
        import pytest
        import odp_async as oa
        from odp_async.explore.testing import explore_test

        @pytest.fixture
        def rounds():
            return 3

        class TestIt:
            @explore_test(schedules=10)
            async def test_method(self, rounds):
                assert isinstance(self, TestIt)
                for _ in range(rounds):
                    await oa.checkpoint()
                assert rounds == 2, "three rounds"
        """
    )
    result = pytester.runpytest("--odp-database=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*three rounds*", "*pytest 'test_cls.py::TestIt::test_method' --odp-replay=odp2.*"]
    )


# --- the failure database --------------------------------------------------------------------


def _saved(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.token")) if root.exists() else []


def test_failures_are_saved_and_replayed_first_on_the_next_run(
    user_tests: pytest.Pytester,
) -> None:
    database = user_tests.path / ".odp-async" / "failures"
    user_tests.runpytest("-k", "lost_update").assert_outcomes(failed=2)
    saved = _saved(database)
    assert len(saved) == 2
    assert saved[0].read_text().splitlines()[0].startswith("test_user.py::test_lost_update[")
    explored = _runs(user_tests)

    result = user_tests.runpytest("-k", "lost_update")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*test_lost_update[[]2[]]: replayed a schedule saved in the failure database*"]
    )
    # each test ran its saved schedule (a check, then the report's traced run): no search
    assert len(_runs(user_tests)) == 4 < len(explored)
    assert _saved(database) == saved


def test_a_saved_failure_that_no_longer_reproduces_is_dropped(
    user_tests: pytest.Pytester,
) -> None:
    database = user_tests.path / ".odp-async" / "failures"
    user_tests.runpytest("-k", "lost_update").assert_outcomes(failed=2)
    assert len(_saved(database)) == 2

    fixed = USER_TESTS.replace(
        USER_TESTS[
            USER_TESTS.index("\n    async def increment") : USER_TESTS.index(
                "\n    async with oa.task_group()"
            )
        ],
        textwrap.indent(FIXED_LOST_UPDATE, "    ").rstrip(),
    )
    user_tests.makepyfile(test_user=fixed)
    result = user_tests.runpytest("-k", "lost_update")
    result.assert_outcomes(passed=2)  # the stale tokens were dropped, then it explored
    assert _saved(database) == []
    assert len(_runs(user_tests)) > 2 * 100  # the full budget ran for each parameter


def test_the_database_location_comes_from_the_ini_and_none_turns_it_off(
    user_tests: pytest.Pytester,
) -> None:
    user_tests.runpytest("-k", "lost_update", "--odp-database=none")
    assert not (user_tests.path / ".odp-async").exists()

    user_tests.makeini("[pytest]\nodp_database = ci-failures\n")
    result = user_tests.runpytest("-k", "lost_update")
    result.stdout.fnmatch_lines(["odp_async: profile 'default', failure database */ci-failures"])
    assert len(_saved(user_tests.path / "ci-failures")) == 2
    assert not (user_tests.path / ".odp-async").exists()


def test_without_the_plugin_the_decorator_still_explores_and_hides_its_frames(
    user_tests: pytest.Pytester,
) -> None:
    result = user_tests.runpytest("-k", "lost_update", "-p", "no:odp_async")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "ODP_ASYNC_REPLAY='odp2." in output  # no node id known: the variable's hint
    assert "odp_async/explore/testing.py" not in output
    assert not (user_tests.path / ".odp-async").exists()  # no database without the plugin


# --- the pieces, called directly ---------------------------------------------------------


def test_profiles_validate_their_values_and_names() -> None:
    with pytest.raises(oa.InvalidArgument, match=r"profile 'bad': schedules must be a positive"):
        register_profile("bad", schedules=0)
    with pytest.raises(oa.InvalidArgument, match=r"profile 'bad': unknown chooser 'bfs'"):
        register_profile("bad", chooser="bfs")
    with pytest.raises(oa.InvalidArgument, match="a profile name is a non-empty str"):
        register_profile("")
    with pytest.raises(oa.InvalidArgument, match=r"unknown odp_async profile 'bad'; expected"):
        get_profile("bad")
    assert get_profile("ci").schedules == 100
    assert get_profile("nightly").schedules == 10_000
    assert get_profile("default") == Profile()
    # layering: a set field wins, an unset one falls through
    assert Profile(schedules=3).over(Profile(schedules=9, seed=4)) == Profile(3, None, 4)


def test_the_database_saves_fetches_and_deletes_by_test_id(tmp_path: Path) -> None:
    database = FailureDatabase(tmp_path / "db")
    assert database.fetch("t.py::a") == []
    database.save("t.py::a", "odp1.x.1")
    database.save("t.py::a", "odp1.x.1")  # idempotent
    database.save("t.py::b", "odp1.y.2")
    assert database.fetch("t.py::a") == ["odp1.x.1"]
    assert database.fetch("t.py::b") == ["odp1.y.2"]
    database.delete("t.py::a", "odp1.x.1")
    assert database.fetch("t.py::a") == []
    assert len(list((tmp_path / "db").iterdir())) == 1  # the empty entry is gone


async def _racy() -> None:
    state = {"x": 0}

    async def increment() -> None:
        value = state["x"]
        await oa.checkpoint()
        state["x"] = value + 1

    async with oa.task_group() as tg:
        tg.start_soon(increment)
        tg.start_soon(increment)
    assert state["x"] == 2


async def _fewer_choices() -> None:
    await oa.checkpoint()


def _token_of(test_id: str) -> str:
    spec = explored_test_of(explore_test(schedules=50)(_racy))
    assert spec is not None
    with pytest.raises(ExplorationFailed) as info:
        spec.call(node_id=test_id)
    failure = info.value.result.failure  # type: ignore[union-attr]
    assert failure is not None
    token = failure.shrunk_token or failure.token
    assert token is not None
    return token


def test_a_saved_token_that_no_longer_fits_the_test_is_dropped(tmp_path: Path) -> None:
    database = FailureDatabase(tmp_path)
    database.save("t.py::test", _token_of("t.py::test"))
    spec = explored_test_of(explore_test(schedules=5)(_fewer_choices))
    assert spec is not None
    spec.call(node_id="t.py::test", database=database)  # passes: the token was stale
    assert database.fetch("t.py::test") == []


def test_an_explicit_replay_that_no_longer_fits_says_so() -> None:
    token = _token_of("t.py::test")
    spec = explored_test_of(explore_test(schedules=5)(_fewer_choices))
    assert spec is not None
    with pytest.raises(ExplorationFailed, match=r"t.py::test: the replay token does not fit"):
        spec.call(node_id="t.py::test", replay=token)
    spec.call(node_id="t.py::other", replay=token)  # another test's token: explores


def test_a_database_that_cannot_be_written_does_not_hide_the_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    spec = explored_test_of(explore_test(schedules=50)(_racy))
    assert spec is not None
    with pytest.raises(ExplorationFailed, match=r"(?s)found after .*not saved in the failure"):
        spec.call(node_id="t.py::test", database=FailureDatabase(blocker))


def test_a_database_in_a_missing_directory_is_a_usage_error_and_nothing_is_made(
    user_tests: pytest.Pytester,
) -> None:
    """Trial 21c: ``--odp-database=/nonexistent/x`` made ``/nonexistent/x/...`` (a
    ``mkdir -p``), where the CLI refuses an output in a directory that does not exist."""
    missing = user_tests.path / "no" / "such"
    result = user_tests.runpytest_subprocess("-k", "lost_update", f"--odp-database={missing}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --odp-database {missing}: no such directory *no"])
    assert not (user_tests.path / "no").exists()

    (user_tests.path / "afile").write_text("")
    user_tests.makeini("[pytest]\nodp_database = afile\n")
    result = user_tests.runpytest_subprocess("-k", "lost_update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini odp_database afile: not a directory"])

    user_tests.makeini("[pytest]\nodp_database = made\n")  # its parent exists: made
    result = user_tests.runpytest_subprocess("-k", "lost_update")
    assert len(_saved(user_tests.path / "made")) == 2
