"""Every output names a protocol as it is given on the command line: a user protocol
given as ``-p svmmod:SvmSeq`` (a class whose ``name`` is ``svm-seq``) is
``svmmod:SvmSeq`` in explore's header and result line, its --json ``target``, the
token, the replay, the matrix and a scenario file's table, since that is what one types
to explore or replay it; ``-o`` options follow it, ``odp2014(clamp=false)``.  The
protocol is a module in tmp_path; the CLI runs in a fresh process from there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from odp_async.cli import ExitCode
from odp_async.explore.tokens import decode_token
from tests._usermod import pythonpath_env

PROTOCOL = """
from typing import ClassVar

from odp_async.odp.protocols.naive import Naive
from odp_async.odp.protocols.odp2014 import Odp2014


class SvmSeq(Naive):
    name: ClassVar[str] = "svm-seq"
    summary: ClassVar[str] = "naive under a name no -p takes"


class Clamped(Odp2014):
    name: ClassVar[str] = "my-clamped"
    summary: ClassVar[str] = "odp2014 under another name (option: clamp)"
"""

FILE = """
[scenario]
name = "gpu-fault"
protocols = ["svmmod:SvmSeq", "kvm-seq"]

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
"svmmod:SvmSeq" = "found"
kvm-seq = "clean"
"""


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "svmmod.py").write_text(PROTOCOL)
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )


def test_a_user_protocol_is_named_as_typed_in_explore_replay_and_json(
    tmp_path: Path,
) -> None:
    argv = ("explore", "registration-race", "-p", "svmmod:SvmSeq", "--chooser", "random")
    text = cli(tmp_path, *argv)
    assert text.returncode == ExitCode.VIOLATION, text.stderr
    assert text.stderr.startswith("exploring registration-race/svmmod:SvmSeq with random")
    assert text.stdout.startswith("registration-race/svmmod:SvmSeq: found - ")
    assert "svm-seq" not in text.stdout + text.stderr

    found = cli(tmp_path, *argv, "--json")
    data = json.loads(found.stdout)
    assert data["target"] == "registration-race/svmmod:SvmSeq"
    token = data["failure"]["replay_token"]
    assert decode_token(token).protocol == "svmmod:SvmSeq"

    replayed = cli(tmp_path, "replay", token)
    assert replayed.returncode == ExitCode.VIOLATION, replayed.stderr
    assert replayed.stdout.startswith("registration-race/svmmod:SvmSeq: ")
    as_json = cli(tmp_path, "replay", token, "--json")
    assert json.loads(as_json.stdout)["target"] == "registration-race/svmmod:SvmSeq"


def test_options_are_shown_where_the_protocol_is_named(tmp_path: Path) -> None:
    for protocol in ("odp2014", "svmmod:Clamped"):
        argv = ("explore", "registration-race", "-p", protocol, "-o", "clamp=false")
        found = cli(tmp_path, *argv, "--chooser", "pct", "--seed", "0", "--no-shrink")
        assert found.returncode == ExitCode.VIOLATION, found.stderr
        label = f"registration-race/{protocol}(clamp=false)"
        assert found.stderr.startswith(f"exploring {label} with pct"), found.stderr
        assert found.stdout.startswith(f"{label}: found - "), found.stdout
        token = found.stdout.rsplit("replay: odp-async replay ", 1)[1].split()[0]
        replayed = cli(tmp_path, "replay", token, "--json")
        assert json.loads(replayed.stdout)["target"] == label
    plain = cli(tmp_path, "explore", "registration-race", "-p", "odp2014", "--json")
    assert json.loads(plain.stdout)["target"] == "registration-race/odp2014"


def test_the_matrix_and_a_files_table_name_it_as_typed(tmp_path: Path) -> None:
    (tmp_path / "gpu.toml").write_text(FILE)
    table = cli(tmp_path, "explore", "gpu.toml", "--schedules", "200")
    assert table.returncode == ExitCode.OK, table.stdout + table.stderr
    assert "exploring gpu-fault/svmmod:SvmSeq with portfolio" in table.stderr
    assert "│ svmmod:SvmSeq " in table.stdout
    assert "svm-seq" not in table.stdout + table.stderr

    matrix = cli(
        tmp_path,
        "matrix",
        "--scenario",
        "gpu.toml",
        "-p",
        "svmmod:SvmSeq",
        "--budget",
        "200",
        "--jobs",
        "1",
    )
    assert matrix.returncode == ExitCode.OK, matrix.stdout + matrix.stderr
    assert "cell 1/1 gpu-fault/svmmod:SvmSeq: found" in matrix.stderr.splitlines()
    assert "│ svmmod:SvmSeq " in matrix.stdout
    assert "] gpu-fault/svmmod:SvmSeq: odp2." in matrix.stdout  # the token's line
    as_json = cli(
        tmp_path,
        "matrix",
        "--scenario",
        "gpu.toml",
        "-p",
        "svmmod:SvmSeq",
        "--budget",
        "200",
        "--jobs",
        "1",
        "--json",
    )
    [cell] = json.loads(as_json.stdout)["cells"]
    assert cell["protocol"] == "svmmod:SvmSeq"


def test_a_run_log_keeps_the_target_it_was_written_with(tmp_path: Path) -> None:
    """A log's identity is what it always was (its spec names the protocol as given),
    so a log written before labels named the protocol by its reference still resumes."""
    argv = ("explore", "registration-race", "-p", "svmmod:Clamped", "-o", "clamp=false")
    ran = cli(tmp_path, *argv, "--chooser", "random", "--schedules", "5", "--resume", "r.log")
    assert ran.returncode == ExitCode.VIOLATION, ran.stderr
    identity = json.loads((tmp_path / "r.log").read_text().splitlines()[0])
    assert identity["target"] == "registration-race/my-clamped"
    assert "protocol='svmmod:Clamped', options={'clamp': False}" in identity["spec"]
