"""``explore --no-shrink`` reports the preemptions of the failing schedule as found.

New-user report: ``explore ... --json --no-shrink`` gave ``"preemptions": null`` for a
found failure, though the unshrunk schedule's preemptions are countable.  Now ``--json``
gives ``[as found, null]`` (nothing shrunk) and the text says ``not shrunk: N
preemptions``; N is the shrinker's own count of the same schedule (its "as found"), and
the number of steps the text marks ``*``.

User module in tmp_path, each CLI run in a fresh process; fixed seeds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from odp_async.cli import ExitCode
from tests._usermod import lost_update_source, pythonpath_env

MODULE = "unshrunk_preemptions"


def explore(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / f"{MODULE}.py").write_text(lost_update_source("a", "b", "c", "d"))
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{MODULE}:lost_update", *argv],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def test_no_shrink_reports_the_preemptions_as_found(tmp_path: Path) -> None:
    seeded = ("--chooser", "random", "--seed", "3")
    shrunk = explore(tmp_path, *seeded, "--json")
    assert shrunk.returncode == ExitCode.VIOLATION, shrunk.stderr
    as_found, _ = json.loads(shrunk.stdout)["failure"]["preemptions"]
    assert as_found > 1  # a schedule worth counting

    raw = explore(tmp_path, *seeded, "--no-shrink", "--json")
    assert raw.returncode == ExitCode.VIOLATION, raw.stderr
    failure = json.loads(raw.stdout)["failure"]
    assert not failure["shrunk"]
    assert failure["found_token"] == json.loads(shrunk.stdout)["failure"]["found_token"]
    assert failure["preemptions"] == [as_found, None]

    text = explore(tmp_path, *seeded, "--no-shrink")
    assert text.returncode == ExitCode.VIOLATION, text.stderr
    step = failure["step"]
    assert f"not shrunk: {as_found} preemptions, failure at step {step}\n" in text.stdout
    marked = re.findall(r"^  step +\d+ \* ", text.stdout, re.MULTILINE)
    assert len(marked) == as_found, text.stdout
