"""A program's failure whose exception cannot be printed is still the program's failure
(trial21a f11, f11b): an exception whose ``__str__`` raises, and an `ExceptionGroup`
nested deeper than the recursion limit, are reported as the program's ``error`` (the
message as ``<str() raised RuntimeError>``) by ``explore`` (jobs 1 and 2, text and
``--json``), ``replay`` of its token, ``check`` and the pytest plugin.  They used to crash
the explorer (exit 3, "internal error", the failure lost; ``check`` raised the
``RuntimeError``).  Everything runs from a user module outside the package, in a fresh
process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests._usermod import module_name, pythonpath_env

USER = """
import odp_async as oa
from odp_async.explore import SharedCell


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("str boom")


async def lost_update():
    c = SharedCell(0, "c")

    async def w():
        v = c.get()
        await oa.checkpoint()
        c.set(v + 1)

    async with oa.task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    if c.get() != 2:
        raise BadStr()


async def deep():
    await oa.checkpoint()
    e = ValueError("leaf")
    for i in range(2000):
        e = ExceptionGroup(f"g{i}", [e])
    raise e
"""

SHOWN = "BadStr: <str() raised RuntimeError>"


@pytest.fixture
def user(tmp_path: Path) -> str:
    name = module_name("userbadstr", tmp_path)
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER))
    return name


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_explore_reports_the_failure_and_its_token_replays(
    user: str, tmp_path: Path, jobs: str
) -> None:
    base = ("-m", "odp_async.cli", "explore", f"{user}:lost_update", "--chooser", "random")
    text = _run(tmp_path, *base, "--jobs", jobs)
    assert text.returncode == 1, text.stdout + text.stderr
    assert "internal error" not in text.stderr
    assert f"raised:\n  {SHOWN}\n" in text.stdout
    proc = _run(tmp_path, *base, "--jobs", jobs, "--json")
    assert proc.returncode == 1, proc.stderr
    failure = json.loads(proc.stdout)["failure"]
    assert failure["kind"] == "error"
    assert failure["detail"].startswith(SHOWN)
    replay = _run(tmp_path, "-m", "odp_async.cli", "replay", failure["found_token"])
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert SHOWN in replay.stdout
    deep = _run(tmp_path, "-m", "odp_async.cli", "explore", f"{user}:deep", "--jobs", jobs)
    assert deep.returncode == 1, deep.stdout + deep.stderr[-2000:]
    assert "ValueError: leaf" in deep.stdout


API = """
import sys
from odp_async.errors import ExplorationFailed
from odp_async.explore import check

mod = sys.argv[1]
r = check(f"{mod}:lost_update", chooser="random", schedules=50)
print(r.verdict, r.failure.execution.failure.detail)
try:
    check(f"{mod}:lost_update", chooser="random", schedules=50, raise_on_failure=True)
except ExplorationFailed as e:
    print("raised", "<str() raised RuntimeError>" in str(e))
r = check(f"{mod}:deep", schedules=5)
print(r.verdict, r.failure.execution.failure.detail)
"""


def test_check_reports_the_failure(user: str, tmp_path: Path) -> None:
    (tmp_path / "api.py").write_text(API)
    proc = _run(tmp_path, "api.py", user)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"found {SHOWN}"), lines
    assert lines[1] == "raised True"
    assert lines[2].startswith("found ValueError: leaf"), lines


PLUGIN = """
from odp_async.explore.testing import explore_test

from {module} import lost_update


@explore_test(chooser="random", schedules=50)
async def test_it():
    await lost_update()
"""


def test_the_plugin_reports_the_failure(user: str, tmp_path: Path) -> None:
    (tmp_path / "test_badstr.py").write_text(PLUGIN.format(module=user))
    proc = _run(
        tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--odp-database=none", "-rA"
    )
    assert proc.returncode == 1, proc.stdout
    assert "ExplorationFailed" in proc.stdout
    assert SHOWN in proc.stdout
