"""Inputs a new user's trial (21c) found accepted, crashing or shown wrong, each run as
the user ran it: ``odp-async`` in a fresh process on files outside the package.  Two
replay outputs naming one file (f1), a ``--resume`` log line nested 100,000 deep (f2), a
scenario argument naming a path that is not a ``.toml`` file (f4), a resume log line
edited by hand (f8).  Each is exit 2 and one line naming the value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from tests._usermod import lost_update_source, module_name

pytestmark = pytest.mark.timeout(300)


def cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=280,
        check=False,
    )


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == ExitCode.USAGE, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("odp-async: error: "), proc.stderr
    assert proc.stderr.count("odp-async: error") == 1
    for needle in needles:
        assert needle in last, last
    return last


@pytest.fixture
def user(tmp_path: Path) -> str:
    name = module_name("trial21c", tmp_path)
    (tmp_path / f"{name}.py").write_text(lost_update_source("b1", "b2"))
    return f"{name}:lost_update"


def token_of(tmp_path: Path, ref: str) -> str:
    found = cli(tmp_path, "explore", ref, "--chooser", "random", "--json")
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    token: str = json.loads(found.stdout)["failure"]["replay_token"]
    return token


# --- f1: two outputs, one file ---------------------------------------------------------


def test_two_replay_outputs_naming_one_file_are_refused(tmp_path: Path, user: str) -> None:
    token = token_of(tmp_path, user)
    (tmp_path / "sub").mkdir()
    for argv, needle in [
        (["--png", "same.out", "--html", "same.out"], "--png and --html both name same.out"),
        (["--trace", "x", "--svg", "x"], "--trace and --svg both name x"),
        (["--html", "x", "--trace", "./x"], "--trace and --html both name ./x and x"),
        (["--svg", "sub/../y", "--png", "y"], "--png and --svg both name y and sub/../y"),
    ]:
        one_line(cli(tmp_path, "replay", token, *argv), needle)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".py") == ["sub"]
    os.symlink("real.html", tmp_path / "link.html")
    one_line(
        cli(tmp_path, "replay", token, "--html", "link.html", "--png", "real.html"),
        "both name real.html and link.html",
    )
    good = cli(tmp_path, "replay", token, "--png", "a.png", "--html", "a.html")
    assert good.returncode == ExitCode.VIOLATION, good.stderr
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


# --- f2: a log line nested past the JSON parser's depth ---------------------------------


def test_a_deeply_nested_resume_log_line_is_one_line(tmp_path: Path, user: str) -> None:
    argv = ("explore", user, "--chooser", "random", "--schedules", "5", "--resume", "f2.log")
    first = cli(tmp_path, *argv)
    assert first.returncode == ExitCode.VIOLATION, first.stderr
    with (tmp_path / "f2.log").open("a") as log:
        log.write("[" * 100_000 + "]" * 100_000 + "\n")
    lines = len((tmp_path / "f2.log").read_text().splitlines())
    one_line(cli(tmp_path, *argv), f"f2.log line {lines} is not a run log line")


# --- f4: a scenario argument that names a path, not a .toml file ------------------------

SCENARIO = """\
[scenario]
name = "mine"

[setup]
ops = [{ op = "mmap", start = 0x0, pages = 8 }, { op = "populate", start = 0x0, pages = 8 }]
[[actor]]
name = "a"
ops = [{ op = "register", mr = "A", start = 0x0, pages = 8 }]
[[actor]]
name = "b"
ops = [{ op = "madvise", start = 0x0, pages = 8 }]
"""


@pytest.mark.parametrize("command", ["explore", "show", "matrix"])
def test_a_scenario_path_that_is_not_a_toml_file_says_what_it_is(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "okfile").write_text(SCENARIO)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "bank.py").write_text("async def transfer():\n    pass\n")
    (tmp_path / "somedir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    cases = {
        "okfile": "okfile is a file, but a scenario file's name ends in .toml",
        "./okfile": "./okfile is a file, but a scenario file's name ends in .toml",
        "mine/bank.py": "mine/bank.py is a Python file, not a scenario file (.toml): "
        "name its function or scenario as mine.bank:NAME",
        str(tmp_path / "mine" / "bank.py"): f"bank:NAME, with {tmp_path / 'mine'} on PYTHONPATH",
        "somedir": "somedir is a directory, not a scenario file (.toml)",
        "fifo": "fifo is a FIFO, not a scenario file (.toml)",
        "/dev/null": "/dev/null is a character device, not a scenario file (.toml)",
        "no/such": "no/such: no such scenario file",
    }
    for name, needle in cases.items():
        argv = {
            "explore": ["explore", name, "-p", "naive"],
            "show": ["show", name],
            "matrix": ["matrix", "--scenario", name, "--budget", "1"],
        }[command]
        last = one_line(cli(tmp_path, *argv), needle)
        assert "registration-race" not in last  # not the list of built-ins
    typo = one_line(cli(tmp_path, "show", "registation-race"), "did you mean")
    assert "unknown scenario 'registation-race'" in typo


# --- f8: a resume log line edited by hand -----------------------------------------------


def test_an_edited_resume_log_line_is_refused_naming_it(tmp_path: Path, user: str) -> None:
    argv = (
        "explore",
        user,
        "--chooser",
        "random",
        "--schedules",
        "50",
        "--all-failures",
        "--resume",
        "f8.log",
        "--json",
    )
    first = cli(tmp_path, *argv)
    assert first.returncode == ExitCode.VIOLATION, first.stderr
    log = tmp_path / "f8.log"
    lines = log.read_text().splitlines()
    number, data = next(
        (n, json.loads(line)) for n, line in enumerate(lines[1:], 2) if json.loads(line)["failing"]
    )
    data["failing"] = []
    lines[number - 1] = json.dumps(data)
    log.write_text("\n".join(lines) + "\n")
    one_line(cli(tmp_path, *argv), f"f8.log line {number} fails its checksum")
    data.pop("crc")
    lines[number - 1] = json.dumps(data)
    log.write_text("\n".join(lines) + "\n")
    one_line(cli(tmp_path, *argv), f"f8.log line {number} has no checksum")
    log.unlink()
    again = cli(tmp_path, *argv)  # spacing is not content: a line re-spaced still reads
    lines = log.read_text().splitlines()
    log.write_text(
        "\n".join(
            [
                lines[0],
                *(
                    json.dumps(json.loads(x), indent=None, separators=(", ", ":  "))
                    for x in lines[1:]
                ),
            ]
        )
        + "\n"
    )
    resumed = cli(tmp_path, *argv)
    assert resumed.returncode == ExitCode.VIOLATION, resumed.stderr
    assert json.loads(resumed.stdout)["failing"] == json.loads(again.stdout)["failing"]
