"""DfsChooser: exhaustive search, preemption bounding, sleep sets, symmetry, replay."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async._runtime.choosers import ReplayChooser
from odp_async._runtime.footprint import Footprint
from odp_async.errors import InvalidArgument, NondeterminismError, ProtocolViolation
from odp_async.explore.dfs import DfsChooser, DfsStatistics, PrunedExecution
from odp_async.scenarios.builtin import BUILTIN
from odp_async.scenarios.classic import lock_order, locked_counter, lost_update, two_preemptions
from odp_async.sync import Mutex
from odp_async.world import run_world

Program = Callable[[], Awaitable[Any]]


@attrs.define
class Exploration:
    """What one search saw: every finished run, in order, and the pruned prefixes."""

    chooser: DfsChooser
    runs: list[sim.SimResult] = attrs.field(factory=list)
    pruned: list[tuple[int, ...]] = attrs.field(factory=list)
    first_bug: sim.SimResult | None = None
    bug_preemptions: int | None = None

    @property
    def outcomes(self) -> set[tuple[str, str]]:
        return {(r.outcome, repr(r.value)) for r in self.runs}


def explore(
    program: Program,
    chooser: DfsChooser,
    *,
    budget: int = 100_000,
    stop_at_bug: bool = False,
    noted_only: bool = False,
) -> Exploration:
    ex = Exploration(chooser)
    while chooser.has_more and chooser.executions < budget:
        try:
            result = sim.run(program, chooser=chooser, noted_only=noted_only)
        except PrunedExecution as pruned:
            ex.pruned.append(pruned.choices)
            continue
        ex.runs.append(result)
        if result.outcome != "ok" and ex.first_bug is None:
            ex.first_bug = result
            ex.bug_preemptions = chooser.preemptions
            if stop_at_bug:
                break
    return ex


# --- small programs of our own ----------------------------------------------------------


async def disjoint() -> dict[str, int]:
    """Two tasks that each write their own variable twice: every interleaving is equivalent."""
    state = {"a": 0, "b": 0}

    async def bump(key: str) -> None:
        for _ in range(2):
            await rt.checkpoint(Footprint.write(key))
            state[key] += 1

    async with rt.task_group() as tg:
        tg.start_soon(bump, "a", name="A")
        tg.start_soon(bump, "b", name="B")
    return state


async def drawing() -> tuple[int, ...]:
    """Two tasks that draw values: every value of every draw is a branch."""
    seen: list[int] = []

    async def worker(n: int) -> None:
        await rt.checkpoint(Footprint.write(("w", n)))
        seen.append(rt.draw(n, f"draw{n}"))

    async with rt.task_group() as tg:
        tg.start_soon(worker, 2, name="two")
        tg.start_soon(worker, 3, name="three")
    return tuple(seen)


def random_program(seed: int) -> Program:
    """Two or three tasks reading and writing declared variables, some under mutexes.

    Each task folds what it reads into a local accumulator and writes from it, so the
    final state tells interleavings apart.  Tasks get distinct arguments: no symmetry.
    """
    r = random.Random(seed)
    ntasks = r.randint(2, 3)
    names = ["x", "y", "z"][: r.randint(1, 3)]
    nlocks = r.randint(0, 2)
    plans: list[list[tuple[Any, ...]]] = []
    for _ in range(ntasks):
        ops: list[tuple[Any, ...]] = []
        for _ in range(r.randint(1, 3)):
            kind = r.choice(["r", "w", "lock"] if nlocks else ["r", "w"])
            if kind == "lock":
                inner = [(r.choice("rw"), r.choice(names)) for _ in range(r.randint(1, 2))]
                ops.append(("lock", r.randrange(nlocks), inner))
            else:
                ops.append((kind, r.choice(names)))
        plans.append(ops)

    async def main() -> tuple[object, ...]:
        state = dict.fromkeys(names, 0)
        locks = [Mutex(f"l{i}") for i in range(nlocks)]
        accs = [0] * ntasks

        async def access(i: int, kind: str, name: str) -> None:
            if kind == "r":
                await rt.checkpoint(Footprint.read(name))
                accs[i] = accs[i] * 7 + state[name]
            else:
                await rt.checkpoint(Footprint.write(name))
                state[name] = accs[i] + i + 1

        async def task(i: int) -> None:
            for op in plans[i]:
                if op[0] == "lock":
                    async with locks[op[1]]:
                        for kind, name in op[2]:
                            await access(i, kind, name)
                else:
                    await access(i, op[0], op[1])

        async with rt.task_group() as tg:
            for i in range(ntasks):
                tg.start_soon(task, i)
        return tuple(sorted(state.items())), tuple(accs)

    return main


CLASSIC_BUGS = [
    pytest.param(lost_update, "error", 1, id="lost_update"),
    pytest.param(lock_order, "deadlock", 1, id="lock_order"),
    pytest.param(two_preemptions, "error", 2, id="two_preemptions"),
]


# --- finding the classic bugs -----------------------------------------------------------


@pytest.mark.parametrize("reduction", [True, False])
@pytest.mark.parametrize(("program", "outcome", "preemptions"), CLASSIC_BUGS)
def test_iterative_bounding_finds_each_classic_bug_at_its_preemption_count(
    program: Program, outcome: str, preemptions: int, reduction: bool
) -> None:
    c = DfsChooser(preemption_bound=3, iterative=True, reduction=reduction)
    ex = explore(program, c, stop_at_bug=True)
    assert ex.first_bug is not None
    assert ex.first_bug.outcome == outcome
    # Levels are explored in order, so the first bug has the fewest preemptions possible.
    assert ex.bug_preemptions == preemptions
    assert c.bound == preemptions
    assert c.complete_bound == preemptions - 1


@pytest.mark.parametrize("reduction", [True, False])
def test_two_preemptions_is_out_of_reach_of_bound_1_and_found_with_bound_2(
    reduction: bool,
) -> None:
    one = explore(two_preemptions, DfsChooser(preemption_bound=1, reduction=reduction))
    assert one.chooser.is_complete
    assert one.chooser.complete_bound == 1
    assert not one.chooser.is_exhaustive  # the bound cut alternatives off
    assert one.first_bug is None
    assert {r.outcome for r in one.runs} == {"ok"}

    two = explore(two_preemptions, DfsChooser(preemption_bound=2, reduction=reduction))
    assert two.first_bug is not None
    assert two.first_bug.outcome == "error"
    assert "intermediate value" in str(two.first_bug.error)


def test_iterative_bounding_runs_levels_in_order_and_never_twice() -> None:
    c = DfsChooser(preemption_bound=2, iterative=True, reduction=False)
    levels: list[int] = []
    schedules: list[tuple[int, ...]] = []
    while c.has_more:
        result = sim.run(locked_counter(3).body, chooser=c)
        levels.append(c.preemptions)
        schedules.append(result.schedule)
    assert levels == sorted(levels)
    assert levels[0] == 0
    assert levels[-1] == 2
    assert len(set(schedules)) == len(schedules)
    # The same executions as one bounded search, in another order.
    plain = explore(locked_counter(3).body, DfsChooser(preemption_bound=2, reduction=False))
    assert sorted(schedules) == sorted(r.schedule for r in plain.runs)


# --- counts, with and without reduction ---------------------------------------------------

# Measured (executions started, of which pruned) for a complete search.  Exact on purpose:
# a change here means the search, the sim's choice points or its footprints changed.
MEASURED = [
    # program, bound, (with reduction), (without reduction)
    ("lost_update", None, (16, 0), (20, 0)),
    ("lost_update", 1, (6, 0), (6, 0)),
    # 6 of the 20 were pruned while a step starting at an acquire was taken to touch only
    # that lock (trust_primitives without the noted-only promise: unsound, trial 16a f07);
    # lock_order does not promise it, so every such step is unknown now.
    ("lock_order", None, (20, 0), (20, 0)),
    ("lock_order", 1, (6, 0), (6, 0)),
    ("two_preemptions", None, (20, 0), (20, 0)),
    ("two_preemptions", 2, (14, 0), (14, 0)),
    ("locked_counter(2)", None, (3, 0), (6, 0)),
    ("locked_counter(3)", None, (15, 0), (90, 0)),
    ("locked_counter(3)", 1, (4, 0), (24, 0)),
    ("locked_counter(4)", None, (105, 0), (2520, 0)),
    ("disjoint", None, (14, 8), (20, 0)),
]

PROGRAMS: dict[str, Program] = {
    "lost_update": lost_update,
    "lock_order": lock_order,
    "two_preemptions": two_preemptions,
    "locked_counter(2)": locked_counter(2).body,
    "locked_counter(3)": locked_counter(3).body,
    "locked_counter(4)": locked_counter(4).body,
    "disjoint": disjoint,
}


@pytest.mark.parametrize(
    ("name", "bound", "reduced", "full"),
    [pytest.param(*m, id=f"{m[0]}-bound{m[1]}") for m in MEASURED],
)
def test_complete_search_counts(
    name: str, bound: int | None, reduced: tuple[int, int], full: tuple[int, int]
) -> None:
    counts = []
    outcomes = []
    for reduction in (True, False):
        c = DfsChooser(preemption_bound=bound, reduction=reduction)
        ex = explore(PROGRAMS[name], c)
        assert c.is_complete
        assert c.executions == len(ex.runs) + len(ex.pruned)
        counts.append((c.executions, c.executions_pruned))
        outcomes.append(ex.outcomes)
    print(f"{name} bound={bound}: reduced {counts[0]}, full {counts[1]}")
    assert counts == [reduced, full]
    # Reduction drops redundant schedules, never a behaviour.
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("name", ["locked_counter(3)", "disjoint"])
def test_reduction_runs_strictly_fewer_schedules(name: str) -> None:
    reduced = explore(PROGRAMS[name], DfsChooser())
    full = explore(PROGRAMS[name], DfsChooser(reduction=False))
    assert reduced.chooser.is_complete
    assert full.chooser.is_complete
    assert len(reduced.runs) < len(full.runs)
    assert reduced.outcomes == full.outcomes


def test_disjoint_tasks_are_pruned_by_sleep_sets_not_symmetry() -> None:
    no_symmetry = explore(disjoint, DfsChooser(symmetry=False))
    full = explore(disjoint, DfsChooser(reduction=False))
    assert no_symmetry.pruned  # the sleep sets did it
    assert len(no_symmetry.runs) < len(full.runs)
    assert no_symmetry.outcomes == full.outcomes == {("ok", "{'a': 2, 'b': 2}")}


# Random programs whose complete search is small; they mix reads, writes and mutexes.
RANDOM_SEEDS = [0, 10, 14, 21, 29, 37, 56, 57]


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_sleep_sets_keep_every_outcome_of_random_programs(seed: int) -> None:
    program = random_program(seed)
    reduced = explore(program, DfsChooser())
    full = explore(program, DfsChooser(reduction=False))
    assert reduced.chooser.is_complete
    assert full.chooser.is_complete
    assert len(reduced.runs) < len(full.runs)
    assert reduced.outcomes == full.outcomes


@pytest.mark.parametrize("seed", RANDOM_SEEDS[:4])
def test_iterative_search_without_a_limit_covers_the_same_outcomes(seed: int) -> None:
    program = random_program(seed)
    iterative = explore(program, DfsChooser(iterative=True))
    full = explore(program, DfsChooser(reduction=False))
    assert iterative.chooser.is_exhaustive
    assert iterative.outcomes == full.outcomes


def test_untrusted_primitives_reduce_less_and_keep_every_outcome() -> None:
    # lock_order shares nothing but its two mutexes, so it may promise noted-only; under
    # the promise a step starting at an acquire also declares the lock.
    trusted = explore(lock_order, DfsChooser(symmetry=False), noted_only=True)
    untrusted = explore(
        lock_order, DfsChooser(symmetry=False, trust_primitives=False), noted_only=True
    )
    assert untrusted.chooser.trust_primitives is False
    assert len(untrusted.pruned) <= len(trusted.pruned)
    assert trusted.pruned
    assert untrusted.outcomes == trusted.outcomes


def test_without_the_promise_a_step_at_a_primitive_is_unknown_trusted_or_not() -> None:
    # The code after an acquire runs in the same step and may touch any plain state:
    # without the noted-only promise nothing is pruned, whatever trust_primitives says.
    for trust in (True, False):
        ex = explore(lock_order, DfsChooser(symmetry=False, trust_primitives=trust))
        assert ex.chooser.is_complete
        assert not ex.pruned
        assert ex.outcomes == {("ok", "None"), ("deadlock", "None")}


# --- symmetry --------------------------------------------------------------------------

# Complete searches of locked_counter(n) with reduction, measured: (2n - 1)!! = 1·3·5···
# (symmetry merges the workers that have not started; once started, each is itself).
SYMMETRY_COUNTS = {3: 15, 4: 105, 5: 945}


@pytest.mark.parametrize("n", sorted(SYMMETRY_COUNTS))
def test_symmetry_tames_identical_workers(n: int) -> None:
    body = locked_counter(n).body
    reduced = explore(body, DfsChooser())
    assert reduced.chooser.is_complete
    assert reduced.chooser.executions == SYMMETRY_COUNTS[n] < 1_000
    assert reduced.outcomes == {("ok", str(n))}
    cap = 3_000
    full = explore(body, DfsChooser(reduction=False), budget=cap)
    sleep_only = explore(body, DfsChooser(symmetry=False), budget=cap)
    print(f"locked_counter({n}): reduced {reduced.chooser.executions}, full", end=" ")
    # Symmetry prunes: more executions without it (sleep sets alone), even cut at `cap`.
    assert sleep_only.chooser.executions > SYMMETRY_COUNTS[n]
    if n <= 4:
        assert full.chooser.is_complete
        assert full.chooser.executions == {3: 90, 4: 2520}[n]
        print(full.chooser.executions)
    else:
        # Measured: 7920 executions within bound 2 alone for n=5.
        assert not full.chooser.is_complete
        assert full.chooser.executions == cap
        print(f"> {cap} (cut)")


async def _readers_and_writer() -> tuple[int, tuple[int, ...]]:
    state = {"x": 0, "y": -1}
    reads: list[int] = []

    async def reader() -> None:
        await rt.checkpoint(Footprint.read("x"))
        value = state["x"]
        reads.append(value)
        await rt.checkpoint(Footprint.write("y"))
        state["y"] = value

    async def writer() -> None:
        await rt.checkpoint(Footprint.write("x"))
        state["x"] = 5

    async with rt.task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(reader)
        tg.start_soon(writer)
    return state["y"], tuple(sorted(reads))


def test_symmetry_keeps_readers_that_read_different_values_apart() -> None:
    # The two readers pass the same checkpoints but may read different values (a local
    # taken from shared state): once started they are not interchangeable, and symmetry
    # (which merges only tasks that have not started) keeps "the reader that read 0
    # wrote last".  Before, symmetry merged tasks of equal step history and missed it.
    full = explore(_readers_and_writer, DfsChooser(reduction=False)).outcomes
    sleep_only = explore(_readers_and_writer, DfsChooser(symmetry=False)).outcomes
    with_symmetry = explore(_readers_and_writer, DfsChooser()).outcomes
    assert sleep_only == full == with_symmetry
    assert ("ok", "(0, (0, 5))") in with_symmetry


# --- draws ------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", [True, False])
def test_every_drawn_value_is_explored(reduction: bool) -> None:
    ex = explore(drawing, DfsChooser(reduction=reduction))
    assert ex.chooser.is_complete
    values = {r.value for r in ex.runs}
    assert values == {(a, b) for a in range(2) for b in range(3)} | {
        (b, a) for a in range(2) for b in range(3)
    }


# --- determinism and replay ---------------------------------------------------------------

DETERMINISM_PROGRAMS = [lost_update, lock_order, two_preemptions, disjoint, drawing]


def _trail(program: Program, **kwargs: Any) -> list[tuple[str, tuple[int, ...]]]:
    ex = explore(program, DfsChooser(**kwargs))
    trail: list[tuple[str, tuple[int, ...]]] = [("run", r.schedule) for r in ex.runs]
    trail += [("pruned", p) for p in ex.pruned]
    return trail


@pytest.mark.parametrize("reduction", [True, False])
@pytest.mark.parametrize("program", DETERMINISM_PROGRAMS, ids=lambda p: p.__name__)
def test_same_search_every_time(program: Program, reduction: bool) -> None:
    assert _trail(program, reduction=reduction) == _trail(program, reduction=reduction)


def test_same_search_in_another_process() -> None:
    here = {
        "counter": [list(s) for _, s in _trail(locked_counter(4).body)],
        "random": [list(s) for _, s in _trail(random_program(56))],
    }
    code = textwrap.dedent(
        """
        import json
        from odp_async.scenarios.classic import locked_counter
        from tests.explore.test_dfs import _trail, random_program
        print(json.dumps({
            "counter": [list(s) for _, s in _trail(locked_counter(4).body)],
            "random": [list(s) for _, s in _trail(random_program(56))],
        }))
        """
    )
    for hash_seed in ("1", "987654"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        assert json.loads(out.stdout) == here


@pytest.mark.parametrize("reduction", [True, False])
@pytest.mark.parametrize("program", DETERMINISM_PROGRAMS, ids=lambda p: p.__name__)
def test_every_explored_schedule_replays(program: Program, reduction: bool) -> None:
    ex = explore(program, DfsChooser(reduction=reduction))
    assert ex.runs
    for original in ex.runs:
        replayed = sim.run(program, chooser=ReplayChooser(original.schedule))
        assert replayed.outcome == original.outcome
        assert repr(replayed.value) == repr(original.value)
        assert replayed.schedule == original.schedule


def test_schedules_are_distinct_without_reduction() -> None:
    ex = explore(locked_counter(3).body, DfsChooser(reduction=False))
    schedules = [r.schedule for r in ex.runs]
    assert len(set(schedules)) == len(schedules) == 90


def _run_all(
    program: Program, chooser: DfsChooser, results: list[sim.SimResult] | None = None
) -> None:
    while chooser.has_more:
        result = sim.run(program, chooser=chooser)
        if results is not None:
            results.append(result)


def test_a_program_that_changes_between_runs_is_reported() -> None:
    calls = [0]

    async def moody() -> None:
        calls[0] += 1

        async def noop() -> None:
            await rt.checkpoint("noop")

        async with rt.task_group() as tg:
            for _ in range(1 + calls[0] % 2):
                tg.start_soon(noop)
            tg.start_soon(noop)

    c = DfsChooser(reduction=False)
    with pytest.raises(NondeterminismError, match="not deterministic"):
        _run_all(moody, c)
    assert c.failure is not None
    assert not c.is_complete
    # The search stays failed: the next run raises again rather than exploring garbage.
    assert c.has_more
    with pytest.raises(NondeterminismError):
        sim.run(moody, chooser=c)


def test_a_draw_that_changes_between_runs_is_reported() -> None:
    calls = [0]

    async def moody() -> int:
        calls[0] += 1
        return rt.draw(2 + calls[0] % 2, "size")

    c = DfsChooser(reduction=False)
    results: list[sim.SimResult] = []
    with pytest.raises(NondeterminismError, match="draws among"):
        _run_all(moody, c, results)
    # A chooser's error leaves the sim from the driver, not as the program's outcome:
    # the runs that completed before it are all clean.
    assert all(r.error is None for r in results)


# --- the explorer protocol ----------------------------------------------------------------


def test_explorer_loop_and_statistics() -> None:
    c = DfsChooser(preemption_bound=1, iterative=True)
    assert c.has_more
    assert not c.is_complete
    assert c.complete_bound is None
    ex = explore(lock_order, c)
    stats = c.statistics()
    assert stats == DfsStatistics(
        executions=len(ex.runs) + len(ex.pruned),
        pruned=len(ex.pruned),
        bound=1,
        complete_bound=1,
        is_complete=True,
        is_exhaustive=False,
        max_depth=c.max_depth,
        max_preemptions=1,
    )
    assert stats.max_depth >= 3
    with pytest.raises(ProtocolViolation, match="has_more"):
        sim.run(lock_order, chooser=c)


def test_unbounded_complete_search_is_exhaustive() -> None:
    c = DfsChooser()
    explore(lost_update, c)
    assert c.is_complete
    assert c.is_exhaustive
    assert c.bound is None
    assert c.complete_bound == c.max_preemptions == 3


def test_pruned_execution_says_why() -> None:
    c = DfsChooser()
    ex = explore(lock_order, c, noted_only=True)
    assert ex.pruned
    err = PrunedExecution("sleep-set", (0, 1))
    assert err.reason == "sleep-set"
    assert err.choices == (0, 1)
    assert "sleep-set" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert (again.reason, again.choices, str(again)) == (err.reason, err.choices, str(err))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"preemption_bound": -1}, "preemption_bound"),
        ({"preemption_bound": 1.5}, "preemption_bound"),
        ({"preemption_bound": True}, "preemption_bound"),
        ({"iterative": 1}, "iterative"),
        ({"reduction": None}, "reduction"),
        ({"symmetry": "yes"}, "symmetry"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgument, match=name) as info:
        DfsChooser(**kwargs)
    assert name in info.value.args


def test_flags_the_sim_reads() -> None:
    reduced = DfsChooser()
    assert reduced.ask_always
    assert reduced.wants_footprints
    assert reduced.symmetry
    full = DfsChooser(reduction=False)
    assert not full.ask_always
    assert not full.wants_footprints
    assert not full.symmetry
    symmetric = DfsChooser(reduction=False, symmetry=True)
    assert symmetric.wants_footprints
    assert not symmetric.ask_always
    assert "reduction=False" in repr(full)


# --- an ODP model scenario -------------------------------------------------------------


def _explore_world(name: str, protocol: str, bound: int) -> tuple[DfsChooser, Any]:
    c = DfsChooser(preemption_bound=bound, iterative=True)
    while c.has_more and c.executions < 5_000:
        try:
            run = run_world(BUILTIN[name].body, protocol=protocol, chooser=c)
        except PrunedExecution:
            continue
        if run.violations:
            return c, run
    return c, None


def test_dfs_finds_fault_vs_munmap_on_naive_within_two_preemptions() -> None:
    c, run = _explore_world("fault-vs-munmap", "naive", 2)
    assert run is not None
    assert c.preemptions <= 2
    assert "stale-translation" in run.kinds
    replayed = run_world(
        BUILTIN["fault-vs-munmap"].body,
        protocol="naive",
        chooser=ReplayChooser(run.sim.schedule),
    )
    assert replayed.kinds == run.kinds


def test_dfs_clears_fault_vs_munmap_on_odp2014_up_to_two_preemptions() -> None:
    c, run = _explore_world("fault-vs-munmap", "odp2014", 2)
    assert run is None
    assert c.is_complete
    assert c.complete_bound == 2
