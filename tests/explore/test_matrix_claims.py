"""The verdict matrix runs the explorer's default chooser (the portfolio) and says what
each cell established: ``complete: N traces, no violation`` when the portfolio's dpor
member ran every trace (the cell then stops: nothing is left to find), else the budget
reached, or the verdict seen and who saw it; in the text table (a ``claim`` column) and
in ``--json`` (issue 11, verification claims in the matrix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore.matrix import verdict_matrix
from odp_async.explore.runner import explore
from odp_async.scenarios import Verdict

CLEAN = ("registration-count", "interval-seq")


def test_a_clean_cell_the_dpor_member_completes_says_so_and_stops() -> None:
    (cell,) = verdict_matrix(budget=1000, scenarios=[CLEAN[0]], protocols=[CLEAN[1]])
    assert cell.verdict is Verdict.CLEAN
    assert cell.matches
    assert cell.claim == "complete: 5 traces, no violation"
    assert cell.schedules < 1000  # stopped once the search was complete
    assert cell.found_by is None


def test_random_claims_only_the_budget() -> None:
    (cell,) = verdict_matrix(
        budget=50, scenarios=[CLEAN[0]], protocols=[CLEAN[1]], chooser="random"
    )
    assert cell.schedules == 50
    assert cell.claim == "no violation in 50 schedules (budget reached, not complete)"


def test_a_failing_cell_is_schedule_i_of_explore_and_names_its_member() -> None:
    (cell,) = verdict_matrix(budget=1000, scenarios=["registration-race"], protocols=["odp2014"])
    result = explore("registration-race", "odp2014", schedules=1000, shrink=False)
    assert result.failure is not None
    assert cell.verdict is Verdict.FOUND
    assert cell.first_hit == result.failure.index
    assert cell.found_by == result.found_by
    assert cell.claim == f"found at schedule {cell.first_hit}"


def test_an_unknown_chooser_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown matrix chooser 'dfs'"):
        verdict_matrix(budget=10, scenarios=[CLEAN[0]], chooser="dfs")


def test_the_cli_shows_the_claim_in_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["matrix", "--scenario", CLEAN[0], "-p", CLEAN[1], "--jobs", "1"]
    assert main(args) == ExitCode.OK
    out = capsys.readouterr().out
    assert "complete: 5 traces" in out
    assert "portfolio" in out  # the title names the chooser
    assert main([*args, "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert data["chooser"] == "portfolio"
    assert data["cells"][0]["claim"] == "complete: 5 traces, no violation"
    assert main([*args, "--chooser", "random", "--budget", "20", "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert data["cells"][0]["claim"].endswith("(budget reached, not complete)")


def test_a_bad_chooser_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--chooser", "nope"]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert any("nope" in line for line in err)


FILE = """
[scenario]
name = "mine"
protocols = ["interval-seq"]

[setup]
ops = [{ op = "mmap", start = 0x0, pages = 1 }]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x0, pages = 1 }]

[expected]
interval-seq = "clean"
"""


def test_your_scenario_file_gets_a_claim(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(FILE)
    (cell,) = verdict_matrix(budget=1000, scenarios=[str(path)])
    assert cell.matches
    assert cell.claim.startswith("complete: ")
    assert cell.claim.endswith(" traces, no violation")
