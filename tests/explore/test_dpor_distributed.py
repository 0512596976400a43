"""DPOR split into subtrees (odp_async.explore.dpor_parallel): the same failures, tokens and
counts in this process, on worker processes and on a Dask LocalCluster; the split covers
what the serial search covers (every violation kind, completeness, the same trace counts:
each subtree carries its sleep set); a user module, in this process and in a fresh one
(the CLI)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from odp_async import checkpoint, task_group
from odp_async._runtime.interrupts import CtrlC
from odp_async.cli import main
from odp_async.errors import ExploreInterrupted, InvalidArgument, NondeterminismError
from odp_async.explore import (
    ExploreConfig,
    ExploreResult,
    InlineExecutor,
    ProcessExecutor,
    Target,
    check,
    dpor_parallel,
    explore,
)
from odp_async.explore.dfs import PrunedExecution
from odp_async.explore.dpor import DporChooser, Subtree
from odp_async.explore.dpor_parallel import SubtreeResult, run_subtree
from odp_async.scenarios import Verdict
from tests._usermod import lost_update_source, pythonpath_env
from tests.conftest import UserModule

USER_MODULE = lost_update_source("a", "b", "c")

#: SCTBench-style programs (buggy and fixed) whose DPOR search completes in well under
#: a second.
PROGRAMS = [
    "account",
    "deadlock01",
    "carter01",
    "twostage",
    "wronglock",
    "reorder_3",
    "account_fixed",
    "lazy01_fixed",
]


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(2) as executor:
        yield executor  # type: ignore[misc]


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_dpor_split")


def outcome(result: ExploreResult) -> tuple[object, ...]:
    """Everything a split search must reproduce, whatever ran it."""
    failure = result.failure
    found = None
    if failure is not None:
        found = (failure.index, failure.schedule, failure.token, failure.shrunk_token)
    return (
        result.schedules,
        result.pruned,
        result.steps,
        result.complete,
        result.bound,
        result.failing,
        found,
        str(result.verdict),
    )


def kinds_serial(target: Target, config: ExploreConfig) -> tuple[set[str], int, bool]:
    """The violation kinds of every trace of the serial DPOR search, its trace count, and
    whether it completed."""
    chooser = DporChooser(config.preemption_bound)
    found: set[str] = set()
    while chooser.has_more:
        try:
            execution = target.run(chooser, max_steps=config.max_steps)
        except PrunedExecution:
            continue
        if execution.failure is not None:
            found.add(execution.failure.kind)
    return found, chooser.traces, chooser.is_exhaustive


@pytest.fixture
def finest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The split at its finest: no head, one trace per item (every entry a work item)."""
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 0)
    monkeypatch.setattr(dpor_parallel, "ITEM_TRACES", 1)


@pytest.mark.parametrize("name", [*PROGRAMS, "circular_buffer", "twostage_fixed"])
@pytest.mark.usefixtures("finest")
def test_the_split_runs_the_serial_search_s_traces(name: str) -> None:
    """Every entry a work item of one trace, each subtree from its sleep set and
    backtrack state: the split search completes with the serial search's trace count
    and failing traces (the split without sleep sets ran 1.2-4x as many)."""
    kw = {"chooser": "dpor", "schedules": 5000, "stop_on_first": False, "shrink": False}
    serial = explore(f"classic:{name}", **kw)
    split = explore(f"classic:{name}", executor=InlineExecutor(), **kw)
    assert serial.complete
    assert split.complete
    assert split.schedules == serial.schedules
    assert len(split.failing) == len(serial.failing)
    assert (name.endswith("_fixed")) == (not split.failing)
    if serial.failure is not None:
        assert split.failure is not None
        assert split.failure.violation.kind == serial.failure.violation.kind


def test_the_split_s_kinds_are_the_serial_search_s() -> None:
    """A check of the serial search itself (the reference above): every violation kind
    of a program is found by it."""
    target = Target.resolve("classic:deadlock01")
    kinds, traces, complete = kinds_serial(target, ExploreConfig(chooser="dpor"))
    assert complete
    assert kinds == {"deadlock"}
    assert traces == 4


@pytest.mark.parametrize("name", [p for p in PROGRAMS if p != "reorder_3"])
def test_worker_processes_find_what_this_process_finds(name: str, pool: ProcessExecutor) -> None:
    kw = {"chooser": "dpor", "schedules": 5000, "shrink": False}
    for stop_on_first in (True, False):
        here = explore(
            f"classic:{name}", executor=InlineExecutor(), stop_on_first=stop_on_first, **kw
        )
        there = explore(f"classic:{name}", executor=pool, stop_on_first=stop_on_first, **kw)
        assert outcome(here) == outcome(there)
        assert sum(there.per_worker.values()) == there.schedules
        assert set(there.per_worker) <= {"process-1", "process-2"}
        assert (here.failure is None) == name.endswith("_fixed")
        if not stop_on_first:
            assert here.complete  # the budget covers the whole search


