"""``odp-async run FILE`` without ``-p`` runs once under each protocol the file names, as
``explore FILE`` explores each (new-user trial 18b, finding 5).  The file and a user
protocol are written to tmp_path; the CLI runs in a fresh process from there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from odp_async.cli import ExitCode
from tests._usermod import pythonpath_env

PROTOCOL = """
from typing import ClassVar

from odp_async.odp.protocols.kvm_seq import KvmSeq


class MyKvm(KvmSeq):
    name: ClassVar[str] = "u-my-kvm"
    summary: ClassVar[str] = "kvm-seq under another name"


class Broken(KvmSeq):
    name: ClassVar[str] = "u-broken"
    summary: ClassVar[str] = "raises in a hook"

    async def fault_begin(self, umem, rng):
        raise ValueError("broken hook")
"""

FILE = """
[scenario]
name = "partial-overlap"
protocols = PROTOCOLS

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 8 },
    { op = "populate", start = 0x0, pages = 8 },
    { op = "register", mr = "B", start = 0x0, pages = 8 },
]

[[actor]]
name = "fault"
ops = [{ op = "fault", mr = "B", address = 0x5000, write = true }]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x2000, pages = 4 }]
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


def _write(tmp_path: Path, protocols: str) -> None:
    (tmp_path / "mykvm.py").write_text(PROTOCOL)
    (tmp_path / "mine.toml").write_text(FILE.replace("PROTOCOLS", protocols))


def test_run_of_a_file_runs_each_protocol_it_names(tmp_path: Path) -> None:
    _write(tmp_path, '["kvm-seq", "mykvm:MyKvm", "interval-seq"]')
    done = cli(tmp_path, "run", "mine.toml", "--backend", "trio")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert [line.split(" on trio: ")[0] for line in lines] == [
        "partial-overlap/kvm-seq",
        "partial-overlap/mykvm:MyKvm",
        "partial-overlap/interval-seq",
    ]
    assert all(": finished in " in line for line in lines), lines

    as_json = cli(tmp_path, "run", "mine.toml", "--backend", "asyncio", "--json")
    assert as_json.returncode == ExitCode.OK, as_json.stderr
    data = json.loads(as_json.stdout)
    assert (data["scenario"], data["file"]) == ("partial-overlap", "mine.toml")
    assert [r["target"] for r in data["runs"]] == [
        "partial-overlap/kvm-seq",
        "partial-overlap/mykvm:MyKvm",
        "partial-overlap/interval-seq",
    ]
    assert {r["status"] for r in data["runs"]} == {"finished"}


def test_one_protocol_of_the_file_with_p_and_options_need_p(tmp_path: Path) -> None:
    _write(tmp_path, '["kvm-seq", "mykvm:MyKvm"]')
    done = cli(tmp_path, "run", "mine.toml", "-p", "mykvm:MyKvm", "--json")
    assert done.returncode == ExitCode.OK, done.stderr
    assert json.loads(done.stdout)["target"] == "partial-overlap/mykvm:MyKvm"
    refused = cli(tmp_path, "run", "mine.toml", "-o", "x=1")
    assert refused.returncode == ExitCode.USAGE
    (line,) = refused.stderr.splitlines()
    assert "-o/--option needs -p/--protocol" in line
    assert "the file names kvm-seq, mykvm:MyKvm" in line


def test_an_error_under_one_protocol_exits_1_after_every_run(tmp_path: Path) -> None:
    _write(tmp_path, '["mykvm:Broken", "kvm-seq"]')
    done = cli(tmp_path, "run", "mine.toml")
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    broken, kvm = done.stdout.splitlines()
    assert broken.startswith("partial-overlap/mykvm:Broken on trio: ValueError: broken hook")
    assert kvm.startswith("partial-overlap/kvm-seq on trio: finished")


def test_a_file_naming_one_protocol_takes_its_options_without_p(tmp_path: Path) -> None:
    _write(tmp_path, '["kvm-seq"]')
    done = cli(tmp_path, "run", "mine.toml", "-o", "literal_release=true", "--json")
    assert done.returncode == ExitCode.OK, done.stderr
    assert json.loads(done.stdout)["target"].startswith("partial-overlap/kvm-seq")
    refused = cli(tmp_path, "run", "mine.toml", "-o", "nope=1")
    assert refused.returncode == ExitCode.USAGE
    (line,) = refused.stderr.splitlines()
    assert "unknown option 'nope' for protocol 'kvm-seq'" in line
