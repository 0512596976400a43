"""The quick tour's ``odp-async explore examples/NAME.toml`` works from any directory.

New-user report: the README's tour ran ``odp-async explore examples/....toml``, which
found the file only from the repository root ("no such scenario file" anywhere else),
though the examples ship inside the package (``odp-async examples``).  A scenario given
as ``examples/NAME.toml`` or ``NAME.toml`` that is not on disk is now the shipped example
of that name, with a note on stderr naming the file used; a file on disk always wins, and
any other missing path is still the one-line error.

Each command in a fresh process, run from tmp_path (no ``examples/`` there).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from odp_async.cli import ExitCode
from odp_async.example_files import examples_dir

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_the_tours_example_commands_work_from_any_directory(tmp_path: Path) -> None:
    tour = README.split("## A quick tour\n", 1)[1].split("```", 2)[1]
    files = sorted(set(re.findall(r"examples/[\w-]+\.toml", tour)))
    assert files, tour
    for name in files:
        proc = cli(tmp_path, "show", name, "--json")
        assert proc.returncode == ExitCode.OK, proc.stderr
        shipped = examples_dir() / Path(name).name
        assert proc.stderr == (
            f"odp-async: note: no file {name} here: using the example shipped with "
            f"odp_async, {shipped} (odp-async examples lists them)\n"
        )
        assert json.loads(proc.stdout)["name"] == Path(name).stem
    # the tour's own explore line, as given
    found = cli(tmp_path, "explore", "examples/fixed-pool-deadlock.toml", "-p", "hmm-pool")
    assert found.returncode == ExitCode.VIOLATION, found.stderr
    assert found.stdout.startswith("fixed-pool-deadlock/hmm-pool: deadlock - "), found.stdout
    # a bare NAME.toml too
    bare = cli(tmp_path, "show", "registration-race.toml")
    assert bare.returncode == ExitCode.OK, bare.stderr
    assert "using the example shipped with odp_async" in bare.stderr


def test_a_file_on_disk_wins_and_other_paths_stay_missing(tmp_path: Path) -> None:
    mine = tmp_path / "examples" / "registration-race.toml"
    mine.parent.mkdir()
    text = (examples_dir() / "registration-race.toml").read_text()
    mine.write_text(text.replace('name = "registration-race"', 'name = "mine"', 1))
    own = cli(tmp_path, "show", "examples/registration-race.toml", "--json")
    assert own.returncode == ExitCode.OK, own.stderr
    assert own.stderr == ""
    assert json.loads(own.stdout)["name"] == "mine"
    for missing in ("examples/no-such-example.toml", "elsewhere/registration-race.toml"):
        proc = cli(tmp_path, "show", missing)
        assert proc.returncode == ExitCode.USAGE, proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert f"{missing}: no such scenario file" in proc.stderr
