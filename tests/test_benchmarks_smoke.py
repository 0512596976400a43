"""Smoke test of the benchmark scripts: they run and print a row for every contender.

Speed is measured by ``benchmarks/``, never asserted here: this only checks that
``--quick`` runs exit 0 and that each table has its rows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# Every contender's table row, by the name it starts with.
EXPECTED: dict[str, list[str]] = {
    "bench_sync.py": [
        "Mutex()",
        "Mutex(fast)",
        "RWLock() write",
        "RWLock() read",
        "RWLock(fast) write",
        "RWLock(fast) read",
        "anyio.Lock()",
        "anyio.Lock(fast)",
        "asyncio.Lock",
        "trio.Lock",
        "aiorwlock writer",
        "aiorwlock reader",
        "aiorwlock(fast) writer",
        "aiorwlock(fast) reader",
        "Mutex() handoff",
        "RWLock() write handoff",
        "anyio.Lock() handoff",
        "asyncio.Lock handoff",
        "trio.Lock handoff",
        "future floor",
        "reschedule floor",
    ],
    "bench_sim.py": [
        "sim checkpoint step",
        "bare send step",
        "trio checkpoint",
        "sim Mutex step",
        "sim Mutex pair",
    ],
    "bench_model.py": [
        "naive",
        "odp2014",
        "odp2014-ctx",
        "range-list",
        "hmm-pool",
        "kvm-seq",
        "interval-seq",
        "fresh build + setup",
        "restore after a schedule",
    ],
    # Rows printed whether or not the peer (frontrun) is installed.
    "bench_explore.py": [
        "registration-race/odp2014 jobs=1",
        "registration-race/odp2014 jobs=2",
        "registration-race/odp2014-ctx jobs=1",
        "registration-race/odp2014-ctx jobs=2",
        "sim checkpoint step",
        "explore step, 20-step program",
        "bare send step",
        "registration-race/naive",
        "registration-race/odp2014",
        "fixed-pool-deadlock/hmm-pool",
        "ours random 20-step",
        "ours random 20-step vs frontrun",
        "ours random 20-step, hoisted footprint",
        "ours random lost-update",
        "ours dfs 20-step",
        "lost-update dfs",
        "lost-update dfs, no reduction",
        "lost-update random",
        "lock-order dfs",
        "lock-order dfs, no reduction",
        "lock-order random",
        "two-preemptions dfs",
        "two-preemptions dfs, no reduction",
        "two-preemptions random",
    ],
    "bench_dpor_memory.py": [
        "dfs 100 steps",
        "dfs 400 steps",
        "dpor 100 steps",
        "dpor 400 steps",
    ],
    # Dask rows only with the cluster extra (in `test`); the process pool's always.
    "bench_cluster.py": [
        "jobs=1",
        "process pool 1",
        "process pool 2",
        "dask 1",
        "dask 2",
        "dpor serial",
        "dpor split, this process",
        "dpor process pool 2",
        "dpor dask 2",
    ],
}


def test_quick_benchmarks_print_every_contender(tmp_path: Path) -> None:
    import json
    import re

    for script, names in EXPECTED.items():
        out = tmp_path / f"{script}.json"
        proc = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"{script} --quick exited {proc.returncode}:\n{proc.stderr}"
        # A row is the name followed by at least two spaces and its ns/op figure.
        rows = proc.stdout.splitlines()
        for name in names:
            assert any(
                line.startswith(name + " ") and line[len(name) :].split()[0].isdigit()
                for line in rows
            ), f"{script}: no table row for {name!r} in:\n{proc.stdout}"
        # Every printed row judged against a target, met or not, is a target row of the
        # data run_all.py collects (its Targets table): none is printed and left out.
        judged = {
            re.split(r"\s{2,}", line)[0]
            for line in rows
            if re.search(r"\S\s{2,}(yes|NO)$", line) and not line.startswith("name ")
        }
        tables = json.loads(out.read_text())["tables"] if out.exists() else []  # (no rows kept)
        targeted = {row["name"] for tab in tables for row in tab["rows"] if "target" in row}
        assert judged <= targeted, f"{script}: judged rows with no target: {judged - targeted}"


def test_run_all_writes_a_results_file(tmp_path: Path) -> None:
    import json

    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run_all.py"),
            "--quick",
            "--only",
            "bench_sim.py",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "results-quick.json").read_text())
    assert data["meta"]["command"] == "python benchmarks/run_all.py --quick --only bench_sim.py"
    (step,) = [t for t in data["targets"] if t["name"] == "sim checkpoint step"]
    assert step["against"] == "bare send step"
    assert step["target"] == "<=2.5"
    assert step["figure"] > 0
    assert isinstance(step["met"], bool)
    rows = data["scripts"]["bench_sim.py"]["tables"][0]["rows"]
    assert {"cpu", "wall", "ratio", "ratio_min", "ratio_max"} <= set(rows[0])
    text = (tmp_path / "results-quick.md").read_text()
    assert "| bench_sim.py | sim runtime | sim checkpoint step | bare send step |" in text


def test_run_all_merge_keeps_the_other_scripts_entries(tmp_path: Path) -> None:
    import json

    older = {
        "meta": {"command": "python benchmarks/run_all.py", "date": "then", "load_start": "9"},
        "targets": [],
        "scripts": {
            "bench_fake.py": {
                "exit": 0,
                "seconds": 1.0,
                "stdout": "== fake\n",
                "tables": [
                    {
                        "title": "fake table",
                        "rows": [
                            {
                                "name": "kept row",
                                "cpu": 1.0,
                                "unit": "ns/op",
                                "peer": "other",
                                "ratio": 0.5,
                                "target": "<=1",
                                "met": True,
                            }
                        ],
                    }
                ],
            }
        },
    }
    (tmp_path / "results-quick.json").write_text(json.dumps(older))
    command = [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--merge"]
    command += ["--only", "bench_sim.py", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "results-quick.json").read_text())
    assert set(data["scripts"]) == {"bench_fake.py", "bench_sim.py"}
    assert data["scripts"]["bench_fake.py"]["run"]["date"] == "then"
    assert data["meta"]["command"].endswith("--merge --only bench_sim.py")
    assert {t["name"] for t in data["targets"]} >= {"kept row", "sim checkpoint step"}
    text = (tmp_path / "results-quick.md").read_text()
    assert (
        "## bench_fake.py (exit 0, 1.0 s; kept from `python benchmarks/run_all.py` on then" in text
    )


def test_run_all_targets_runs_every_target_script_in_its_targets_mode(tmp_path: Path) -> None:
    """``--targets``: the scripts with target rows, the explorer's in its steps mode, and
    its output as the steps file the README quotes (here the quick run's)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("run_all", BENCHMARKS / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    # every script with a target row in the committed results is one of the targets runs
    committed = json.loads((BENCHMARKS / "results.json").read_text())
    assert {t["script"] for t in committed["targets"]} <= set(run_all.TARGET_RUNS)
    assert run_all.TARGET_RUNS["bench_explore.py"][0] == "--steps-only"

    command = [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--targets"]
    command += ["--only", "bench_explore.py", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "results-quick.json").read_text())
    assert data["meta"]["command"] == (
        "python benchmarks/run_all.py --quick --targets --only bench_explore.py"
    )
    entry = data["scripts"]["bench_explore.py"]
    assert entry["args"] == list(run_all.TARGET_RUNS["bench_explore.py"])
    by_name = {t["name"]: t for t in data["targets"]}
    assert set(by_name) == {
        "sim checkpoint step",
        "explore step, 20-step program",
        "fixed cost per schedule",
    }
    assert by_name["sim checkpoint step"]["against"] == "bare send step"
    assert by_name["explore step, 20-step program"]["target"] == ">=40000"
    assert all(t["range"] for t in data["targets"])  # every figure with its spread
    steps = (tmp_path / "results-quick-explore-steps.txt").read_text()
    assert steps == entry["stdout"]
    from tests.perf.test_readme_benchmarks import _steps_figures

    assert set(_steps_figures(steps)) == {"date", "ratio", "rate", "fixed"}
    text = (tmp_path / "results-quick.md").read_text()
    assert "## bench_explore.py --steps-only --repeats 15 --quick" not in text
    assert "## bench_explore.py --steps-only --repeats 15 (exit 0" in text


def test_run_all_targets_refuses_a_script_without_targets(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--targets"]
    command += ["--only", "bench_portfolio.py", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "not bench_portfolio.py" in proc.stderr


def _load_run_all() -> ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all_checks", BENCHMARKS / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_all_refuses_a_missing_out_directory_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 15: ``--out`` naming no directory ran every script, then crashed writing."""
    with pytest.raises(SystemExit) as exited:
        _load_run_all().main(["--quick", "--out", str(tmp_path / "missing")])
    assert exited.value.code == 2
    err = capsys.readouterr()
    assert f"--out '{tmp_path / 'missing'}' is not a directory" in err.err
    assert "###" not in err.out  # no script ran


def test_run_all_names_the_missing_peers_before_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Trial 15: without the ``bench`` extra two scripts died with tracebacks."""
    run_all = _load_run_all()
    monkeypatch.setattr(run_all, "PEERS", ("intervaltree", "no_such_peer_module"))
    with pytest.raises(SystemExit) as exited:
        run_all.main(["--quick", "--out", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr()
    assert "the peers no_such_peer_module are not installed: pip install -e '.[bench]'" in err.err
    assert "###" not in err.out
