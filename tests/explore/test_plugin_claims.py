"""A passing explored test says what its search established (new-user trial: a pass
said only ``PASSED``, whether every trace was explored or the budget ran out): the
terminal summary counts the complete and the budget-bound passes, and ``-v`` lists each
test's claim; under pytest-xdist too."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

TESTS = textwrap.dedent(
    """
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    async def _locked_bumps():
        lock = oa.Mutex("lock")
        box = {"n": 0}

        async def bump():
            async with lock:
                v = box["n"]
                await oa.checkpoint()
                box["n"] = v + 1

        async with oa.task_group() as tg:
            tg.start_soon(bump)
            tg.start_soon(bump)
        assert box["n"] == 2


    @explore_test(chooser="dpor", schedules=1000)
    async def test_proved():
        await _locked_bumps()


    @explore_test(chooser="random", schedules=20)
    async def test_sampled():
        await _locked_bumps()


    def test_plain():
        pass
    """
)

COUNT = (
    "odp_async: 2 explored tests passed: 1 complete (every trace explored), 1 on its "
    "budget, not complete"
)


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_the_summary_counts_complete_and_budget_bound_passes(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    pytester.makepyfile(test_claims=TESTS)
    extra = ["-p", "xdist", "-n", "2"] if xdist else []
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--odp-database=none", *extra)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"{COUNT} (-v lists each test's claim)"])
    assert "test_claims.py::test_proved: complete" not in result.stdout.str()


def test_verbose_lists_each_claim(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_claims=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--odp-database=none", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            COUNT,
            "odp_async: test_claims.py::test_proved: complete: * traces, no violation",
            "odp_async: test_claims.py::test_sampled: no violation in 20 schedules "
            "(budget reached, not complete)",
        ]
    )
    assert "test_plain:" not in result.stdout.str()  # not an explored test
