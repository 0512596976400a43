"""Recorded runs shared by the report tests (each is run once per session)."""

from __future__ import annotations

import pytest

from odp_async.explore.target import Execution, Target
from odp_async.report import Timeline
from odp_async.scenarios import BUILTIN
from odp_async.sim import RandomChooser, ScriptChooser


@pytest.fixture(scope="session")
def race_execution() -> Execution:
    """The scripted registration race under odp2014: a stale translation at step 39."""
    target = Target.resolve("registration-race", "odp2014")
    script = BUILTIN["registration-race"].script
    return target.run(ScriptChooser(script), max_steps=20_000, trace=True)


@pytest.fixture(scope="session")
def race(race_execution: Execution) -> Timeline:
    return Timeline.from_execution(race_execution, title="registration-race/odp2014")


@pytest.fixture(scope="session")
def lock_order() -> Timeline:
    """classic:lock-order with seed 0: AB and BA deadlock at step 7."""
    target = Target.resolve("classic:lock-order")
    ex = target.run(RandomChooser(0), max_steps=20_000, trace=True)
    assert ex.sim.outcome == "deadlock"
    return Timeline.from_execution(ex, title=target.label)
