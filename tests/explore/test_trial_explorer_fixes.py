"""Defects a new-user trial found in the explorer: a search that ran nothing reported as
clean, ``--time`` ignored by the split dpor search, a target that needs arguments, the
shrinker dropping a minimality it proved, and serial dpor's header and bound 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore import ExploreConfig, dpor_parallel, explore
from odp_async.explore.executors import InlineExecutor
from odp_async.explore.runner import explore_target
from odp_async.explore.shrink import shrink
from odp_async.explore.target import Target


class FakeClock:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


# --- 1. zero schedules are never "clean" ------------------------------------------------


@pytest.mark.parametrize("chooser", ["random", "dfs", "dpor"])
def test_a_budget_spent_in_the_setup_still_runs_the_first_schedule(chooser: str) -> None:
    target = Target.resolve("classic:twostage_fixed")
    config = ExploreConfig(chooser=chooser, schedules=100, time=0.5)  # spent at once
    result = explore_target(target, config, clock=FakeClock())
    assert result.schedules >= 1
    assert result.out_of_time
    assert "nothing explored" not in result.claim


@pytest.mark.parametrize("chooser", ["portfolio", "pct"])
def test_a_budget_spent_before_the_probe_runs_explores_nothing(chooser: str) -> None:
    # pct's probe runs are runs of the program: none starts past the budget, nor does
    # the first schedule after them (trial d f4); the result says nothing was explored
    target = Target.resolve("classic:twostage_fixed")
    config = ExploreConfig(chooser=chooser, schedules=100, time=0.5)  # spent at once
    result = explore_target(target, config, clock=FakeClock())
    assert (result.schedules, result.probes) == (0, 0)
    assert result.out_of_time
    assert result.claim == "nothing explored (time budget reached before the first schedule)"


def test_a_result_with_no_schedule_claims_nothing() -> None:
    target = Target.resolve("classic:twostage_fixed")
    ran = explore_target(target, ExploreConfig(schedules=2), clock=FakeClock())
    empty = attrs.evolve(ran, schedules=0, out_of_time=True)
    assert empty.claim == "nothing explored (time budget reached before the first schedule)"
    assert "clean" not in empty.claim
    assert str(empty.verdict) == "inconclusive"  # nothing ran: no verdict, never clean
    assert empty.inconclusive
    assert "no violation" not in empty.claim


def test_the_cli_exits_2_when_nothing_was_explored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import odp_async.explore.runner as runner

    real = runner.explore

    def explore_nothing(*args: object, **kwargs: object) -> object:
        return attrs.evolve(real(*args, **kwargs), schedules=0, out_of_time=True)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "explore", explore_nothing)
    code = main(["explore", "classic:twostage_fixed", "--schedules", "2", "--time", "5"])
    out, err = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert "clean" not in out
    assert "nothing explored" in out
    assert "nothing explored (time budget reached before the first schedule)" in err
    assert "Traceback" not in err


# --- 2. --time stops the split dpor search ----------------------------------------------


def test_the_budget_stops_the_split_dpor_search(monkeypatch: pytest.MonkeyPatch) -> None:
    # the split's own rounds, one trace each (the serial head, or one item of
    # `ITEM_TRACES`, would complete this small program)
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 0)
    monkeypatch.setattr(dpor_parallel, "ITEM_TRACES", 1)
    target = Target.resolve("classic:reorder_3_fixed")
    config = ExploreConfig(chooser="dpor", schedules=100_000, jobs=2, time=3.0)
    unlimited = explore_target(
        target, config.evolve(time=None), executor=InlineExecutor(), clock=FakeClock()
    )
    result = explore_target(target, config, executor=InlineExecutor(), clock=FakeClock())
    assert result.out_of_time
    assert not result.complete
    assert 0 < result.schedules < unlimited.schedules
    assert result.claim.endswith("(time budget reached, not complete)")
    assert not unlimited.out_of_time


# --- 3. a target that needs arguments ---------------------------------------------------

ARGMOD = """
class K:
    async def meth(self):
        pass


async def needs_arg(n, *, flag=False):
    pass
"""


@pytest.fixture
def argmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "trial_argmod.py").write_text(ARGMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("ref", "needs"), [("trial_argmod:needs_arg", "n"), ("trial_argmod:K.meth", "self")]
)
def test_a_target_needing_arguments_is_refused_by_the_cli(
    argmod: Path, ref: str, needs: str
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(argmod), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", ref, "--schedules", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == ExitCode.USAGE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert f"target {ref} requires the parameters {needs}" in lines[-1]


def test_a_target_needing_arguments_is_refused_by_the_api(argmod: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"trial_argmod:needs_arg requires the parameters n"):
        explore("trial_argmod:needs_arg", schedules=2)
    target = Target.resolve("trial_argmod:needs_arg", args=(3,))  # given its argument
    assert explore_target(target, ExploreConfig(schedules=2)).schedules == 2


# --- 4. the shrinker keeps the minimality its proof search established -----------------


def test_a_find_of_the_proof_search_is_minimal() -> None:
    # random finds the lock-order deadlock with 2 preemptions; the passes leave more than
    # 1 and the proof search (levels 0, 1 in order) finds one: minimal, as level 0 ran
    result = explore("classic:lock-order", chooser="random")
    assert result.failure is not None
    shrunk = result.failure.shrunk
    assert shrunk is not None
    assert shrunk.preemptions_before == 2
    assert shrunk.preemptions_after == 1
    assert shrunk.minimal is True
    assert "(minimal" in result.failure.describe()


def test_the_proof_search_also_runs_above_its_range() -> None:
    # the passes leave random's find of this 2-preemption bug at 4 preemptions, above
    # MAX_PROOF_PREEMPTIONS: the search among the schedules of at most 3 finds 2
    target = Target.resolve("classic:two-preemptions")
    found = explore_target(target, ExploreConfig(chooser="random", shrink=False))
    assert found.failure is not None
    kind = found.failure.violation.kind
    passes = shrink(target, found.failure.schedule, kind, max_steps=10_000, proof_budget=0)
    assert passes.preemptions_after == 4
    result = shrink(target, found.failure.schedule, kind, max_steps=10_000)
    assert result.preemptions_after == 2
    assert result.minimal is True


# --- 5. serial dpor's header; --max-preemptions 0 ----------------------------------------


def test_serial_dpor_says_complete_without_a_bound(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "classic:twostage_fixed", "--chooser", "dpor"]) == ExitCode.OK
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(", complete)")
    assert "bound None" not in header
    argv = ["explore", "classic:twostage_fixed", "--chooser", "dfs", "--preemptions", "1"]
    assert main(argv) == ExitCode.OK
    assert "complete for bound 1)" in capsys.readouterr().out.splitlines()[0]


def test_max_preemptions_0_runs_the_schedules_without_a_preemption(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["explore", "classic:lock-order", "--chooser", "dfs", "--max-preemptions", "0"]
    assert main(argv) == ExitCode.OK  # the deadlock needs a preemption
    out = capsys.readouterr().out
    assert "complete for preemption bound 0: 2 schedules, no violation" in out
    assert ExploreConfig(chooser="dfs", max_preemptions=0).max_preemptions == 0
    with pytest.raises(InvalidArgument, match="max_preemptions must be a non-negative int"):
        ExploreConfig(max_preemptions=-1)
