"""DporChooser: source-DPOR finds every outcome unreduced search finds, in fewer runs."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.footprint import Footprint
from odp_async.errors import InvalidArgument, NondeterminismError, ProtocolViolation
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.explore.runner import explore
from odp_async.scenarios.classic import lock_order, locked_counter, lost_update, two_preemptions
from odp_async.scenarios.sctbench import SCTBENCH
from tests._search import Search

Program = Callable[[], Awaitable[Any]]


def outcomes(program: Program, chooser: Any, budget: int = 50_000) -> tuple[set[str], int]:
    """Every distinct outcome of a complete search, and the runs that finished."""
    seen: set[str] = set()
    search = Search(chooser, lambda: sim.run(program, chooser=chooser), max_executions=budget)
    for result in search:
        if result.outcome == "ok":
            seen.add(f"ok {result.value!r}")
        elif result.outcome == "error":
            seen.add(f"error {result.error!r}")
        else:
            seen.add(result.outcome)
    return seen, search.runs


PROGRAMS: dict[str, Program] = {
    "lost-update": lost_update,
    "lock-order": lock_order,
    "two-preemptions": two_preemptions,
    "locked-counter-3": locked_counter(3).body,
    **{
        name: SCTBENCH[name].body
        for name in (
            "account",
            "account_fixed",
            "lazy01",
            "deadlock01",
            "carter01",
            "stack",
            "twostage",
            "twostage_fixed",
            "wronglock",
            "reorder_3",
            "reorder_3_fixed",
        )
    },
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_dpor_finds_every_outcome_of_unreduced_search(name: str) -> None:
    program = PROGRAMS[name]
    expected, unreduced = outcomes(program, DfsChooser(reduction=False))
    for noted_only in (False, True):
        chooser = DporChooser(noted_only=noted_only)
        found, traces = outcomes(program, chooser)
        assert found == expected, noted_only
        assert traces == chooser.traces <= unreduced
        assert chooser.is_exhaustive


def test_noted_only_reduces_to_one_run_per_lock_order() -> None:
    # account_fixed: three threads, one lock: 3! orders, nothing else to tell apart once
    # the threads' first steps are known (their noted accesses: none).
    sound, sound_runs = outcomes(SCTBENCH["account_fixed"].body, DporChooser())
    noted, noted_runs = outcomes(SCTBENCH["account_fixed"].body, DporChooser(noted_only=True))
    assert noted == sound
    assert noted_runs == 6 < sound_runs


def test_races_add_backtrack_points_beyond_the_first_run() -> None:
    chooser = DporChooser()
    found, runs = outcomes(lost_update, chooser)
    assert runs > 1
    assert chooser.races > 0
    assert any(o.startswith("error") for o in found)


def test_unknown_footprints_conflict_with_everything() -> None:
    # Labels that declare nothing: every interleaving of the two steps is a trace.
    state = {"x": 0}

    async def program() -> int:
        state["x"] = 0

        async def inc() -> None:
            await rt.checkpoint("read")
            value = state["x"]
            await rt.checkpoint("write")
            state["x"] = value + 1

        async with rt.task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        return state["x"]

    expected, _ = outcomes(program, DfsChooser(reduction=False))
    found, _ = outcomes(program, DporChooser(noted_only=False))
    assert found == expected == {"ok 1", "ok 2"}


def test_every_drawn_value_is_explored() -> None:
    async def program() -> tuple[int, int]:
        order: list[int] = []

        async def worker(k: int) -> None:
            await rt.checkpoint(Footprint.write("order"))
            order.append(k)

        async with rt.task_group() as tg:
            tg.start_soon(worker, rt.draw(3, "first"))
            tg.start_soon(worker, 9)
        return order[0], order[1]

    expected, _ = outcomes(program, DfsChooser(reduction=False))
    found, _ = outcomes(program, DporChooser())
    assert len(expected) == 6
    assert found == expected


def test_preemption_bound_zero_runs_only_non_preemptive_schedules() -> None:
    chooser = DporChooser(preemption_bound=0)
    found, _runs = outcomes(two_preemptions, chooser)
    assert chooser.max_preemptions == 0
    assert chooser.is_complete
    assert not chooser.is_exhaustive
    assert not any(o.startswith("error") for o in found)
    chooser = DporChooser(preemption_bound=2)
    found, _ = outcomes(two_preemptions, chooser)
    assert any(o.startswith("error") for o in found)


def test_nondeterministic_program_raises() -> None:
    calls = [0]

    async def program() -> None:
        calls[0] += 1

        async def worker() -> None:
            await rt.checkpoint(Footprint.write("x"))

        async with rt.task_group() as tg:
            for _ in range(1 + calls[0] % 2):
                tg.start_soon(worker)
            tg.start_soon(worker)

    chooser = DporChooser()
    with pytest.raises(NondeterminismError):
        outcomes(program, chooser)
    assert chooser.failure is not None


def test_new_execution_after_completion_is_a_protocol_violation() -> None:
    chooser = DporChooser()
    outcomes(lost_update, chooser)
    with pytest.raises(ProtocolViolation):
        chooser.new_execution()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"preemption_bound": -1}, "preemption_bound"),
        ({"preemption_bound": True}, "preemption_bound"),
        ({"trust_primitives": 1}, "trust_primitives"),
        ({"noted_only": "yes"}, "noted_only"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        DporChooser(**kwargs)


def test_explore_with_dpor_reports_completeness() -> None:
    clean = explore("classic:twostage_fixed", chooser="dpor", schedules=10_000)
    assert clean.complete
    assert clean.failure is None
    assert clean.schedules == 4  # SCTBench programs are noted_only: first steps are empty
    buggy = explore("classic:twostage", chooser="dpor", schedules=10_000, shrink=False)
    assert buggy.failure is not None
    assert str(buggy.verdict) == "found"
    assert not buggy.complete


def test_a_bounded_search_that_cut_something_is_not_complete() -> None:
    # two-preemptions needs two preemptions: bound 0 ends clean, and must not say complete.
    result = explore("classic:two-preemptions", chooser="dpor", preemption_bound=0)
    assert result.failure is None
    assert not result.complete
    assert result.bound == 0


def test_explore_config_rejects_bad_symmetry() -> None:
    with pytest.raises(InvalidArgument, match="symmetry"):
        explore("classic:lost-update", chooser="dfs", symmetry="off")


def test_symmetry_switch_reaches_dfs() -> None:
    on = explore("classic:locked-counter-3", chooser="dfs", schedules=10_000)
    off = explore("classic:locked-counter-3", chooser="dfs", schedules=10_000, symmetry=False)
    assert on.complete
    assert off.complete
    assert on.schedules < off.schedules


def test_same_sequence_in_a_fresh_process(tmp_path: Any) -> None:
    import subprocess

    code = (
        "from odp_async.explore.runner import explore\n"
        "r = explore('classic:account_fixed', chooser='dpor', schedules=10000)\n"
        "print(r.schedules, r.complete)\n"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert runs == {"6 True\n"}
