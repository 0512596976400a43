"""Every built-in scenario under every protocol, quickly: the scripted interleaving where
one is known, and a few random schedules of every cell expected clean.

A fast, deterministic slice of the verdict matrix (``odp-async matrix`` explores far
more): it is what pins each protocol's accounting line by line (tools/mutation.sh runs
it for every mutant of ``odp_async/odp``).
"""

from __future__ import annotations

import pytest

from odp_async._runtime.choosers import ScriptChooser
from odp_async.scenarios import BUILTIN, Verdict, verdict_of
from odp_async.world import run_world

SEEDS = range(24)
CELLS = [(s, p) for s in BUILTIN for p in BUILTIN[s].expected]
CLEAN = [(s, p) for s, p in CELLS if BUILTIN[s].expected[p] is Verdict.CLEAN]
SCRIPTED = [(s, p) for s, p in CELLS if BUILTIN[s].script]


@pytest.mark.parametrize(("scenario", "protocol"), CLEAN)
def test_clean_cells_stay_clean_on_random_schedules(scenario: str, protocol: str) -> None:
    body = BUILTIN[scenario].body
    for seed in SEEDS:
        run = run_world(body, protocol=protocol, seed=seed)
        assert run.sim.outcome == "ok", (seed, run.sim.outcome)
        assert run.violations == (), (seed, run.violations[0].describe())


@pytest.mark.parametrize(("scenario", "protocol"), SCRIPTED)
def test_the_script_gives_the_expected_verdict(scenario: str, protocol: str) -> None:
    s = BUILTIN[scenario]
    expected = s.script_expected.get(protocol, s.expected[protocol])
    chooser = ScriptChooser(s.script)
    run = run_world(s.body, protocol=protocol, chooser=chooser)
    got = verdict_of(run.violations)
    # a deadlock's last step, its task blocked for good, counts as followed (`finish`)
    followed = chooser.finish(run_over=run.sim.outcome != "step-limit") is None
    if followed or expected is Verdict.CLEAN:  # a clean cell is clean on any schedule
        assert got is expected, [v.describe() for v in run.violations]
    else:  # the script does not fit this protocol's code: no verdict to compare
        assert got is not Verdict.FOUND
