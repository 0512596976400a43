"""A scenario file's run imports only the protocols it runs (trial 17b, finding 4).

The file lists two user protocols; the module of one of them is gone (renamed, removed).
``explore FILE -p THE_OTHER`` and ``replay TOKEN`` of the other still run; a command that
runs every listed protocol (``explore FILE``, ``show FILE``) still refuses the missing one in
one line naming where it is listed.  The protocol module lives in ``tmp_path``; the replay
runs in a fresh process from that directory, as a user's would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRESENT = """
from typing import ClassVar

from odp_async.odp.protocols.naive import Naive


class Sloppy(Naive):
    name: ClassVar[str] = "sloppy-here"
    summary: ClassVar[str] = "naive under another name"
"""


def cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def user(tmp_path: Path) -> Path:
    (tmp_path / "presentproto.py").write_text(PRESENT)
    text = (ROOT / "examples" / "registration-race.toml").read_text().split("[expected]")[0]
    listed = '"goneproto:Other", "presentproto:Sloppy"'
    text = text.replace("[scenario]\n", f"[scenario]\nprotocols = [{listed}]\n", 1)
    (tmp_path / "two.toml").write_text(text)
    return tmp_path


def test_one_protocol_of_a_file_runs_without_the_others_modules(user: Path) -> None:
    argv = ["explore", "two.toml", "-p", "presentproto:Sloppy", "--chooser", "random"]
    done = cli(user, *argv, "--schedules", "300", "--json")
    assert done.returncode == 1, done.stderr  # naive: the race is found
    token = json.loads(done.stdout)["failure"]["replay_token"]
    replayed = cli(user, "replay", token)
    assert replayed.returncode == 1, replayed.stderr
    assert "stale" in replayed.stdout


@pytest.mark.parametrize(
    "argv", [["explore", "two.toml", "--schedules", "5"], ["show", "two.toml"]]
)
def test_running_every_listed_protocol_still_needs_each_module(
    user: Path, argv: list[str]
) -> None:
    done = cli(user, *argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert "two.toml: scenario.protocols[0]: cannot import module 'goneproto'" in line


def test_a_malformed_entry_is_still_refused_when_another_protocol_runs(user: Path) -> None:
    text = (user / "two.toml").read_text().replace('"goneproto:Other"', '"goneproto:"')
    (user / "two.toml").write_text(text)
    done = cli(user, "explore", "two.toml", "-p", "presentproto:Sloppy", "--schedules", "5")
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = done.stderr.splitlines()
    assert "scenario.protocols[0]: protocol reference 'goneproto:' is not of the form" in line


def test_a_misspelt_expectation_of_a_users_protocol_is_offered_the_files_own(
    tmp_path: Path,
) -> None:
    # Trial: a misspelt "module:Class" key of [expected] was offered only the built-in
    # protocols, as if a file's own protocols could not be expected at all.
    (tmp_path / "presentproto.py").write_text(PRESENT)
    text = (ROOT / "examples" / "registration-race.toml").read_text().split("[expected]")[0]
    text = text.replace(
        "[scenario]\n", '[scenario]\nprotocols = ["naive", "presentproto:Sloppy"]\n', 1
    )
    text += '\n[expected]\nnaive = "found"\n"presentproto:Slopy" = "found"\n'
    (tmp_path / "mine.toml").write_text(text)
    done = cli(tmp_path, "explore", "mine.toml", "--schedules", "5")
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = done.stderr.splitlines()
    assert "mine.toml: expected.presentproto:Slopy: unknown protocol 'presentproto:Slopy'" in line
    assert "expected one of scenario.protocols: naive, presentproto:Sloppy" in line
    assert "(did you mean 'presentproto:Sloppy'?)" in line


RAISES = """
from typing import ClassVar

from odp_async.odp.protocols.naive import Naive


class RaisesInInit(Naive):
    name: ClassVar[str] = "raises-in-init"
    summary: ClassVar[str] = "a constructor that raises"

    def __init__(self, ctx, **options):
        raise RuntimeError("boom in init")
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["explore", "mine.toml", "--schedules", "5"],
        ["run", "mine.toml"],
        ["matrix", "--scenario", "mine.toml", "--budget", "5"],
    ],
)
def test_a_listed_protocol_whose_constructor_raises_is_named_where_listed(
    tmp_path: Path, argv: list[str]
) -> None:
    # Trial: the line lost the file's "FILE: scenario.protocols[N]:" and `explore FILE`
    # explored the protocols listed before it first.
    (tmp_path / "raisingproto.py").write_text(RAISES)
    text = (ROOT / "examples" / "registration-race.toml").read_text().split("[expected]")[0]
    text = text.replace(
        "[scenario]\n", '[scenario]\nprotocols = ["naive", "raisingproto:RaisesInInit"]\n', 1
    )
    (tmp_path / "mine.toml").write_text(text)
    done = cli(tmp_path, *argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        "odp-async: error: mine.toml: scenario.protocols[1]: protocol "
        "'raisingproto:RaisesInInit' cannot be built"
    ), line
    assert "RuntimeError: boom in init" in line
