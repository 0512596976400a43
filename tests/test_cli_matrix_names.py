"""``matrix`` names each scenario file by its scenario's name (new-user trial 18b, item 5),
and files whose scenarios share a name are told apart by the shortest path suffix no other
file shares, never cut (new-user trial 10, defect 7).  ``--json`` gives the name as
``scenario`` and the path as given as ``file``.  The files are written to tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from odp_async.cli import main

FILE = """
[scenario]
name = "{name}"
protocols = ["odp2014"]

[setup]
ops = [{{ op = "mmap", start = 0x0, pages = 1 }}]

[[actor]]
name = "madvise"
ops = [{{ op = "madvise", start = 0x0, pages = 1 }}]

[expected]
odp2014 = "clean"
"""


def test_matrix_tells_long_file_names_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stem = "a-scenario-file-with-a-rather-long-name"
    paths = [
        tmp_path / "a" / f"{stem}-one.toml",
        tmp_path / "a" / f"{stem}-two.toml",
        tmp_path / "b" / f"{stem}-two.toml",
        tmp_path / "b" / "other.toml",
    ]
    names = ["same-name", "same-name", "same-name", "a-name-of-its-own"]
    for name, path in zip(names, paths, strict=True):
        path.parent.mkdir(exist_ok=True)
        path.write_text(FILE.format(name=name))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    argv = ["matrix", "--budget", "3", "--jobs", "1"]
    for path in paths:
        argv += ["--scenario", os.path.relpath(path, tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "odp2014" in line]
    assert len(rows) == 4, out
    # a folded label continues on the next line: join each row's first column
    firsts = [row.split("│")[1].strip() for row in rows]
    assert firsts[3] == "a-name-of-its-own", out
    text = " ".join(line.split("│")[1].strip() for line in out.splitlines() if "│" in line)
    for label in (
        f"same-name ({stem}-one.toml)",
        f"same-name (a/{stem}-two.toml)",
        f"same-name (b/{stem}-two.toml)",
    ):
        assert label.replace(" ", "") in text.replace(" ", ""), out
    # the JSON: the scenario's name, and the path as given
    assert main([*argv, "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert [c["scenario"] for c in cells] == names
    assert [c["file"] for c in cells] == [os.path.relpath(p, tmp_path) for p in paths]


def test_a_file_is_shown_by_its_scenarios_name_beside_a_built_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "partial.toml").write_text(FILE.format(name="partial-overlap"))
    (tmp_path / "twin.toml").write_text(FILE.format(name="fault-vs-munmap"))
    monkeypatch.chdir(tmp_path)
    argv = ["matrix", "--budget", "3", "--jobs", "1", "-p", "odp2014", "--scenario"]
    assert main([*argv, "partial.toml", "--scenario", "fault-vs-munmap", "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert [(c["scenario"], c["file"]) for c in cells] == [
        ("partial-overlap", "partial.toml"),
        ("fault-vs-munmap", None),
    ]
    # a file whose scenario has a built-in's name: the file's path tells them apart
    assert main([*argv, "twin.toml", "--scenario", "fault-vs-munmap"]) == 0
    firsts = [
        line.split("│")[1].strip()
        for line in capsys.readouterr().out.splitlines()
        if "odp2014" in line
    ]
    assert firsts == ["fault-vs-munmap (twin.toml)", "fault-vs-munmap"]
