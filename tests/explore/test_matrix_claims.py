"""The verdict matrix runs the explorer's default chooser (the portfolio) and says what
each cell established: ``complete: N traces, no violation`` when the portfolio's dpor
member ran every trace (the cell then stops: nothing is left to find), else the budget
reached, or the verdict seen and who saw it; in the text table (a ``claim`` column) and
in ``--json`` (issue 11, verification claims in the matrix)."""

from __future__ import annotations

import json
import re
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
    assert cell.claim == f"violation at schedule {cell.first_hit}: stale-translation"
    assert cell.claim == result.claim  # one wording for explore and the matrix


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
    assert re.fullmatch(r"complete: (1 trace|\d+ traces), no violation", cell.claim)


def test_a_found_cell_under_random_shows_its_claim(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the table's claim column said ``-`` for a cell random found."""
    args = ["matrix", "--scenario", "registration-race", "-p", "odp2014", "--jobs", "1"]
    args += ["--chooser", "random", "--budget", "1000"]
    assert main([*args, "--json"]) == ExitCode.OK
    (cell,) = json.loads(capsys.readouterr().out)["cells"]
    first = cell["schedules_to_first"]
    assert cell["claim"] == f"violation at schedule {first}: stale-translation"
    assert main(args) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"violation at schedule {first}: stale-translation" in out


def test_one_wording_with_singular_counts() -> None:
    from odp_async.explore.claims import claim_text

    assert claim_text(1, chooser="dpor", complete=True) == "complete: 1 trace, no violation"
    assert claim_text(2, chooser="dpor", complete=True) == "complete: 2 traces, no violation"
    assert claim_text(9, chooser="portfolio", complete=True, traces=1) == (
        "complete: 1 trace, no violation"
    )
    assert claim_text(1, chooser="random") == (
        "no violation in 1 schedule (budget reached, not complete)"
    )
    assert claim_text(7, chooser="random", violation=(3, "error")) == (
        "violation at schedule 3: error"
    )
    assert claim_text(1, chooser="dpor", bound=0, cut_by_bound=True) == (
        "preemption bound 0 reached: 1 trace, no violation found (not complete)"
    )


def test_a_one_trace_program_says_one_trace() -> None:
    """Before: ``complete: 1 traces, no violation``."""
    from odp_async import checkpoint

    async def alone() -> None:
        await checkpoint("nothing shared")

    result = explore(alone, chooser="dpor", schedules=10)
    assert result.claim == "complete: 1 trace, no violation"
