"""``matrix`` names each scenario file so that files can be told apart: its stem, or the
shortest path suffix no other file shares, never cut (new-user trial 10, defect 7).  The
files are written to tmp_path."""

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
    ]
    for i, path in enumerate(paths):
        path.parent.mkdir(exist_ok=True)
        path.write_text(FILE.format(name=f"same-name-{i}"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    argv = ["matrix", "--budget", "3", "--jobs", "1"]
    for path in paths:
        argv += ["--scenario", os.path.relpath(path, tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "odp2014" in line]
    assert len(rows) == 3, out
    firsts = [row.split("│")[1].strip() for row in rows]
    assert firsts == [f"{stem}-one", f"a/{stem}-two", f"b/{stem}-two"], out
    # the JSON keeps the paths as given
    assert main([*argv, "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert [c["scenario"] for c in cells] == [os.path.relpath(p, tmp_path) for p in paths]