def test_jobs_2_is_the_split_search_on_worker_processes() -> None:
    kw = {"chooser": "dpor", "schedules": 5000, "stop_on_first": False, "shrink": False}
    inline = explore("classic:wronglock", executor=InlineExecutor(), **kw)
    jobs = explore("classic:wronglock", jobs=2, **kw)
    assert outcome(inline) == outcome(jobs)
    assert jobs.executor == "2 worker processes"
    serial = explore("classic:wronglock", **kw)  # jobs=1, no executor: the serial search
    assert serial.complete
    assert jobs.complete
    assert serial.failure is not None
    assert jobs.failure is not None
    assert serial.failure.violation.kind == jobs.failure.violation.kind


def test_a_model_race_cell_gives_the_same_first_failure_and_tokens(pool: ProcessExecutor) -> None:
    kw = {"chooser": "dpor", "schedules": 1500}
    serial = explore("registration-race", "odp2014", **kw)
    here = explore("registration-race", "odp2014", executor=InlineExecutor(), **kw)
    there = explore("registration-race", "odp2014", executor=pool, **kw)
    assert outcome(here) == outcome(there)
    assert here.failure is not None
    assert here.failure.token is not None
    assert here.failure.shrunk_token is not None
    assert serial.verdict == here.verdict == Verdict.FOUND
    assert not here.complete  # stopped at the failure


def test_a_correct_program_completes_and_says_so(
    pool: ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The head (the serial search's first traces) completes it, with the serial counts.
    result = explore("classic:account_fixed", chooser="dpor", schedules=10_000, executor=pool)
    serial = explore("classic:account_fixed", chooser="dpor", schedules=10_000)
    assert result.complete
    assert serial.complete
    assert result.schedules == serial.schedules < dpor_parallel.HEAD_TRACES
    # The split itself (no head, one trace per item) completes it too, with the same count.
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 0)
    monkeypatch.setattr(dpor_parallel, "ITEM_TRACES", 1)
    result = explore("classic:account_fixed", chooser="dpor", schedules=10_000, executor=pool)
    assert result.complete
    assert result.failure is None
    assert result.verdict == Verdict.CLEAN
    assert result.schedules == serial.schedules
    assert set(result.per_worker) == {"process-1", "process-2"}  # both workers had items
    # The same search within a budget too small for it: no claim of completeness.
    short = explore("classic:account_fixed", chooser="dpor", schedules=3, executor=pool)
    assert not short.complete
    assert short.schedules <= 3
    assert short.failure is None


def test_a_budget_smaller_than_the_split_runs_only_that_many(
    pool: ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 3)
    monkeypatch.setattr(dpor_parallel, "ITEM_TRACES", 2)  # rounds of items of 2 traces
    kw = {"chooser": "dpor", "schedules": 10, "stop_on_first": False, "shrink": False}
    here = explore("classic:reorder_3", executor=InlineExecutor(), **kw)
    there = explore("classic:reorder_3", executor=pool, **kw)
    assert outcome(here) == outcome(there)
    assert here.schedules == 10
    assert not here.complete


def test_a_user_function_here_and_on_worker_processes(user: ModuleType) -> None:
    ref = f"{user.__name__}:lost_update"
    here = check(ref, chooser="dpor", schedules=2000, executor=InlineExecutor())
    with ProcessExecutor(2) as pool:  # started after the module's directory is on sys.path
        there = check(ref, chooser="dpor", schedules=2000, executor=pool)
        both = check(ref, chooser="dpor", schedules=2000, stop_on_first=False, executor=pool)
    assert outcome(here) == outcome(there)
    assert here.failure is not None
    assert here.failure.violation.kind == "error"
    assert both.complete
    assert both.failing[0] == here.failure.index


def test_a_user_function_from_the_cli_in_a_fresh_process(user: ModuleType, tmp_path: Path) -> None:
    ref = f"{user.__name__}:lost_update"
    here = check(ref, chooser="dpor", schedules=2000, executor=InlineExecutor())
    assert here.failure is not None
    command = [sys.executable, "-m", "odp_async.cli", "explore", ref, "--chooser", "dpor"]
    command += ["--schedules", "2000", "--jobs", "2", "--json"]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=pythonpath_env(tmp_path), timeout=300
    )
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["executor"] == "2 worker processes"
    assert data["schedules"] == here.schedules
    assert data["failure"]["schedule_index"] == here.failure.index
    assert data["failure"]["token"] == here.failure.token
    assert data["failure"]["shrunk_token"] == here.failure.shrunk_token


def test_the_cli_runs_dpor_on_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "classic:account_fixed", "--chooser", "dpor", "--jobs", "2", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is True
    assert data["verdict"] == "clean"
    assert data["executor"] == "2 worker processes"


