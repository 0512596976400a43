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

import fnmatch
import textwrap
from xml.etree import ElementTree

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
            "inconclusive: * stalled (0 schedules ended before it): step 2 of task 'main' "
            "has not returned after "
            "* s (at *test_blocks.py:10 in test_blocks)*"
        ]
    )


# A clock that moves one second each time it is read, in place of the wall clock of the
# explored tests' searches: a time budget then stops them at the same schedule every run.
FAKE_CLOCK = textwrap.dedent(
    """
    import odp_async.explore.testing as testing


    class Clock:
        def __init__(self):
            self.now = 0.0

        def __call__(self):
            self.now += 1.0
            return self.now


    _explore = testing.explore_target
    testing.explore_target = lambda target, config: _explore(target, config, clock=Clock())
    """
)

LONG_CLEAN = textwrap.dedent(
    """
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test(schedules=100000, chooser="random")
    async def test_long_clean():
        m, d = oa.Mutex("m"), {"x": 0}

        async def t():
            async with m:
                v = d["x"]
                await oa.checkpoint()
                d["x"] = v + 1

        async with oa.task_group() as tg:
            for _ in range(3):
                tg.start_soon(t)
        assert d["x"] == 3


    @explore_test(schedules=5, chooser="random")
    async def test_short_clean():
        await oa.checkpoint()
    """
)


def test_a_pass_cut_short_by_the_time_budget_says_how_far_it_got(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FAKE_CLOCK)
    pytester.makepyfile(test_long=LONG_CLEAN)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--odp-database=none", "--odp-time=5", f"--junitxml={junit}"
    )
    result.assert_outcomes(passed=2)
    line = (
        "odp_async: test_long.py::test_long_clean: no violation in * schedules (time budget "
        "reached, not complete); 100000 schedules were asked for, the time budget (5 s) "
        "stopped it"
    )
    result.stdout.fnmatch_lines([line])
    assert result.stdout.str().count("odp_async: test_long.py::") == 1  # not the short one
    properties = ElementTree.parse(junit).getroot().iter("property")
    found = [(p.get("name"), p.get("value")) for p in properties]
    notes = [value for name, value in found if name == "odp_async"]
    assert len(notes) == 1, found  # the short test's pass needs no note
    assert fnmatch.fnmatch(f"odp_async: {notes[0]}", line), found
    # every explored pass carries its claim (test_plugin_claims.py)
    assert [v for n, v in found if n == "odp_async_complete"] == ["False", "False"], found


LIVELOCK = textwrap.dedent(
    """
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test(schedules=3, chooser="random", max_steps=200)
    async def test_livelock():
        flag = {"go": False}

        async def spinner():
            while not flag["go"]:
                await oa.checkpoint()

        async def sleeper():
            await oa.sleep(1)
            flag["go"] = True

        async with oa.task_group() as tg:
            tg.start_soon(spinner)
            tg.start_soon(sleeper)
    """
)


@pytest.mark.parametrize(
    ("profile", "bound", "setting"),
    [
        ("default", 200, "@explore_test(max_steps=...)"),
        ("short", 300, "max_steps in the selected profile (register_profile)"),
    ],
)
def test_a_livelock_names_the_step_bound_setting_a_test_has(
    pytester: pytest.Pytester, profile: str, bound: int, setting: str
) -> None:
    pytester.makeconftest(
        """
        from odp_async.explore.testing import register_profile

        register_profile("short", max_steps=300)
        """
    )
    pytester.makepyfile(test_live=LIVELOCK)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--odp-database=none", f"--odp-profile={profile}"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   odp_async.errors.ExplorationInconclusive: test_live.py::test_livelock: "
            f"inconclusive: 3 of 3 schedules reached the step bound of {bound} steps "
            f"unfinished (a livelock, or a run longer than the bound: raise {setting}); "
            "no violation"
        ]
    )
    assert "--max-steps" not in result.stdout.str()
