"""benchmarks/bench_dpor_parallel.py: the claims of jobs=N checked against jobs=1, and
run_all.py runs it and keeps its rows."""

from __future__ import annotations

import importlib.util
import json
import re
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


def test_run_all_names_it_as_a_claim_check() -> None:
    spec = importlib.util.spec_from_file_location("run_all", BENCHMARKS / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    assert "bench_dpor_parallel.py" in run_all.CLAIM_CHECKS
    assert "bench_dpor_parallel.py" not in run_all.TARGET_RUNS  # no speed target
    assert (BENCHMARKS / "bench_dpor_parallel.py").is_file()  # found by run_all's glob


def test_the_readme_points_to_it_and_quotes_its_results_file() -> None:
    root = BENCHMARKS.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    start = text.index("`.venv/bin/python benchmarks/bench_dpor_parallel.py`")
    paragraph = text[start : text.index("\n\n", start)]
    assert "`benchmarks/results-dpor-parallel.txt`" in paragraph
    results = (BENCHMARKS / "results-dpor-parallel.txt").read_text().splitlines()
    # every ratio the paragraph quotes is a jobs1/jobsN median of the results file
    medians = {line.split()[6] for line in results if line.split()[1:2] == ["2"]}
    figures = set(re.findall(r"(?<![-(.\d])(\d\.\d\d)\b(?!-)", paragraph))  # not ranges
    assert figures
    assert figures <= medians, (figures, medians)
    assert results[0].startswith("$ ")
    assert "bench_dpor_parallel.py" in results[0]
    assert " cpus, load " in results[1]
    assert results[-1] == "every jobs count claims what jobs=1 claims"
    for cell in ("stray-end-munmap/interval-seq", "exit-during-faults/kvm-seq"):
        assert cell.split("/")[0] in paragraph
        rows = [line.split() for line in results if line.startswith(cell + " ")]
        assert {row[2] for row in rows} == {rows[0][2]}  # the same traces for every jobs
        assert {row[1] for row in rows} >= {"1", "2"}
