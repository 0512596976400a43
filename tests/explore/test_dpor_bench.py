"""Smoke test of benchmarks/bench_dpor.py: it runs, prints every row, and no verdict is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dpor.py"


def test_quick_run_prints_every_program_and_memory_row(tmp_path: Path) -> None:
    import json

    data = tmp_path / "dpor.json"
    command = [sys.executable, str(SCRIPT), "--quick", "--budget", "30", "--seeds", "1"]
    proc = subprocess.run(
        [*command, "--json", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    table = out.split("== schedules to the first bug")[1].split("== memory per path")[0]
    for name in ("account", "deadlock01", "twostage", "wronglock", "reorder_5"):
        assert any(line.startswith(name + " ") for line in table.splitlines()), out
    assert "WRONG" not in table
    memory = out.split("== memory per path")[1].splitlines()
    for kind in ("dfs", "dpor"):
        assert sum(line.startswith(kind + " ") for line in memory) == 2, out
    # Every row judged against frontrun is a target row of the data run_all.py collects.
    rows = json.loads(data.read_text())["tables"][0]["rows"]
    judged = [r for r in rows if r["met"] != "n/a"]
    assert judged
    assert all(r["target"] == "<=frontrun" and isinstance(r["met"], bool) for r in judged)
    assert {r["name"] for r in judged} >= {"account", "deadlock01", "twostage", "wronglock"}
