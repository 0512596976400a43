"""pytest's own outcomes inside an explored test: ``pytest.skip()`` / ``pytest.xfail()``.

Trial d: a test that called ``pytest.skip("not on this platform")`` (in the main task or
in a child task) failed with ``ExplorationFailed: found after 1 schedule ... Skipped``, a
replay token and an entry in the failure database.  Now the first schedule that ends
with a skip (or an xfail) ends the exploration and the test gets that outcome, nothing
saved; a real failure in an earlier schedule is still the failure, and ``pytest.fail``
is a failure.  Driven through `pytester` on a user's test module, in a fresh process.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

OUTCOMES = textwrap.dedent(
    """
    import unittest

    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test(schedules=20)
    async def test_skip_in_main():
        await oa.checkpoint()
        pytest.skip("not on this platform")


    @explore_test(schedules=20)
    async def test_skip_in_a_child():
        async def child():
            await oa.checkpoint()
            pytest.skip("child skip")

        async with oa.task_group() as tg:
            tg.start_soon(child)


    @explore_test(schedules=20)
    async def test_xfail_in_main():
        await oa.checkpoint()
        pytest.xfail("known")


    @explore_test(schedules=20)
    async def test_unittest_skip():
        await oa.checkpoint()
        raise unittest.SkipTest("unittest's skip")


    @explore_test(schedules=20)
    async def test_fail_in_a_child():
        async def child():
            await oa.checkpoint()
            pytest.fail("explicit")

        async with oa.task_group() as tg:
            tg.start_soon(child)


    @explore_test(schedules=20)
    async def test_skip_beside_an_error():
        async def skips():
            pytest.skip("one child skips")

        async def fails():
            raise ValueError("the other one fails")

        async with oa.task_group() as tg:
            tg.start_soon(skips)
            tg.start_soon(fails)
    """
)

# The draws of `chooser="random", seed=0` (one per schedule; the probe's FIFO run, before
# and after the exploration, draws 0): 661, 606, 44, 790, 68, 492, 13, ...  A draw in
# 40..99 first comes at schedule 3, one in 1..39 at schedule 7.
SOME_SCHEDULES = textwrap.dedent(
    """
    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test(schedules=50, chooser="random")
    async def test_some_schedules():
        n = oa.draw(1000)
        if 40 <= n < 100:
            {high}
        if 0 < n < 40:
            {low}
    """
)
SKIP = 'pytest.skip(f"drew {n}")'
FAIL = 'raise AssertionError(f"drew {n}")'


def _tokens(database: Path) -> list[Path]:
    return sorted(database.rglob("*.token"))


def test_a_skip_or_xfail_is_the_test_s_outcome(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES)
    database = pytester.path / "db"
    result = pytester.runpytest_subprocess(
        "-rA", "-p", "no:cacheprovider", "-p", "no:randomly", f"--odp-database={database}"
    )
    result.assert_outcomes(skipped=3, xfailed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "SKIPPED [[]1[]] test_outcomes.py:11: not on this platform",
            "SKIPPED [[]1[]] test_outcomes.py:18: child skip",
            "SKIPPED [[]1[]] *: unittest's skip",
            "XFAIL test_outcomes.py::test_xfail_in_main - known",
            "FAILED test_outcomes.py::test_fail_in_a_child - odp_async.errors.Explor*",
            "FAILED test_outcomes.py::test_skip_beside_an_error - odp_async.errors.Explor*",
        ]
    )
    assert "Failed: explicit" in result.stdout.str()
    assert "ValueError: the other one fails" in result.stdout.str()
    # the two failures, and only they, are in the failure database
    saved = {path.read_text().splitlines()[0] for path in _tokens(database)}
    assert saved == {
        "test_outcomes.py::test_fail_in_a_child",
        "test_outcomes.py::test_skip_beside_an_error",
    }


def test_the_first_schedule_that_skips_ends_the_exploration(pytester: pytest.Pytester) -> None:
    # Skips on schedule 3, fails on schedule 7: skipped (what a later schedule would find
    # is not looked for: the test said this run does not apply).
    pytester.makepyfile(test_some=SOME_SCHEDULES.format(high=SKIP, low=FAIL))
    database = pytester.path / "db"
    result = pytester.runpytest_subprocess(
        "-rA", "-p", "no:cacheprovider", f"--odp-database={database}"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_some.py:*: drew 44"])
    assert _tokens(database) == []


def test_a_skip_never_hides_an_earlier_failure(pytester: pytest.Pytester) -> None:
    # Fails on schedule 3, skips on schedule 7: the failure, saved.
    pytester.makepyfile(test_some=SOME_SCHEDULES.format(high=FAIL, low=SKIP))
    database = pytester.path / "db"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--odp-database={database}")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "test_some.py::test_some_schedules: found after 3 schedules (random" in output
    assert "AssertionError: drew 44" in output
    assert len(_tokens(database)) == 1

    # The test changed: the saved schedule now skips.  Replayed with its token, the test
    # is skipped; replayed from the database, the token no longer reproduces (deleted)
    # and the exploration runs (and skips, on schedule 3).
    (line,) = set(re.findall(r"^\s*(pytest '.*' --odp-replay=\S+)$", output, re.M))
    pytester.makepyfile(test_some=SOME_SCHEDULES.format(high=SKIP, low=FAIL))
    replayed = pytester.runpytest_subprocess(
        *shlex.split(line)[1:], "-rA", "-p", "no:cacheprovider", "--odp-database=none"
    )
    replayed.assert_outcomes(skipped=1)
    replayed.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_some.py:*: drew 44"])
    again = pytester.runpytest_subprocess(
        "-rA", "-p", "no:cacheprovider", f"--odp-database={database}"
    )
    again.assert_outcomes(skipped=1)
    assert _tokens(database) == []
