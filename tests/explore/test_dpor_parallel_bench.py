"""benchmarks/bench_dpor_parallel.py: the claims of jobs=N checked against jobs=1, and
run_all.py runs it and keeps its rows."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_dpor_parallel", BENCHMARKS / "bench_dpor_parallel.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _run(**fields: Any) -> dict[str, Any]:
    run = {
        "complete": True,
        "traces": 5,
        "failing": 0,
        "claim": "complete: 5 traces, no violation",
    }
    run.update(wall=1.0, cpu=1.0)
    run.update(fields)
    return run


def test_agrees_needs_the_same_completeness_counts_and_clean_claim() -> None:
    agrees = _bench().agrees
    serial = _run()
    assert agrees(serial, _run(wall=0.5, cpu=2.0))  # speed is not a claim
    assert not agrees(serial, _run(traces=6, claim="complete: 6 traces, no violation"))
    assert not agrees(serial, _run(complete=False))
    assert not agrees(serial, _run(failing=1, claim="violation at schedule 3: error"))
    assert not agrees(serial, _run(claim="no violation in 5 schedules"))
    # A failing whole search: the first failing index may differ, the counts may not.
    failing = _run(traces=40, failing=20, claim="violation at schedule 3: error")
    assert agrees(failing, _run(traces=40, failing=20, claim="violation at schedule 4: error"))
    assert not agrees(failing, _run(traces=40, failing=19, claim="violation at schedule 3: error"))


def test_the_cells_complete_under_dpor_each_with_a_protocol_or_classic() -> None:
    bench = _bench()
    for scenario, protocol, _stop in (*bench.CELLS, *bench.QUICK_CELLS):
        assert scenario.startswith("classic:") == (protocol is None)


def test_run_all_runs_it_and_keeps_its_rows(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick"]
    command += ["--only", "bench_dpor_parallel.py", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "results-quick.json").read_text())
    entry = data["scripts"]["bench_dpor_parallel.py"]
    assert entry["exit"] == 0
    assert "every jobs count claims what jobs=1 claims" in entry["stdout"]
    (table,) = entry["tables"]
    rows = {row["name"]: row for row in table["rows"]}
    serial = rows["registration-count/interval-seq jobs=1"]
    split = rows["registration-count/interval-seq jobs=2"]
    assert serial["complete"]
    assert split["complete"]
    assert serial["traces"] == split["traces"] > 0
    assert split["agrees"] is True
    assert (
        rows["classic:reorder_3 jobs=2"]["failing"]
        == rows["classic:reorder_3 jobs=1"]["failing"]
        > 0
    )
