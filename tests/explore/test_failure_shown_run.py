"""Everything shown for a failure describes one run, the shrunk one: the header, the JSON
detail, the step list and the replay token (new-user trial 10, defect 1).  User code in
tmp_path, run by the CLI in a fresh process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from odp_async.cli import ExitCode
from tests._usermod import lost_update_source, pythonpath_env

#: A seed whose first failing schedule loses two updates (x == 2 of 4) while its shrunk
#: run loses three (x == 1): the found run and the shrunk run differ.
SEED = "1"


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


def test_header_json_steps_and_token_describe_the_shrunk_run(tmp_path: Path) -> None:
    (tmp_path / "s9_shown_lost.py").write_text(lost_update_source("a", "b", "c", "d"))
    target = "s9_shown_lost:lost_update"
    as_json = cli(tmp_path, "explore", target, "--seed", SEED, "--json")
    assert as_json.returncode == ExitCode.VIOLATION, as_json.stderr
    failure = json.loads(as_json.stdout)["failure"]
    replayed = cli(tmp_path, "replay", failure["shrunk_token"], "--json")
    assert replayed.returncode == ExitCode.VIOLATION, replayed.stderr
    shown = json.loads(replayed.stdout)
    first = shown["violations"][0]
    assert (failure["kind"], failure["step"], failure["detail"]) == (
        first["kind"],
        first["step"],
        first["detail"],
    )
    assert failure["shrunk"] is True
    assert failure["run_steps"] == shown["steps"]

    text = cli(tmp_path, "explore", target, "--seed", SEED)
    assert text.returncode == ExitCode.VIOLATION, text.stderr
    header = next(  # the failure's header, not the claim ("violation: ... at schedule i")
        line
        for line in text.stdout.splitlines()
        if " at schedule " in line and not line.startswith("violation: ")
    )
    assert f", shrunk to {shown['steps']} steps: " in header, header
    assert header.endswith(f"(step {first['step']}, main): {first['detail']}"), header
    marked = [line for line in text.stdout.splitlines() if line.endswith("<==")]
    assert len(marked) == 1
    assert re.match(rf"\s+step {first['step']}\s", marked[0]), marked
    token = re.search(r"replay: odp-async replay (\S+)", text.stdout)
    assert token is not None
    assert token.group(1) == failure["shrunk_token"]
