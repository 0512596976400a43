"""examples/README.md's operation table lists every operation a scenario file accepts,
each with every key the parser accepts for it (trial 19b, finding f4: nine were missing);
its file table lists every file shipped, with its Python twin (trial: two were missing)."""

from __future__ import annotations

import re
from pathlib import Path

from odp_async.scenarios import BUILTIN, files
from odp_async.scenarios.files import load_scenario

ROOT = Path(__file__).resolve().parent.parent.parent


def _table() -> dict[str, str]:
    """op -> its row's keys column, from the table headed ``| op | keys (defaults) |``."""
    text = (ROOT / "examples" / "README.md").read_text()
    block = text.split("| op | keys (defaults) |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, str] = {}
    for line in block.splitlines():
        ops_cell, keys_cell = line.strip("|").split("|", 1)
        for op in re.findall(r"`([a-z_]+)`", ops_cell):
            rows[op] = keys_cell
    return rows


def test_every_op_the_parser_accepts_has_a_row() -> None:
    table = _table()
    assert set(table) == set(files._OPS), (
        f"missing: {sorted(set(files._OPS) - set(table))}, "
        f"unknown: {sorted(set(table) - set(files._OPS))}"
    )


def test_every_key_of_every_op_is_named_in_its_row() -> None:
    table = _table()
    for op, spec in files._OPS.items():
        named = set(re.findall(r"`([a-z_]+)", table[op]))
        assert set(spec.fields) <= named, (op, sorted(set(spec.fields) - named))


def test_the_file_table_lists_every_shipped_file_with_its_twin() -> None:
    text = (ROOT / "examples" / "README.md").read_text()
    block = text.split("| file | Python twin |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = dict(re.findall(r"^\| `([^`]+\.toml)` \| `([^`]+)` \|$", block, re.M))
    assert len(rows) == len(block.strip().splitlines()), block
    shipped = sorted((ROOT / "examples").glob("*.toml"))
    assert sorted(rows) == [p.name for p in shipped]
    for path in shipped:
        twin = rows[path.name]
        assert twin in BUILTIN, (path.name, twin)
        assert load_scenario(path).name == twin, path.name
