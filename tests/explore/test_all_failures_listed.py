"""``--all-failures`` (``stop_on_first=False``) lists each failing schedule with its own
kind and replay token (text and --json), not only the first: every one listed replays
to the kind it is listed with.  The schedules run in worker processes list the same
failures as a serial search.  A user's module outside the package, the CLI in a fresh
process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.explore import explore, replay
from tests._usermod import pythonpath_env, write_user_module

#: `FAILURES_LISTED`: how many failures are listed with their tokens.
LISTED = 20

#: A lost update (an ``error``) on some schedules, an ABBA ``deadlock`` on others.
SOURCE = """
from odp_async import checkpoint, task_group
from odp_async.sync import Mutex


async def mixed():
    a, b = Mutex("a"), Mutex("b")
    state = {"x": 0}

    async def worker(first, second):
        seen = state["x"]
        await checkpoint("read x")
        state["x"] = seen + 1
        async with first:
            await checkpoint("between")
            async with second:
                pass

    async with task_group() as tg:
        tg.start_soon(worker, a, b, name="p")
        tg.start_soon(worker, b, a, name="q")
    assert state["x"] == 2, f"lost update: x == {state['x']}"
"""


def test_each_listed_failure_carries_its_kind_and_a_token_that_replays_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, SOURCE, "allfail", monkeypatch)
    argv = [f"{name}:mixed", "--chooser", "random", "--schedules", "60", "--all-failures"]

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "odp_async.cli", "explore", *argv, *extra],
            capture_output=True,
            text=True,
            env=pythonpath_env(tmp_path),
            timeout=300,
        )

    found = cli("--json")
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    data = json.loads(found.stdout)
    listed = data["failures"]
    assert [f["schedule_index"] for f in listed] == data["failing"][:LISTED]
    assert {f["kind"] for f in listed} == {"error", "deadlock"}  # each its own
    assert all(f["found_by"] == "random" and f["no_token"] is None for f in listed)
    assert listed[0]["token"] == data["failure"]["found_token"]
    for f in listed:
        failure = replay(f["token"]).failure  # type: ignore[attr-defined]
        assert failure is not None
        assert failure.kind == f["kind"]

    text = cli().stdout.splitlines()
    lines = [line for line in text if line.startswith("  schedule ")]
    assert lines == [
        f"  schedule {f['schedule_index']}: {f['kind']} (found by random): "
        f"odp-async replay {f['token']}"
        for f in listed
    ]
    assert re.fullmatch(r"\d+ failing schedules: [\d, .]+", text[text.index(lines[0]) - 1])


def test_workers_list_the_failures_a_serial_search_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, SOURCE, "allfailjobs", monkeypatch)
    monkeypatch.setenv("PYTHONPATH", pythonpath_env(tmp_path)["PYTHONPATH"])
    runs = [
        explore(f"{name}:mixed", chooser="random", schedules=600, stop_on_first=False, jobs=j)
        for j in (1, 2)
    ]
    assert runs[0].failing == runs[1].failing
    assert len(runs[0].failures) == LISTED
    assert runs[0].failures == runs[1].failures
    assert all(f.token is not None for f in runs[1].failures)
    assert explore(f"{name}:mixed", chooser="random", schedules=60).failures == ()


SCENARIO_FILE = """
[scenario]
name = "fault-vs-madvise"
protocols = ["naive", "kvm-seq"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 8 },
    { op = "populate", start = 0x0, pages = 8 },
    { op = "register", mr = "G", start = 0x0, pages = 8 },
]

[[actor]]
name = "fault"
ops = [{ op = "fault", mr = "G", address = 0x4000, write = true }]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x4000, pages = 2 }]

[[actor]]
name = "dma"
after = ["fault"]
ops = [{ op = "dma", mr = "G", address = 0x4000 }]

[expected]
naive = "found"
kvm-seq = "clean"
"""


def test_a_scenario_files_rows_list_their_failures_too(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(SCENARIO_FILE)
    argv = ["explore", "mine.toml", "--chooser", "random", "--schedules", "40", "--all-failures"]
    run = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == ExitCode.OK, run.stdout + run.stderr
    out = run.stdout.splitlines()
    [head] = [line for line in out if line.startswith("naive: ") and "failing schedule" in line]
    indices = [int(i) for i in head.split(": ", 2)[2].split(", ")]
    listed = [line for line in out if line.startswith("  schedule ")]
    assert [int(line.split()[1].rstrip(":")) for line in listed] == indices[:LISTED]
    for line in listed:
        kind = line.split(": ")[1].split(" (")[0]
        token = line.rsplit("odp-async replay ", 1)[1]
        failure = replay(token).failure  # type: ignore[attr-defined]
        assert failure is not None
        assert failure.kind == kind
    assert not any(line.startswith("kvm-seq: ") for line in out)