def test_a_prefixed_chooser_stays_below_its_prefix() -> None:
    target = Target.resolve("classic:reorder_3")
    config = ExploreConfig(chooser="dpor", stop_on_first=False)
    first = DporChooser()
    prefix = target.run(first, max_steps=config.max_steps).sim.schedule[:3]
    prefix = (*prefix[:2], 1 - prefix[2])  # another choice at the third
    chooser = DporChooser(prefix=prefix)
    while chooser.has_more:
        try:
            execution = target.run(chooser, max_steps=config.max_steps)
        except PrunedExecution:
            continue
        assert execution.sim.schedule[: len(prefix)] == prefix
    assert chooser.traces >= 1
    assert "prefix=" in repr(chooser)


def test_a_bad_prefix_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="prefix entry 1 must be a non-negative int"):
        DporChooser(prefix=(0, -1))
    target = Target.resolve("classic:account_fixed")
    chooser = DporChooser(prefix=(0,) * 500)  # longer than any run
    target.run(chooser, max_steps=1000)
    with pytest.raises(NondeterminismError, match=r"ended after \d+ of the prefix's 500"):
        chooser.new_execution()


Call = tuple[Subtree | None, int, SubtreeResult]


def spy(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Record every work item run: (item, budget, result)."""
    calls: list[Call] = []

    def recorded(
        target: object, config: ExploreConfig, item: Subtree | None, budget: int
    ) -> SubtreeResult:
        result = run_subtree(target, config, item, budget)  # type: ignore[arg-type]
        calls.append((item, budget, result))
        return result

    monkeypatch.setattr(dpor_parallel, "run_subtree", recorded)
    return calls


def test_items_stay_in_their_subtree_and_the_first_failure_ends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 2)
    monkeypatch.setattr(dpor_parallel, "ITEM_TRACES", 1)
    calls = spy(monkeypatch)
    result = explore("classic:reorder_5", chooser="dpor", executor=InlineExecutor())
    assert result.failure is not None
    assert calls[0][0] is None  # the head: the serial search
    assert len(calls) > 3
    for item, budget, found in calls[1:]:
        assert item is not None
        assert budget == 1
        assert found.traces + found.pruned >= 1
    failing, _, found = calls[-1]  # no item after the failing one
    assert found.hit is not None
    assert result.failure.schedule == found.hit[1]
    assert failing is not None
    # the failing trace starts with the item's path (its choices among several), then
    # the item's option
    path = failing.node.path()
    prefix = [c.via for n, c in itertools.pairwise(path) if n.is_draw or len(n.options) > 1]
    prefix.append(path[-1].options.index(failing.option))
    assert result.failure.schedule[: len(prefix)] == tuple(prefix)


def test_the_budget_ends_where_its_traces_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dpor_parallel, "HEAD_TRACES", 0)
    calls = spy(monkeypatch)
    kw = {"chooser": "dpor", "schedules": 500, "stop_on_first": False, "shrink": False}
    result = explore("classic:reorder_5", executor=InlineExecutor(), **kw)
    assert result.schedules == 500
    assert not result.complete
    # no item ran past the budget: the items' traces add up to it exactly
    assert sum(found.traces for _, _, found in calls) == 500
    assert all(budget <= dpor_parallel.ITEM_TRACES for _, budget, _ in calls)


def test_a_keyboard_interrupt_keeps_the_rounds_that_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def program() -> None:  # interrupted where an update is lost: a preemption
        seen: list[int] = []

        async def step() -> None:
            count = len(seen)
            await checkpoint("x")
            seen.append(count)

        async with task_group() as tg:
            for _ in range(3):
                tg.start_soon(step)
        if len(set(seen)) < 3:
            raise CtrlC  # Ctrl-C, as the explorer's SIGINT handler raises it

    with pytest.raises(ExploreInterrupted) as caught:
        check(program, chooser="dpor", executor=InlineExecutor(), schedules=1000)
    partial = caught.value.result
    assert partial.interrupted
    assert not partial.complete
    assert partial.schedules > 0  # the round without preemptions
    assert partial.per_worker == {"main": partial.schedules}
    assert partial.failure is None


def test_the_cli_runs_dpor_on_a_local_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    # README "Beyond one machine": odp-async explore ... --chooser dpor --cluster local:N
    pytest.importorskip("distributed")
    here = explore("classic:wronglock", chooser="dpor", executor=InlineExecutor())
    command = ["explore", "classic:wronglock", "--chooser", "dpor", "--cluster", "local:2"]
    code = main([*command, "--json"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("cluster: Dask cluster at ")
    data = json.loads(captured.out)
    assert data["executor"].startswith("Dask cluster at ")
    assert here.failure is not None
    assert data["schedules"] == here.schedules
    assert data["failure"]["schedule_index"] == here.failure.index
    assert data["failure"]["shrunk_token"] == here.failure.shrunk_token
