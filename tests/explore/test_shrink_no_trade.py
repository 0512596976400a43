"""The shrinker never trades a preemption for length.

A task spins (``while not state["done"]: await checkpoint()``) while two others race for a
lost update.  Without a cap, dropping the preemption that stopped the spinner let it spin
up to the step bound, and the failure then came from the fair continuation after it: a
failure found at step 21 was shown at step 3,011 (1 preemption fewer).  The shrunk run
now fails no later than the found one (random's find, and DPOR's, which let the spinner
spin to half the bound), and the CLI shows it so.  Tried on a user's own module (tmp_path,
imported by name) and the CLI in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async._runtime.choosers import ReplayChooser
from odp_async.explore import check, shrink
from odp_async.explore.target import Target
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER = """
from odp_async import checkpoint, task_group


async def spin_and_lost_update() -> None:
    state = {"done": False, "n": 0}

    async def spinner() -> None:
        while not state["done"]:
            await checkpoint("spin")

    async def bump(pad: int, last: bool) -> None:
        for _ in range(pad):
            await checkpoint("pad")
        v = state["n"]
        await checkpoint("read")
        state["n"] = v + 1
        if last:
            state["done"] = True

    async with task_group() as tg:
        tg.start_soon(spinner)
        tg.start_soon(bump, 1, False)
        tg.start_soon(bump, 8, True)
    assert state["n"] == 2, f"lost update: {state['n']}"
"""

MAX_STEPS = 3000


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "shrink_spin_user")


@pytest.mark.parametrize("chooser", ["random", "dpor", "portfolio"])
def test_the_shrunk_run_is_never_longer(user: ModuleType, chooser: str) -> None:
    result = check(user.spin_and_lost_update, chooser=chooser, max_steps=MAX_STEPS)
    failure = result.failure
    assert failure is not None
    assert failure.shrunk is not None
    s = failure.shrunk
    assert s.steps_after <= s.steps_before, (s.steps_before, s.steps_after)
    assert s.preemptions_after <= s.preemptions_before
    # short and within the bound: not a run the fair continuation finished
    assert s.steps_after < 40
    assert s.execution.sim.outcome == "error"
    assert "after the step bound" not in failure.violation.detail
    replayed = Target.resolve(user.spin_and_lost_update).run(
        ReplayChooser(s.schedule), max_steps=MAX_STEPS
    )
    assert replayed.failure is not None
    assert "lost update" in replayed.failure.detail


def test_shrink_keeps_a_short_find_short(user: ModuleType) -> None:
    """random's find (10 preemptions, failing at step 21) goes to at most 21 steps."""
    found = check(user.spin_and_lost_update, chooser="random", max_steps=MAX_STEPS, shrink=False)
    assert found.failure is not None
    target = Target.resolve(user.spin_and_lost_update)
    before = found.failure.violation.step
    result = shrink(target, found.failure.schedule, "error", max_steps=MAX_STEPS)
    assert result.steps_before == before
    assert result.steps_after <= before
    assert result.preemptions_after <= 2


def test_the_cli_shows_the_short_run(user: ModuleType, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odp_async.cli",
            "explore",
            f"{user.__name__}:spin_and_lost_update",
            "--max-steps",
            str(MAX_STEPS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lost update" in proc.stdout
    assert "after the step bound" not in proc.stdout
    assert "earlier steps not shown" not in proc.stdout  # the whole short run is listed
