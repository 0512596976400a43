"""`@explore_test` bare, as pytest-style decorators are used, and its settings checked.

A bare ``@explore_test`` (no parentheses) gave a `TypeError` at collection, and a
misspelt setting (``@explore_test(schedulez=10)``) a plain `TypeError` rather than the
`InvalidArgument` that `check` gives (trial 16, f11).  Now the bare form explores with
every setting at its default, and a bad setting is an `InvalidArgument` naming it (and
the closest known one).  Driven through `pytester` on a user's test module, once in a
fresh process.
"""

from __future__ import annotations

import textwrap

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore.testing import explore_test, explored_test_of

pytest_plugins = ["pytester"]

BARE = textwrap.dedent(
    """
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test
    async def test_bare_passes():
        await oa.checkpoint()


    @explore_test
    async def test_bare_lost_update():
        state = {"x": 0}

        async def increment():
            value = state["x"]
            await oa.checkpoint()
            state["x"] = value + 1

        async with oa.task_group() as tg:
            tg.start_soon(increment, name="a")
            tg.start_soon(increment, name="b")
        assert state["x"] == 2, f"lost update: x == {state['x']}"


    class TestInAClass:
        @explore_test
        async def test_method(self):
            assert isinstance(self, TestInAClass)
            await oa.checkpoint()
    """
)

MISSPELT = textwrap.dedent(
    """
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test(schedulez=10)
    async def test_misspelt():
        await oa.checkpoint()
    """
)


def test_the_bare_decorator_explores(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bare=BARE)
    result = pytester.runpytest_subprocess("--odp-database=none", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*lost update: x == 1*", "*pytest 'test_bare.py::test_bare_lost_update' --odp-replay=*"]
    )


def test_a_misspelt_setting_is_an_invalid_argument(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_misspelt=MISSPELT)
    result = pytester.runpytest("--odp-database=none", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    result.stdout.fnmatch_lines(
        ["*InvalidArgument: unknown explore_test setting 'schedulez' (did you mean 'schedules'?)*"]
    )
    assert "TypeError" not in result.stdout.str()


async def _a_test() -> None:
    pass


def test_bare_and_called_give_the_same_settings() -> None:
    bare = explored_test_of(explore_test(_a_test))
    called = explored_test_of(explore_test()(_a_test))
    assert bare is not None
    assert called is not None
    assert bare.config == called.config
    assert bare.fn is called.fn is _a_test


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: explore_test(schedulez=10), "unknown explore_test setting 'schedulez'"),
        (lambda: explore_test(shrink=False), "unknown explore_test setting 'shrink'"),
        (lambda: explore_test(200), "takes its settings by keyword"),  # type: ignore[call-overload]
        (lambda: explore_test(schedules="5"), "schedules must be a positive int, got '5'"),
        (lambda: explore_test(replay=5), "replay must be None or a token"),
        (lambda: explore_test(lambda: None), "needs an async def test"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_are_invalid_arguments(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        call()
