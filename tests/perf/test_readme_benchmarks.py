"""The README's Benchmarks section quotes `benchmarks/results.json`, as run_all wrote it.

Every target row the README shows must be a row of the table `run_all.py` renders from
the committed full-run results, and the section names the command and the date of that
run: a figure nobody can trace to a run fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _run_all() -> Any:
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Benchmarks\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_readme_quotes_the_results_file() -> None:
    data = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    meta = data["meta"]
    assert meta["quick"] is False
    section = _section()
    assert meta["command"] in section
    assert meta["date"] in section
    rendered = set(_run_all().targets_table(data["targets"]))
    quoted = [line for line in section.splitlines() if line.startswith("| bench_")]
    assert quoted, "the section quotes no target row"
    missing = [line for line in quoted if line not in rendered]
    assert missing == []


def _steps_figures(text: str) -> dict[str, str]:
    """The figures `bench_explore.py --steps-only` printed: its date, the sim step's
    ratio, the 20-step program's schedules per second, the fixed cost per schedule."""
    lines = text.splitlines()
    figures = {"date": lines[0].split(": ", 1)[0]}
    table = ""
    for line in lines:
        if line.startswith("== "):
            table = line
        elif line.startswith("sim checkpoint step "):
            figures["ratio"] = line.split()[9]
        elif line.startswith("explore step, 20-step program ") and "schedules per" in table:
            figures["rate"] = f"{int(line.split()[4]):,}"
        elif line.startswith("fixed cost per schedule "):
            figures["fixed"] = line.split()[4]
    return figures


def test_the_readme_quotes_the_explorer_steps_file() -> None:
    text = (ROOT / "benchmarks" / "results-explore-steps.txt").read_text()
    figures = _steps_figures(text)
    assert set(figures) == {"date", "ratio", "rate", "fixed"}, figures
    section = _section()
    start = section.index("`bench_explore.py --steps-only`")
    paragraph = section[start : section.index("\n\n", start)]
    assert "benchmarks/bench_explore.py --steps-only" in paragraph
    assert figures["date"] in paragraph
    assert f"{figures['ratio']}x" in paragraph
    assert f"{figures['rate']} schedules/s" in paragraph
    assert f"{figures['fixed']} us" in paragraph


def _dpor_rows() -> dict[str, list[str]]:
    # The "schedules to the first bug" table of benchmarks/results-dpor.txt, by program.
    text = (ROOT / "benchmarks" / "results-dpor.txt").read_text(encoding="utf-8")
    table = text[text.index("== schedules to the first bug") :].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells: list[str] = []
        for word in line.split():
            if word == "(time)":  # ">n (time)" is one cell
                cells[-1] += " (time)"
            else:
                cells.append(word)
        rows[cells[0]] = cells[1:]
    return rows


def test_the_readme_quotes_the_dpor_file() -> None:
    # README: "DPOR against frontrun's DPOR ...": each figure is the file's, and the
    # file's frontrun column never beats dpor where both ran.
    rows = _dpor_rows()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("DPOR against frontrun's DPOR")
    quoted = " ".join(text[start : text.index("Each member alone", start)].split())
    head = (ROOT / "benchmarks" / "results-dpor.txt").read_text().splitlines()
    assert head[0].split("at commit ")[1] in quoted
    assert head[1].split(":")[0] + ":" + head[1].split(":")[1].split()[0] in quoted
    for name in ("account", "lazy01", "deadlock01", "stack", "twostage", "wronglock"):
        dpor, frontrun = rows[name][0], rows[name][5]
        assert dpor == frontrun
        assert f"`{name}` ({dpor})" in quoted
    for name in ("reorder_3", "reorder_5"):
        dpor, frontrun = rows[name][0], rows[name][5]
        assert int(dpor) <= int(frontrun)
        assert f"({dpor} against {frontrun})" in quoted
    for name in ("twostage_10", "twostage_20", "reorder_10", "reorder_20"):
        assert rows[name][5].startswith(">")  # frontrun missed: cut by its cap or its budget
        assert rows[name][0] in quoted
        assert rows[name][5].lstrip(">").split()[0] in quoted
    # The dfs column (index 2): the finds quoted, and the capped searches as ">n (time)".
    for name in ("twostage_10", "twostage_20", "reorder_10", "reorder_20"):
        assert rows[name][2].isdigit()
        assert rows[name][2] in quoted
    for name in ("twostage_50", "twostage_100"):
        assert rows[name][2].endswith(" (time)")
        assert f"`{rows[name][2]}`" in quoted
    assert not any("WRONG" in row for row in rows.values())
