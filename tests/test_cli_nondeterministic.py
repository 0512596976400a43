"""A user program that keeps state between runs (the new-user trial's ``leak.py``, run in
a fresh process): its runs do not start from the same state, so `odp-async explore` says
so and gives no verdict (inconclusive, exit 5, naming the global), never a traceback.  The
failing schedule it ran into, whose shrinking met a replay that ran otherwise, is shown
unshrunk under that verdict (as one that may come of that state), never dropped."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.test_cli_user import cli_cmd, fresh_env

LEAKY = """
from odp_async import checkpoint, task_group
from odp_async.scenarios import Scenario

STATE = {"n": 0}  # never reset between runs

async def leaky():
    async def bump():
        seen = STATE["n"]
        await checkpoint("between")
        STATE["n"] = seen + 1
    async with task_group() as tg:
        tg.start_soon(bump)
        tg.start_soon(bump)
    assert STATE["n"] % 2 == 0

S = Scenario("leaky", "", leaky, (), needs_world=False)
"""


def test_a_failure_that_does_not_replay_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "leakymod.py").write_text(LEAKY)
    done = subprocess.run(
        cli_cmd("explore", "leakymod:S", "--chooser", "random", "--schedules", "200"),
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("odp-async:")]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("leaky: inconclusive - ")
    claim = lines[1]
    assert claim.startswith("inconclusive: the program's runs shared state: module global 'STATE'")
    assert "(one failing, error, at schedule " in claim
    assert "which may come of that state" in claim
    assert any(line.startswith("found at schedule ") for line in lines)
    assert not any(line.startswith("shrunk: ") for line in lines)
