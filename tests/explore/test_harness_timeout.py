"""pytest-timeout firing inside an explored run is the harness's, never the program's.

pytest-timeout (``--timeout``, ``@pytest.mark.timeout``; the signal method) raises its
``Failed: Timeout`` from a SIGALRM handler, wherever the main thread is: inside a long
explored run, that is the program's code, and the sim used to record it as the program's
``error`` (a violation with a replay token, for a program with no bug).  Now an
exception raised by a signal handler stops the search and propagates as the harness's
(`odp_async._runtime.interrupts.from_signal_handler`).  Tried from a user's test file
run by pytest in a fresh process (pytester), as a user runs it.
"""

from __future__ import annotations

import signal
from types import FrameType

import pytest

from odp_async import checkpoint, task_group
from odp_async._runtime.interrupts import from_signal_handler
from odp_async.explore import check

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest

from odp_async import checkpoint, task_group
from odp_async.explore.testing import explore_test


@pytest.mark.timeout(1)
@explore_test(schedules=1000)
async def test_a_slow_correct_program():
    spins = {"n": 0}

    async def busy():
        await checkpoint("start")
        while True:  # pure Python, never yields: the timeout lands here
            spins["n"] += 1

    async with task_group() as tg:
        tg.start_soon(busy)
"""


def test_a_pytest_timeout_is_the_harness_s_not_the_program_s(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_slow=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=60)
    out = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=1)
    assert "Timeout" in out
    # not a finding of the explorer: no violation, no replay token
    assert "--odp-replay" not in out, out
    assert "violation" not in out, out


class _Alarm(BaseException):
    """What a signal handler raises here (pytest's Failed is a BaseException too)."""


def _raise_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Alarm("alarm")


def test_an_exception_from_a_signal_handler_stops_the_search() -> None:
    """In this process: the handler's exception propagates out of `check` (no result,
    no failure recorded); the same exception raised by the program is its error."""

    async def program() -> None:
        async def step() -> None:
            await checkpoint("a")
            signal.raise_signal(signal.SIGUSR1)  # the handler raises inside the task

        async with task_group() as tg:
            tg.start_soon(step)

    previous = signal.signal(signal.SIGUSR1, _raise_alarm)
    try:
        with pytest.raises(_Alarm, match="alarm") as caught:
            check(program, chooser="random", schedules=50)
        assert from_signal_handler(caught.value)
    finally:
        signal.signal(signal.SIGUSR1, previous)

    async def raises_it_itself() -> None:
        raise _Alarm("the program's own")

    result = check(raises_it_itself, chooser="random", schedules=5)
    assert result.failure is not None
    assert result.failure.violation.kind == "error"
    assert "the program's own" in result.failure.violation.detail
