"""Liveness verdicts hold under a fair scheduler: no starvation charged for scheduling.

Before the fix, pct reported ``starvation`` for correct protocols on the storm cells
within 130-413 schedules (seed 0: storm-preregistered under range-list 195,
interval-seq 362, odp2014-ctx 413, odp2014 413, hmm-pool 129; storm-register-during
under range-list 130); random and dfs found none in 3000.  The pct budget below is
more than twice the worst of those (413).
"""

from __future__ import annotations

import pytest

from odp_async.explore.runner import explore
from odp_async.scenarios import BUILTIN, Verdict

#: dfs at 30: 100 took 10-24 s a cell on a slow 2-core host (12-05) and caught no more
#: (with `_kept_off`, the window rule or `holds_back` disabled, dfs at 100 charged no
#: starvation in the 7, 2 and 3 cells tried).
BUDGET = {"pct": 900, "random": 300, "dfs": 30, "dpor": 25}
STORMS = ("storm-preregistered", "storm-register-during")
CLEAN_CELLS = [
    (s, p) for s in STORMS for p, v in BUILTIN[s].expected.items() if v is Verdict.CLEAN
]
STARVED_CELLS = [
    (s, p) for s in STORMS for p, v in BUILTIN[s].expected.items() if v is Verdict.STARVATION
]


def test_the_cells_cover_every_correct_protocol() -> None:
    assert {p for s, p in CLEAN_CELLS if s == "storm-preregistered"} >= {
        "range-list",
        "interval-seq",
        "odp2014-ctx",
        "odp2014",
        "hmm-pool",
    }
    assert ("storm-preregistered", "kvm-seq") in STARVED_CELLS


@pytest.mark.parametrize("chooser", ["pct", "random", "dfs", "dpor"])
@pytest.mark.parametrize(("scenario", "protocol"), CLEAN_CELLS)
def test_no_starvation_charged_for_scheduling(scenario: str, protocol: str, chooser: str) -> None:
    result = explore(scenario, protocol, chooser=chooser, schedules=BUDGET[chooser], seed=0)
    assert result.failure is None, result.failure.describe()


# Not dfs: a fair run starves kvm-seq's fault only when the storm's invalidations keep
# overlapping one another, which takes more preemptions than a bounded dfs gives (the old
# accounting let dfs "find" it by leaving the fault off the CPU while the storm ran).
# Not pct either: an end does not charge a fault while the task of an invalidation in
# flight at its last charge is passed over by the scheduler, and pct runs one storm task
# through its rounds while the other's invalidation stays open (its task never run); it
# found these cells that way before the generations rule, and 500 schedules find none
# now.  Random (seed 0: schedules 1, 2, 2, 10) and the default portfolio interleave the
# storms' ends (its slowest: storm-register-during/interval-seq, by its random member at
# 1812 for seed 0; 2458 while the bound counted generations of holders).  The portfolio
# half, seed 0, is tests/explore/test_portfolio.py's every-failing-cell test.
@pytest.mark.parametrize(("scenario", "protocol"), STARVED_CELLS)
def test_documented_starvation_is_still_found(scenario: str, protocol: str) -> None:
    result = explore(scenario, protocol, chooser="random", schedules=3000, seed=0, shrink=False)
    assert result.failure is not None
    assert result.failure.violation.kind == "starvation"
