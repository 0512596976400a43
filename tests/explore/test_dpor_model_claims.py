"""DPOR on the ODP model's built-in race scenarios: the claims the README's table shows.

With the model's state tracked (`odp_async.tracked`), DPOR reduces model scenarios: it
finds the 2014 thread's races and completes correct protocols on race scenarios.  The
counts are deterministic (DPOR is a function of the program); CI runs the cheapest cells,
``ODP_ASYNC_FULL_CLAIMS=1`` runs every pinned cell (minutes).  The README's table is
checked against the pins, so it cannot drift from what the code does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from odp_async.explore import explore

ROOT = Path(__file__).resolve().parent.parent.parent

#: cell -> claim, run in CI.
CHEAP = {
    "registration-race/odp2014": "violation at schedule 11: stale-translation",
    "truncate-during-registration/odp2014": "violation at schedule 17: stale-translation",
    "ctx-dereg-during-end/odp2014-ctx": "violation at schedule 23: deadlock",
    "fault-vs-munmap/interval-seq": "complete: 31 traces, no violation",
    "fault-vs-munmap/odp2014-ctx": "complete: 32 traces, no violation",
    "ctx-dereg-during-end/interval-seq": "complete: 50 traces, no violation",
    # 90 while the active ranges were one resource: the per-page rule, in CI.
    "registration-race/range-list": "complete: 71 traces, no violation",
}
#: cell -> claim, run with ODP_ASYNC_FULL_CLAIMS=1.
FULL = {
    "stray-end-corruption/odp2014": "violation at schedule 123: stale-translation",
    "fault-vs-munmap/kvm-seq": "complete: 36 traces, no violation",
    "fault-vs-munmap/range-list": "complete: 40 traces, no violation",
    "exit-during-faults/interval-seq": "complete: 1588 traces, no violation",
    "exit-during-faults/kvm-seq": "complete: 1436 traces, no violation",
    "exit-during-faults/range-list": "complete: 5426 traces, no violation",
    "exit-during-faults/odp2014-ctx": "complete: 1696 traces, no violation",
    "registration-race/interval-seq": "complete: 52 traces, no violation",
    "dereg-during-notifier/interval-seq": "complete: 56 traces, no violation",
    "mprotect-downgrade/interval-seq": "complete: 28 traces, no violation",
    "mprotect-downgrade/kvm-seq": "complete: 33 traces, no violation",
    "mprotect-downgrade/range-list": "complete: 37 traces, no violation",
    "mprotect-downgrade/odp2014-ctx": "complete: 30 traces, no violation",
    "migration-during-fault/interval-seq": "complete: 90 traces, no violation",
    "migration-during-fault/kvm-seq": "complete: 200 traces, no violation",
    "migration-during-fault/range-list": "complete: 63 traces, no violation",
    "migration-during-fault/odp2014-ctx": "complete: 150 traces, no violation",
    "truncate-during-registration/interval-seq": "complete: 151 traces, no violation",
    "truncate-during-registration/range-list": "complete: 279 traces, no violation",
    "thp-split-during-fault/interval-seq": "complete: 92 traces, no violation",
    "ctx-dereg-during-end/kvm-seq": "complete: 1424 traces, no violation",
    "ctx-dereg-during-end/range-list": "complete: 496 traces, no violation",
    "truncate-during-registration/odp2014-ctx": "complete: 408 traces, no violation",
    "thp-split-during-fault/range-list": "complete: 453 traces, no violation",
    "registration-race/odp2014-ctx": "complete: 150 traces, no violation",
    "truncate-during-registration/kvm-seq": "complete: 490 traces, no violation",
    "thp-split-during-fault/kvm-seq": "complete: 281 traces, no violation",
    "thp-split-during-fault/odp2014-ctx": "complete: 207 traces, no violation",
    "registration-race/kvm-seq": "complete: 225 traces, no violation",
    "dereg-during-notifier/range-list": "complete: 251 traces, no violation",
    "dereg-during-notifier/odp2014-ctx": "complete: 297 traces, no violation",
    "dereg-during-notifier/kvm-seq": "complete: 397 traces, no violation",
    "stray-end-corruption/interval-seq": "complete: 9954 traces, no violation",
    "stray-end-munmap/interval-seq": "complete: 1106 traces, no violation",
    "stray-end-munmap/odp2014-ctx": "complete: 2093 traces, no violation",
    "stray-end-munmap/kvm-seq": "complete: 6007 traces, no violation",
    "stray-end-munmap/range-list": "complete: 6282 traces, no violation",
}
FULL_RUN = os.environ.get("ODP_ASYNC_FULL_CLAIMS") == "1"


def _claim(cell: str) -> str:
    scenario, protocol = cell.split("/")
    return explore(scenario, protocol, chooser="dpor", schedules=50_000).claim


@pytest.mark.parametrize("cell", sorted(CHEAP))
def test_cheap_cells(cell: str) -> None:
    assert _claim(cell) == CHEAP[cell]


@pytest.mark.skipif(not FULL_RUN, reason="minutes of DPOR: set ODP_ASYNC_FULL_CLAIMS=1")
@pytest.mark.parametrize("cell", sorted(FULL))
def test_full_cells(cell: str) -> None:
    assert _claim(cell) == FULL[cell]


def test_the_readme_table_shows_the_pinned_claims() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### DPOR over the ODP model") :]
    rows = re.findall(r"^\| ([a-z0-9-]+/[a-z0-9-]+) \| ([^|]+) \|", section, re.M)
    pinned = {**CHEAP, **FULL}
    shown = {cell: claim.strip() for cell, claim in rows}
    assert set(pinned) <= set(shown), "a pinned cell is missing from the README table"
    for cell, claim in shown.items():
        if claim.startswith(("complete:", "violation at")):
            assert pinned.get(cell) == claim, cell
        else:
            assert "not complete" in claim, cell  # a search cut short says so


def _failing_cells() -> list[tuple[str, str, str]]:
    from odp_async.scenarios.builtin import BUILTIN

    return [
        (name, protocol, str(verdict))
        for name, scenario in BUILTIN.items()
        for protocol, verdict in scenario.expected.items()
        if str(verdict) in ("found", "deadlock")
    ]


#: Failing cells DPOR needs more than a few seconds for (run with the full claims): none
#: since the scenarios' program-order completions are gates (stray-end-corruption/odp2014
#: at schedule 116, stray-end-munmap/naive at 29).
SLOW_FINDS: set[tuple[str, str]] = set()


@pytest.mark.parametrize(("name", "protocol", "verdict"), _failing_cells())
def test_dpor_finds_every_failing_race_cell(name: str, protocol: str, verdict: str) -> None:
    """Every built-in cell expected to fail with a safety violation or a deadlock (the
    ones random and pct find; the storms' starvation needs long schedules, not other
    orders) is found by DPOR alone, with the expected kind."""
    if (name, protocol) in SLOW_FINDS and not FULL_RUN:
        pytest.skip("minutes of DPOR: set ODP_ASYNC_FULL_CLAIMS=1")
    result = explore(name, protocol, chooser="dpor", schedules=1000)
    assert result.failure is not None, result.claim
    kind = result.failure.violation.kind
    assert (kind == "deadlock") == (verdict == "deadlock"), kind


def test_the_tool_shows_how_far_a_search_got() -> None:
    # `tools/dpor_model_claims.py --progress S`: the queue of a search the clock cuts.
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "dpor_model_claims.py"),
            *("--budget", "40", "--progress", "0", "fault-vs-munmap/kvm-seq"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert done.stdout.splitlines()[2].startswith(
        "| fault-vs-munmap/kvm-seq | complete: 36 traces, no violation |"
    )
    lines = done.stderr.splitlines()
    assert lines, done.stderr
    pattern = (
        r"fault-vs-munmap/kvm-seq: \d+ schedules in \d+ s, \d+ traces, \d+ pruned, "
        r"\d+ entries queued \(fewest preemptions (\d+|None)\)"
    )
    assert all(re.fullmatch(pattern, line) for line in lines), lines
