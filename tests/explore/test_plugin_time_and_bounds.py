"""An explored test's time budget, stall limit and step bound under pytest, as a user
meets them (trial d): a test run in a fresh process by `pytester`.

- ``stall=None`` with ``--odp-time``: the README promises that a step is never waited for
  more than the time budget plus 5 s; a step that never returned hung the test (a 15 s
  ``time.sleep`` passed after 45 s).
- a pass the time budget cut short said only ``PASSED``; it now says how far it got.
- a livelocked test was told to "raise --max-steps", an option pytest does not have; it
  is told the setting it has there: ``@explore_test(max_steps=...)``, or its profile's.
"""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

BLOCKS = textwrap.dedent(
    """
    import threading

    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test(schedules=1, chooser="random", stall=None)
    async def test_blocks():
        await oa.checkpoint()
        threading.Event().wait()  # never returns
    """
)


def test_stall_none_is_still_bounded_by_the_time_budget(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_blocks=BLOCKS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--odp-database=none", "--odp-time=0.5", timeout=120
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   odp_async.errors.ExplorationInconclusive: test_blocks.py::test_blocks: "
            "inconclusive after 0 schedules: step 2 of task 'main' has not returned after "
            "* s (at *test_blocks.py:10 in test_blocks)*"
        ]
    )
