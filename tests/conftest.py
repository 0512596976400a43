"""Shared fixtures: one `runtime` fixture runs a test on the sim, on asyncio and on trio."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, settings

from odp_async._runtime import sim
from tests._usermod import forget, import_user_module

# A test run started in the background (``cmd &`` in a non-interactive shell, ``nohup``)
# inherits SIGINT ignored, and so would every process it starts: the Ctrl-C tests (a real
# SIGINT to a child, the explorer telling Ctrl-C from the program's own
# KeyboardInterrupt) need Python's default handler, as a terminal gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Deterministic by default (CI and local runs alike); HYPOTHESIS_PROFILE=explore for a
# randomized hunt on a developer's machine.
# No check that depends on the machine's speed (too_slow fires on a loaded 2-core box).
settings.register_profile(
    "default",
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _trust_mutmut() -> None:
    """Under mutmut (tools/mutation.sh): its trampolines are a library's wrappers around
    the model's methods, as attrs' generated methods are, so the noted-only walk of a
    run's code (`odp_async._tracked_code`) trusts them as it trusts attrs, instead of
    reading mutmut's own tables as the program's unnoted state (which made every
    noted-only footprint unknown on mutmut's copy, even unmutated), and a model method
    held as a value (a bound method in a world) is mutmut's trampoline, a closure of
    mutmut's, not the program's closure (`track` reported it, and DPOR lost its
    reductions on mutmut's copy)."""
    from odp_async import _tracked_code

    _tracked_code._TRUSTED_TOP = _tracked_code._TRUSTED_TOP | {"mutmut"}
    _tracked_code._WRAPPER_TOP = _tracked_code._WRAPPER_TOP | {"mutmut"}
    _tracked_code.trusted.cache_clear()


if "MUTANT_UNDER_TEST" in os.environ:
    _trust_mutmut()


@attrs.frozen
class Runner:
    """Runs ``fn(*args)`` to completion on one runtime and returns its value.

    On the sim, a deadlock or a step limit raises (`SimResult.unwrap`); `seed` picks the
    schedule.  On asyncio/trio the schedule is whatever the event loop does.
    """

    name: str
    #: A live run still going after this many seconds is a hang: it fails the test
    #: (`TimeoutError`) rather than stalling the suite.  Far above any live test's time
    #: on a loaded machine (milliseconds); the limit catches a lost wake-up or a wait
    #: that never ends, e.g. a mutant of a primitive under ``tools/mutation.sh``.
    hang_limit: float = 30.0

    @property
    def is_sim(self) -> bool:
        return self.name == "sim"

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any, seed: int = 0) -> Any:
        if self.name == "sim":
            return sim.run(fn, *args, seed=seed).unwrap()

        async def guarded() -> Any:
            with anyio.fail_after(self.hang_limit):
                return await fn(*args)

        return anyio.run(guarded, backend=self.name)


@pytest.fixture(params=["sim", "asyncio", "trio"])
def runtime(request: pytest.FixtureRequest) -> Runner:
    return Runner(request.param)


@pytest.fixture(params=["asyncio", "trio"])
def live(request: pytest.FixtureRequest) -> Runner:
    return Runner(request.param)


UserModule = Callable[[str, str], ModuleType]


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[UserModule]:
    """``user_module(source, prefix)``: `source` written to tmp_path as a module of its own
    name and imported (see tests/_usermod.py); sys.path and sys.modules restored after."""
    loaded: list[ModuleType] = []

    def load(source: str, prefix: str = "user") -> ModuleType:
        module = import_user_module(tmp_path, source, prefix, monkeypatch)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        forget(module.__name__)


#: Tests that read how `odp_async.tracked` sees the model's own objects (DPOR's reduction
#: over the noted footprints, the report of untracked state).  mutmut wraps every method
#: it mutates in a trampoline, a closure over its table of mutants, and a closure is state
#: nobody notes: on mutmut's copy (even unmutated) a world holding a bound method of the
#: model (``AddressSpace.lookup``...) has untracked state and every step an unknown
#: footprint, so these fail there whatever the mutant.  Skipped under mutmut only.
NOT_UNDER_MUTMUT: Final = frozenset(
    {
        "tests/model/test_tracked_coverage.py::test_a_built_world_has_nothing_untracked",
        "tests/model/test_tracked_differential.py::test_fault_vs_madvise",
        "tests/model/test_tracked_differential.py::test_a_scenario_file",
        "tests/model/test_world_snapshot.py::"
        "test_dpor_over_tracked_state_is_the_same_on_a_reused_world",
    }
)


#: The per-test time limit (seconds) under mutmut (tools/mutation.sh): its stats run, its
#: clean run and every mutant's.  A test that hangs still fails (the suite's own limit,
#: ``timeout`` in [tool.pytest.ini_options], is 120 s), unless mutmut's CPU-time limit
#: stops it first ("timeout", not killed).
MUTMUT_TIMEOUT: Final = 900


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under mutmut (tools/mutation.sh), skip `NOT_UNDER_MUTMUT` and run the fastest tests
    first: a mutant's run stops at its first failing test (-x), so a killed mutant then
    costs seconds, not the minutes of the exploration tests that also cover the function.
    Durations are mutmut's own (``mutants/mutmut-stats.json``); a test it has not timed yet
    counts as instant.  (mutmut sets ``MUTANT_UNDER_TEST``, empty for its clean run.)"""
    if "MUTANT_UNDER_TEST" not in os.environ:
        return
    skip = pytest.mark.skip(reason="mutmut's trampolines are closures: see NOT_UNDER_MUTMUT")
    # Every test gets `MUTMUT_TIMEOUT`, not the ``--timeout`` of [tool.mutmut]: one worker
    # at ``nice -n 10`` on a loaded machine runs a test many times slower than alone (its
    # stats run, ``MUTANT_UNDER_TEST=stats``, slower still, recording every call), and a
    # test past the limit fails: the stats or clean run as a whole, or a mutant counted
    # as killed by a test that only ran slow.
    for item in items:
        if item.nodeid.partition("[")[0] in NOT_UNDER_MUTMUT:
            item.add_marker(skip)
        item.add_marker(pytest.mark.timeout(MUTMUT_TIMEOUT), append=False)
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    stats = Path("mutmut-stats.json")
    if not stats.is_file():
        return
    durations = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
