"""Verification claims: what `ExploreResult.claim` (and the CLI) says a search showed.

A completed DPOR search claims completeness ("complete: N traces, no violation"); a search
cut by its budget or its preemption bound never does; a program with a bug is never
"complete, no violation", whatever its footprints declare.
"""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from odp_async.explore.runner import explore
from odp_async.scenarios.sctbench import SCTBENCH
from tests.conftest import UserModule

USER_SOURCE = '''
from odp_async import checkpoint, task_group
from odp_async.explore.shared import SharedCell
from odp_async.scenarios import Scenario
from odp_async.sync import Mutex


def make(*, locked):
    async def main():
        m = Mutex("m")
        counter = SharedCell(0, "counter")

        async def increment():
            if locked:
                async with m:
                    counter.set(counter.get() + 1)
            else:
                value = await counter.load()
                await counter.store(value + 1)

        async with task_group() as tg:
            tg.start_soon(increment)
            tg.start_soon(increment)
        assert counter.get() == 2, f"lost update: {counter.get()}"

    return main


SAFE = Scenario("safe", "locked increments", make(locked=True), ("main",),
                needs_world=False, noted_only=True)
RACY = Scenario("racy", "a lost update", make(locked=False), ("main",),
                needs_world=False, noted_only=True)

SHARED = {"n": 0}


async def hidden_race():
    """A lost update on a plain dict: no footprint records it (not noted_only)."""

    async def increment():
        value = SHARED["n"]
        await checkpoint("between")
        SHARED["n"] = value + 1

    SHARED["n"] = 0
    try:  # reset when the run ends too: runs that share state get no verdict
        async with task_group() as tg:
            tg.start_soon(increment)
            tg.start_soon(increment)
        assert SHARED["n"] == 2, f"lost update: {SHARED['n']}"
    finally:
        SHARED["n"] = 0
'''


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_SOURCE, "user_claims")


def test_a_completed_search_claims_completeness(user: ModuleType) -> None:
    r = explore(user.SAFE, chooser="dpor", schedules=10_000)
    assert r.complete
    assert r.failure is None
    assert r.claim == f"complete: {r.schedules} traces, no violation"
    fixed = explore("classic:twostage_fixed", chooser="dpor", schedules=10_000)
    assert fixed.claim == "complete: 4 traces, no violation"


def test_a_search_cut_by_the_budget_never_claims_completeness() -> None:
    r = explore("classic:reorder_3_fixed", chooser="dpor", schedules=2)
    assert r.failure is None
    assert not r.complete
    assert r.claim == "no violation in 2 schedules (budget reached, not complete)"
    assert "complete:" not in r.claim


def test_a_search_cut_by_its_preemption_bound_says_the_bound() -> None:
    # two-preemptions needs two preemptions: bound 0 ends, clean, before the budget.
    r = explore("classic:two-preemptions", chooser="dpor", preemption_bound=0)
    assert r.failure is None
    assert not r.complete
    assert r.claim.startswith("preemption bound 0 reached: ")
    assert r.claim.endswith("no violation found (not complete)")


def test_random_never_claims_completeness() -> None:
    r = explore("classic:twostage_fixed", chooser="random", schedules=50)
    assert r.claim == "no violation in 50 schedules (budget reached, not complete)"


@pytest.mark.parametrize(
    "name",
    # The many-thread ones (twostage_N, reorder_10 and 20) take minutes: the benchmark's.
    [
        n
        for n, s in SCTBENCH.items()
        if s.expected and n.partition("_")[2] in ("", "3", "5", "buffer")
    ],
)
def test_a_program_with_a_bug_is_never_complete_and_clean(name: str) -> None:
    # The whole search (no stop at the first failure): complete or not, it says the bug.
    r = explore(f"classic:{name}", chooser="dpor", schedules=300, stop_on_first=False)
    assert r.failure is not None, r.claim
    assert r.claim.startswith("violation at schedule ")
    assert "no violation" not in r.claim


def test_user_bugs_are_found_noted_or_hidden(user: ModuleType) -> None:
    racy = explore(user.RACY, chooser="dpor", schedules=10_000, stop_on_first=False)
    assert racy.claim.startswith("violation at schedule ")
    # A race on a plain object: no footprint names it, so its steps stay unknown and DPOR
    # still finds it (never "complete, no violation").
    hidden = explore(user.hidden_race, chooser="dpor", schedules=10_000, stop_on_first=False)
    assert hidden.claim.startswith("violation at schedule ")


def test_the_cli_says_the_claim(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_cli import run_cli

    code, out, _ = run_cli(capsys, "explore", "classic:twostage_fixed", "--chooser", "dpor")
    assert code == 0
    assert "complete: 4 traces, no violation" in out
    code, out, _ = run_cli(
        capsys, "explore", "classic:twostage_fixed", "--chooser", "dpor", "--json"
    )
    assert json.loads(out)["claim"] == "complete: 4 traces, no violation"
    code, out, _ = run_cli(
        capsys,
        "explore",
        "classic:twostage_fixed",
        "--chooser",
        "dpor",
        "--schedules",
        "2",
    )
    assert "no violation in 2 schedules (budget reached, not complete)" in out


def test_a_scenario_that_promises_noted_only_is_reduced(user: ModuleType) -> None:
    import attrs

    noted = explore(user.SAFE, chooser="dpor", schedules=10_000)
    unknown = explore(attrs.evolve(user.SAFE, noted_only=False), chooser="dpor", schedules=10_000)
    assert noted.complete
    assert unknown.complete
    # A task's first step is empty under the promise, unknown (conflicting) without it.
    assert noted.schedules < unknown.schedules


def test_sim_run_rejects_a_non_bool_noted_only() -> None:
    from odp_async._runtime import sim
    from odp_async.errors import InvalidArgument

    async def main() -> None:
        pass

    with pytest.raises(InvalidArgument, match="noted_only"):
        sim.run(main, noted_only="yes")  # type: ignore[arg-type]


def test_the_portfolio_claims_completeness_only_when_its_dpor_member_ran_every_trace() -> None:
    done = explore("classic:twostage_fixed", chooser="portfolio", schedules=200)
    assert done.complete
    # it stops at the dpor slot that finds the search over (index 19), as the matrix does
    assert (done.schedules, done.traces) == (19, 4)
    assert done.claim == "complete: 4 traces, no violation"
    cut = explore("classic:account_fixed", chooser="portfolio", schedules=8)
    assert not cut.complete
    assert cut.claim == "no violation in 8 schedules (budget reached, not complete)"
