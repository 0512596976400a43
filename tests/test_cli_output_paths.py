"""An output path the CLI cannot write to is refused before any work, in one line (exit
2): an empty one (``--html ""``, which click takes for a value and which used to write
nothing, silently), and a --resume log in a directory that does not exist (which used to
print the "exploring ..." line first)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from tests._usermod import forget, pythonpath_env, write_user_module

PROGRAM = """
from odp_async import Mutex, checkpoint, task_group


async def lost_update():
    box = {"n": 0}

    async def bump():
        n = box["n"]
        await checkpoint("read")
        box["n"] = n + 1

    async with task_group() as tg:
        tg.start_soon(bump, name="b1")
        tg.start_soon(bump, name="b2")
    assert box["n"] == 2, box
"""


@pytest.fixture
def program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = write_user_module(tmp_path, PROGRAM, "outpaths", monkeypatch)
    yield name
    forget(name)


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        timeout=300,
        check=False,
    )


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == ExitCode.USAGE, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_replay_refuses_an_empty_output_path(tmp_path: Path, program: str) -> None:
    found = cli(tmp_path, "explore", f"{program}:lost_update", "--chooser", "random", "--json")
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    import json

    token = json.loads(found.stdout)["failure"]["replay_token"]
    for option in ("--html", "--png", "--trace", "--svg", "--scenario-file"):
        one_line(cli(tmp_path, "replay", token, option, ""), option, "empty")
    written = tmp_path / "out.html"
    good = cli(tmp_path, "replay", token, "--html", str(written))
    assert good.returncode == ExitCode.VIOLATION, good.stderr
    assert written.stat().st_size > 0


def test_resume_in_a_missing_directory_is_one_line(tmp_path: Path, program: str) -> None:
    log = tmp_path / "no" / "such" / "run.log"
    proc = cli(tmp_path, "explore", f"{program}:lost_update", "--resume", str(log))
    one_line(proc, "--resume", str(log.parent))
    assert "exploring" not in proc.stderr
    one_line(cli(tmp_path, "explore", f"{program}:lost_update", "--resume", ""), "--resume")


def test_replay_refuses_a_suffix_naming_another_format(tmp_path: Path, program: str) -> None:
    """``replay --png x.jpg`` wrote PNG data into a .jpg file (and ``--svg y.png`` SVG
    into a .png): a name whose suffix names another format is refused, nothing written."""
    found = cli(tmp_path, "explore", f"{program}:lost_update", "--chooser", "random", "--json")
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    import json

    token = json.loads(found.stdout)["failure"]["replay_token"]
    for option, name, wants in (
        ("--png", "x.jpg", ".png"),
        ("--svg", "y.png", ".svg"),
        ("--html", "z.svg", ".html"),
        ("--trace", "t.png", ".json"),
    ):
        one_line(cli(tmp_path, "replay", token, option, str(tmp_path / name)), option, name, wants)
        assert not (tmp_path / name).exists()
    # the format's own suffix (any case), .svg for --png, or no suffix at all: written
    outputs = {"--png": "A.PNG", "--svg": "race", "--html": "r.htm", "--trace": "t.json"}
    argv = [arg for option, name in outputs.items() for arg in (option, str(tmp_path / name))]
    good = cli(tmp_path, "replay", token, *argv)
    assert good.returncode == ExitCode.VIOLATION, good.stderr
    assert (tmp_path / "A.PNG").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "race").read_text().lstrip().startswith(("<?xml", "<svg"))
    as_svg = cli(tmp_path, "replay", token, "--png", str(tmp_path / "p.svg"))
    assert as_svg.returncode == ExitCode.VIOLATION, as_svg.stderr
