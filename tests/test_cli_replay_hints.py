"""Replay errors say what to do (new-user trial 18b, findings 6 and the replay mismatch):
a token of a scenario file whose own protocol cannot be imported names that protocol (and
its entry of the file's ``scenario.protocols``, which is the right one); a replay against
edited code says the code or the scenario probably changed.  The user module and file are
written to tmp_path; every command runs in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from odp_async.cli import ExitCode
from tests._usermod import lost_update_source

PROTOCOLS = """
from typing import ClassVar

from odp_async import checkpoint
from odp_async.odp.protocols.naive import Naive


class First(Naive):
    name: ClassVar[str] = "u-first"
    summary: ClassVar[str] = "naive under another name"


class Second(Naive):
    name: ClassVar[str] = "u-second"
    summary: ClassVar[str] = "naive under yet another name"

    async def fault_begin(self, umem, rng):
        EXTRA
        return await super().fault_begin(umem, rng)
"""

ROOT = Path(__file__).resolve().parent.parent


def cli(cwd: Path, *argv: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _user(tmp_path: Path, extra: str = "pass") -> Path:
    (tmp_path / "twoprotos.py").write_text(PROTOCOLS.replace("EXTRA", extra))
    text = (ROOT / "examples" / "registration-race.toml").read_text().split("[expected]")[0]
    listed = '"naive", "kvm-seq", "twoprotos:First", "twoprotos:Second"'
    text = text.replace("[scenario]\n", f"[scenario]\nprotocols = [{listed}]\n", 1)
    (tmp_path / "mine.toml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return elsewhere


def _token(tmp_path: Path, protocol: str) -> str:
    argv = ["explore", "mine.toml", "-p", protocol, "--chooser", "random", "--json"]
    done = cli(tmp_path, *argv, "--schedules", "300", path=tmp_path)
    assert done.returncode == ExitCode.VIOLATION, done.stderr
    token: str = json.loads(done.stdout)["failure"]["replay_token"]
    return token


def test_a_replay_without_the_tokens_protocol_module_names_that_protocol(
    tmp_path: Path,
) -> None:
    elsewhere = _user(tmp_path)
    token = _token(tmp_path, "twoprotos:Second")
    for command in ("replay", "shrink"):
        done = cli(elsewhere, command, token)  # no PYTHONPATH, another directory
        assert done.returncode == ExitCode.USAGE, (done.stdout, done.stderr)
        (line,) = done.stderr.splitlines()
        assert line.startswith(
            "odp-async: error: the token's protocol 'twoprotos:Second' "
            "(scenario.protocols[3] of mine.toml) cannot be loaded: cannot import module "
            "'twoprotos'"
        ), line
        assert "PYTHONPATH" in line
    # a built-in protocol's token of the same file needs none of the file's modules
    naive = _token(tmp_path, "naive")
    done = cli(elsewhere, "replay", naive)
    assert done.returncode == ExitCode.VIOLATION, done.stderr
    # with the module on the path, it replays
    done = cli(elsewhere, "replay", token, path=tmp_path)
    assert done.returncode == ExitCode.VIOLATION, done.stderr


def test_a_replay_of_a_file_token_against_an_edited_protocol_says_the_code_changed(
    tmp_path: Path,
) -> None:
    _user(tmp_path)
    token = _token(tmp_path, "twoprotos:Second")
    _user(tmp_path, "for _ in range(40):\n            await checkpoint('new')")
    done = cli(tmp_path, "replay", token, path=tmp_path)
    assert done.returncode == ExitCode.REPLAY_MISMATCH, (done.stdout, done.stderr)
    (line,) = done.stderr.splitlines()
    assert line.startswith("odp-async: replay mismatch: "), line
    assert line.endswith(
        "the code under test (a protocol, a subscriber, odp_async) probably changed since "
        "the token was made"
    ), line


def test_a_replay_of_an_edited_function_says_the_code_or_scenario_changed(
    tmp_path: Path,
) -> None:
    (tmp_path / "racy_mod.py").write_text(lost_update_source("a", "b"))
    argv = ["explore", "racy_mod:lost_update", "--chooser", "random", "--json"]
    done = cli(tmp_path, *argv, path=tmp_path)
    assert done.returncode == ExitCode.VIOLATION, done.stderr
    token = json.loads(done.stdout)["failure"]["replay_token"]
    source = lost_update_source("a", "b", "c")  # a third task: more choices to make
    (tmp_path / "racy_mod.py").write_text(source)
    done = cli(tmp_path, "replay", token, path=tmp_path)
    assert done.returncode == ExitCode.REPLAY_MISMATCH, (done.stdout, done.stderr)
    (line,) = done.stderr.splitlines()
    assert "the code or the scenario probably changed since the token was made" in line
