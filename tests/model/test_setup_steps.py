"""A scenario's ``setup``: its steps are not a run's (a violation's step, the step list
and the drawing count the run's own), and a plain ``def`` as setup is one clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from odp_async.world import PreparedWorld, run_world
from tests.conftest import UserModule

SETUPS = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario
from odp_async.sync import Mutex

async def long_setup(world):
    for _ in range(300):
        await checkpoint("setting up")

async def flagging_setup(world):
    await long_setup(world)
    world.checker.violation("use-after-free", "seen while setting up")

def plain_setup(world):
    world.file("f", 4)

async def deadlocking(world):
    a, b = Mutex("a"), Mutex("b")

    async def take(x, y):
        async with x:
            await checkpoint("between the locks")
            async with y:
                pass

    async with task_group() as tg:
        tg.start_soon(take, a, b)
        tg.start_soon(take, b, a)

async def quiet(world):
    async def t():
        await checkpoint("a")

    async with task_group() as tg:
        tg.start_soon(t)
        tg.start_soon(t)

DEADLOCK = Scenario("dl", "", deadlocking, ("t",), setup=long_setup)
FLAGGED = Scenario("flagged", "", quiet, ("t",), setup=flagging_setup)
PLAIN = Scenario("plain", "", quiet, ("t",), setup=plain_setup)
"""


def test_a_deadlock_after_a_long_setup_counts_the_runs_own_steps(
    user_module: UserModule,
) -> None:
    mod = user_module(SETUPS, "setup_steps_deadlock")
    found = explore(mod.DEADLOCK, protocol="odp2014", chooser="random", schedules=50)
    assert found.failure is not None
    violation = found.failure.violation
    steps = found.failure.execution.sim.steps
    assert violation.kind == "deadlock"
    assert violation.step == steps  # a deadlock is seen at the run's last step
    assert steps < 300  # the run's own steps: the setup's 300 are not counted in
    text = found.failure.describe()
    assert f"(step {violation.step}," in text
    assert "<== the failure" in text


def test_a_violation_of_the_setup_is_shown_before_the_run(user_module: UserModule) -> None:
    """Before: ``use-after-free (step 301, main)`` in a run of 6 steps."""
    mod = user_module(SETUPS, "setup_steps_flagged")
    found = explore(mod.FLAGGED, protocol="odp2014", chooser="random", schedules=5)
    assert found.failure is not None
    violation = found.failure.violation
    assert violation.step == 0
    assert violation.detail == "seen while setting up (in the setup, at its step 301)"
    assert "step 301" not in found.failure.describe().replace("at its step 301", "")
    prepared = PreparedWorld.build(mod.flagging_setup, "odp2014")
    fresh = run_world(mod.quiet, protocol="odp2014", setup=mod.flagging_setup)
    assert prepared.run(mod.quiet).violations == fresh.violations == (violation,)


def test_a_plain_def_setup_is_one_clear_error(user_module: UserModule) -> None:
    mod = user_module(SETUPS, "setup_steps_plain")
    name = f"{mod.__name__}.plain_setup"
    expected = f"the world's setup {name} is not an async function: it returned None"
    with pytest.raises(InvalidArgument, match=expected) as caught:
        explore(mod.PLAIN, protocol="odp2014", chooser="random", schedules=5)
    assert "\n" not in str(caught.value)
    assert caught.value.__cause__ is None
    with pytest.raises(InvalidArgument, match=expected):
        PreparedWorld.build(mod.plain_setup, "odp2014")
    with pytest.raises(InvalidArgument, match=expected):
        run_world(mod.quiet, setup=mod.plain_setup)
    with pytest.raises(InvalidArgument, match="must be an async function, got 42"):
        PreparedWorld.build(42, "odp2014")  # type: ignore[arg-type]


def test_a_plain_def_setup_from_the_command_line(tmp_path: Path) -> None:
    """In a fresh process: one error line on stderr, exit 2, no traceback."""
    import os
    import shutil

    (tmp_path / "plain_setup_mod.py").write_text(SETUPS)
    cli = shutil.which("odp-async", path=str(Path(sys.executable).parent))
    assert cli is not None
    done = subprocess.run(
        [cli, "explore", "plain_setup_mod:PLAIN", "-p", "odp2014", "--schedules", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("odp-async: error")]
    assert len(errors) == 1, done.stderr
    assert "plain_setup_mod.plain_setup is not an async function" in errors[0]
