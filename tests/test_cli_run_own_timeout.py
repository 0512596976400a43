"""``odp-async run`` tells its own wall limit apart from a TimeoutError of the program.

New-user trial 16a, defect 2: a program raising TimeoutError (its own ``raise``, or its own
``fail_after`` expiring) was reported as the run's hang guard firing: "did not finish
within 10.0s (a deadlock, a livelock, ...)" after 1 s, ``"status": "timeout"``.  The program's
TimeoutError is its error, shown like any exception with the line that raised it; only
the run's own limit (`RunTimeout`) is a timeout.  User modules in tmp_path, the CLI in a
fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async._runtime import run_live
from odp_async.cli import ExitCode
from odp_async.errors import RunTimeout
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

PROGRAMS = """\
import odp_async as oa


async def raises_timeout():
    raise TimeoutError("my own timeout, immediately")


async def deadline():
    with oa.fail_after(0.01):
        await oa.sleep(60)


async def hangs():
    await oa.sleep(60)
"""


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "s14_own_timeout.py").write_text(PROGRAMS)
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "run", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
    )


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
@pytest.mark.parametrize(("target", "line"), [("raises_timeout", 5), ("deadline", 9)])
def test_the_programs_own_timeout_error_is_its_error(
    tmp_path: Path, backend: str, target: str, line: int
) -> None:
    done = cli(tmp_path, f"s14_own_timeout:{target}", "--backend", backend)
    assert done.returncode == ExitCode.VIOLATION, done.stderr
    assert "did not finish" not in done.stdout, done.stdout
    assert f"{target} on {backend}: TimeoutError" in done.stdout, done.stdout
    assert f"(at s14_own_timeout.py:{line})" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("target", "backend", "status"),
    [
        ("raises_timeout", "asyncio", "error"),
        ("deadline", "trio", "error"),
        ("hangs", "asyncio", "timeout"),
    ],
)
def test_json_says_error_or_timeout(
    tmp_path: Path, target: str, backend: str, status: str
) -> None:
    done = cli(
        tmp_path, f"s14_own_timeout:{target}", "--backend", backend, "--timeout", "0.2", "--json"
    )
    assert done.returncode == ExitCode.VIOLATION, done.stderr
    as_json = json.loads(done.stdout)
    assert as_json["status"] == status
    assert as_json["error"].startswith("RunTimeout" if status == "timeout" else "TimeoutError")


def test_the_runs_own_limit_is_a_timeout(tmp_path: Path) -> None:
    done = cli(tmp_path, "s14_own_timeout:hangs", "--backend", "trio", "--timeout", "0.2")
    assert done.returncode == ExitCode.VIOLATION, done.stderr
    assert "hangs on trio: did not finish within 0.2s" in done.stdout, done.stdout
    # not only "a deadlock?": a task spinning on checkpoints never finishes either
    assert "(a deadlock, a livelock, or a run longer than that" in done.stdout


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_run_live_raises_run_timeout_only_for_its_limit(
    user_module: UserModule, backend: str
) -> None:
    programs = user_module(PROGRAMS, "s14_own_timeout_lib")
    with pytest.raises(RunTimeout, match=r"did not finish within 0\.05s"):
        run_live(programs.hangs, backend=backend, timeout=0.05)
    for own in (programs.raises_timeout, programs.deadline):
        with pytest.raises(TimeoutError) as caught:
            run_live(own, backend=backend, timeout=60)
        assert not isinstance(caught.value, RunTimeout)
