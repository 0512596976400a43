"""A scenario file's own ``lock``/``unlock`` mistakes are usage errors, never a verdict
(new-user trial 18b, finding 4): an ``unlock`` of a lock its task does not hold, a
``lock`` taken again by its holder, a lock still held when its task ends, a ``fault`` of
the MR its task holds locked (trial: a self-deadlock reported as each protocol's
``deadlock``).  The reader
refuses them per task (the setup, an actor, a work item) with one line naming the key.
(A run cannot make a lock step's MR name another MR between a task's ``lock`` and
``unlock``: the model refuses a ``register`` of a registered name, and a ``deregister``
waits for the MR's mutex.)  A protocol's own hook releasing a lock it does not hold stays
the protocol's ``error``.  The files (and the user protocol) are written to tmp_path; the
CLI runs in a fresh process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.explore import explore
from odp_async.scenarios.files import ScenarioFileError, read_scenario
from tests._usermod import pythonpath_env

HEAD = """
[scenario]
name = "locks"
protocols = ["naive"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "register", mr = "B", start = 0x0, pages = 4 },
    SETUP
]
"""

ACTOR = """
[[actor]]
name = "{name}"
ops = [{ops}]
"""

LOCK = '{ op = "lock", mr = "B" }'
UNLOCK = '{ op = "unlock", mr = "B" }'
SLEEP = '{ op = "sleep", seconds = 0 }'
FAULT = '{ op = "fault", mr = "B", address = 0x1000 }'
CPU_FAULT = '{ op = "cpu_fault", address = 0x1000, write = true }'


def _file(tmp_path: Path, actors: dict[str, list[str]], setup: list[str] = ()) -> Path:
    text = HEAD.replace("SETUP", ", ".join(setup))
    for name, ops in actors.items():
        text += ACTOR.format(name=name, ops=", ".join(ops))
    path = tmp_path / "locks.toml"
    path.write_text(text)
    return path


def _cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = pythonpath_env(cwd)  # the user's modules first, then this checkout's odp_async
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("actors", "setup", "key", "fragment"),
    [
        # the trial's two files: an unlock with no lock, a lock never unlocked
        ({"f": [UNLOCK]}, [], "actor[0].ops[0].op", "actor 'f' unlocks MR B's umem_mutex, "),
        ({"f": [LOCK]}, [], "actor[0].ops[0].op", "never unlocks it"),
        ({"f": [SLEEP, UNLOCK, LOCK]}, [], "actor[0].ops[1].op", "does not hold at this point"),
        ({"f": [LOCK, SLEEP, LOCK]}, [], "actor[0].ops[2].op", "not reentrant"),
        # locked in one task, unlocked in another
        (
            {"f": [LOCK, SLEEP], "g": [UNLOCK]},
            [],
            "actor[1].ops[0].op",
            "actor 'f' locks it (actor[0].ops[0])",
        ),
        ({"f": [SLEEP]}, [LOCK], "setup.ops[2].op", "the setup locks"),
        # a fault of the MR its task holds: the fault's commit waits for that mutex
        (
            {"f": [SLEEP, LOCK, FAULT, UNLOCK]},
            [],
            "actor[0].ops[2].op",
            "actor 'f' faults MR B while it holds its umem_mutex (since actor[0].ops[1])",
        ),
        (
            {"f": [f'{{ op = "queue_work", work = "w", ops = [{LOCK}] }}']},
            [],
            "actor[0].ops[0].ops[0].op",
            "work 'w' locks",
        ),
    ],
)
def test_the_reader_refuses_the_files_own_lock_mistakes(
    tmp_path: Path, actors: dict[str, list[str]], setup: list[str], key: str, fragment: str
) -> None:
    path = _file(tmp_path, actors, setup)
    with pytest.raises(ScenarioFileError) as info:
        read_scenario(path)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{path}: {key}: ")
    assert "\n" not in str(info.value)


def test_balanced_locks_are_accepted(tmp_path: Path) -> None:
    work = f'{{ op = "queue_work", work = "w", ops = [{LOCK}, {SLEEP}, {UNLOCK}] }}'
    path = _file(
        tmp_path,
        {
            "f": [LOCK, SLEEP, UNLOCK, LOCK, UNLOCK],
            "g": [LOCK, UNLOCK],
            "h": [work],
            # a CPU fault takes no region's mutex; a fault after the unlock waits for none
            "i": [LOCK, CPU_FAULT, UNLOCK, FAULT],
        },
        [LOCK, UNLOCK],
    )
    read_scenario(path)
    assert explore(str(path), protocol="naive", schedules=50).failure is None


def test_the_cli_says_usage_error_in_a_fresh_process(tmp_path: Path) -> None:
    for ops, fragment in (
        ([UNLOCK], "does not hold"),
        ([LOCK], "never unlocks"),
        ([FAULT, LOCK, FAULT, UNLOCK], "ops[2].op: actor 'f' faults MR B while it holds"),
    ):
        _file(tmp_path, {"f": ops})
        done = _cli(tmp_path, "explore", "locks.toml", "--schedules", "30")
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert line.startswith("odp-async: error: locks.toml: actor[0].ops["), line
        assert fragment in line
        assert "deadlock" not in done.stdout


PROTOCOL = """
from typing import ClassVar

from odp_async.odp.protocols.naive import Naive


class Unbalanced(Naive):
    name: ClassVar[str] = "u-unbalanced"
    summary: ClassVar[str] = "releases the MR's mutex it never took"

    async def fault_commit(self, umem, rng, token, pages):
        umem.mutex.release()  # the protocol's own mistake
        return await super().fault_commit(umem, rng, token, pages)
"""

PROTOCOL_FILE = """
[scenario]
name = "hook-unlocks"
protocols = ["naive", "lockproto:Unbalanced"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "register", mr = "B", start = 0x0, pages = 4 },
]

[[actor]]
name = "holder"
ops = [{ op = "lock", mr = "B" }, { op = "sleep", seconds = 0 }, { op = "unlock", mr = "B" }]

[[actor]]
name = "fault"
ops = [{ op = "fault", mr = "B", address = 0x0 }]

[expected]
"lockproto:Unbalanced" = "error"
"""


def test_a_protocol_hook_releasing_a_lock_it_does_not_hold_is_the_protocols_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "lockproto.py").write_text(PROTOCOL)
    (tmp_path / "hook.toml").write_text(PROTOCOL_FILE)
    done = _cli(tmp_path, "explore", "hook.toml", "--schedules", "50")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "2/2 protocols as expected" in done.stdout
    assert "ProtocolViolation" in done.stdout
    assert "does not hold" in done.stdout
