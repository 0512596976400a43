"""``odp-async run`` runs the world's workqueue as the sim does, and an error is shown by
its innermost exceptions, never a bare ExceptionGroup (new-user trial 10, defect 2).  User
files in tmp_path, the CLI in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from tests._usermod import pythonpath_env

#: The README's teardown scenario, whose driver queues a work item.
QUEUES_WORK = """
[scenario]
name = "user-teardown"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "subscribe", sub = "kvm", kind = "kvm" },
]

[[actor]]
name = "driver"
ops = [
    { op = "queue_work", work = "teardown", ops = [{ op = "unsubscribe", sub = "kvm" }] },
    { op = "flush_work", work = "teardown" },
]
"""

FAILS_IN_A_GROUP = """
from odp_async import checkpoint, task_group


async def two_errors():
    async def bad(n):
        await checkpoint("about to fail")
        raise ValueError(f"bad value {n}")

    async with task_group() as tg:
        tg.start_soon(bad, 1, name="one")
        tg.start_soon(bad, 2, name="two")
"""


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
    )


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_run_serves_the_workqueue_of_a_scenario_that_queues_work(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "user_teardown.toml"
    path.write_text(QUEUES_WORK)
    done = cli(tmp_path, "run", str(path), "-p", "odp2014", "--backend", backend, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert (data["status"], data["error"], data["violations"]) == ("finished", None, [])


def test_run_of_a_built_in_that_queues_work_on_asyncio(tmp_path: Path) -> None:
    done = cli(tmp_path, "run", "mmput-async-under-lock", "-p", "odp2014", "--backend", "asyncio")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished" in done.stdout


def test_run_shows_the_innermost_errors_not_the_group(tmp_path: Path) -> None:
    (tmp_path / "s9_run_group.py").write_text(FAILS_IN_A_GROUP)
    done = cli(tmp_path, "run", "s9_run_group:two_errors", "--backend", "trio")
    assert done.returncode == ExitCode.VIOLATION, done.stderr
    # the first failure cancels its sibling on a real loop: one leaf (or two) is shown
    assert "ValueError: bad value " in done.stdout, done.stdout
    assert "ExceptionGroup" not in done.stdout
    as_json = cli(tmp_path, "run", "s9_run_group:two_errors", "--backend", "asyncio", "--json")
    error = json.loads(as_json.stdout)["error"]
    assert "ValueError: bad value" in error, error
    assert "ExceptionGroup" not in error, error


def test_run_of_a_file_meant_for_one_protocol_needs_no_protocol(tmp_path: Path) -> None:
    path = tmp_path / "user_teardown.toml"
    path.write_text(QUEUES_WORK)
    done = cli(tmp_path, "run", str(path), "--backend", "trio")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("user-teardown/odp2014 on trio: finished"), done.stdout
