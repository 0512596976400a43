"""An interrupted matrix never ends its output with "N/N cells as expected": its last
line says how many of how many cells were explored, and that it was interrupted."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async.cli import ExitCode, main
from odp_async.explore import matrix


def test_an_interrupted_matrix_says_so_on_its_last_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = matrix.verdict_matrix

    def cut_after_two(**kw: Any) -> Any:  # Ctrl-C once two cells are in
        on_cell = kw["on_cell"]
        seen: list[Any] = []

        def advance(cell: Any) -> None:
            on_cell(cell)
            seen.append(cell)
            if len(seen) == 2:
                raise KeyboardInterrupt

        return real(**{**kw, "on_cell": advance})

    monkeypatch.setattr(matrix, "verdict_matrix", cut_after_two)
    code = main(["matrix", "--budget", "3", "--jobs", "1", "--chooser", "random"])
    out, err = capsys.readouterr()
    assert code == ExitCode.INTERRUPTED, err
    from odp_async.odp import PROTOCOLS
    from odp_async.scenarios import BUILTIN

    total = len(BUILTIN) * len(PROTOCOLS)
    last = out.rstrip().splitlines()[-1]
    assert last.startswith(f"2 of {total} cells explored (interrupted)"), last
    assert "cells as expected" not in out
