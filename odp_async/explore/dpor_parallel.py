"""DPOR split into subtrees: one search, handed out as prefixes to any executor.

Contract
    `explore_split(target, config, executor, sink)` runs the DPOR search of ``target``
    (`odp_async.explore.dpor.DporChooser`) as independent work items, one per *prefix*,
    on an `odp_async.explore.executors.Executor` (this process, worker processes, a Dask
    cluster):

    0. **Head.**  First, one work item runs the serial search itself (no prefix) for up
       to `HEAD_TRACES` traces: the traces ``1..h`` of the split search are the serial
       search's, so whatever the serial DPOR finds within them is found at the same
       index, and a search the serial DPOR completes within them is complete with the
       serial counts.  Without it, a program where one subtree holds many executions of
       few preemptions (a task spinning on ``await checkpoint()``) spent the budget
       there: a lost update the serial search finds at trace 9 was not found within
       1,000.  If the head neither completes nor stops at a failure, the split search
       below runs from its start, its traces counted after the head's (the head's
       traces are run again there: the price of a deterministic order).
    1. **Split.**  This process enumerates the prefixes of the schedule tree, level by
       level (one choice among several tasks or values per level): each prefix is
       replaced by all its children, in option order, until there are at least
       `SPLIT_PREFIXES` of them (the rest of that level stays one level up) or none can
       be extended (`frontier`).  It runs the program once per prefix expanded (a probe,
       stopped at the next choice: not a schedule, nothing is checked).  Every
       alternative of an expanded choice is kept (within the preemption bound; one cut
       by the bound makes the search incomplete): the prefixes, in tree order, are the
       *prefix order*.
    2. **Subtrees.**  Work item `k` (`run_subtree`) runs ``DporChooser(prefix=...)``: a
       source-DPOR search of the executions that start with prefix `k`.  A race it finds
       whose reversal point lies inside the prefix is dropped: every alternative there
       is already a work item of its own (sound; redundant where DPOR would have skipped
       an alternative).  The sleep set starts empty where the prefix ends (a sleep set
       only prunes, so an empty one is sound; the siblings' sleep entries are not carried
       across the split).  Each subtree is a complete DPOR from its prefix's state, and
       the prefixes cover every choice at the top levels, so the union covers every
       Mazurkiewicz trace: a search that completes says so, and a violation the serial
       DPOR finds is of a kind the split search finds (every trace class is run).
    3. **Levels.**  Like the serial search, which takes its pending entries fewest
       preemptions first, the split search runs in rounds by level: round `L` runs
       every subtree that has executions whose forced prefix has `L` preemptions, up to
       the first entry with more (`run_subtree` with ``level=L``; a subtree's first
       execution has its prefix's preemptions), for `L` below `LEVEL_ROUNDS`; the next
       round runs every subtree to its end.  Levels no subtree has are skipped.  A
       search is stateless, so a round runs its subtrees again from their start (the
       run up to `L` is the beginning of the run up to a higher level): the price of
       the order, small where the last round holds most traces.
    4. **Order.**  Schedule `i` of the split search is the `i`-th trace by round, then
       by prefix order, then in the subtree's own (deterministic) order; a trace belongs
       to the round that first ran it.  Items run anywhere, in any order; each result
       depends only on (prefix, level, budget), and what a round runs only on the rounds
       before it, so the counts, the failing indices, the first failure (lowest index)
       and its schedule and token are identical for every executor and worker count.
       The budget (``schedules`` traces) counts in that order: the item where it runs
       out is run again with just what is left, and the items after it in that round
       keep their previous round's traces.  With ``stop_on_first`` a failing item ends
       the search and cancels the items after it in its round.

    The split is fixed (`SPLIT_PREFIXES`), not sized from measured time: a measured size
    would make the counts depend on the machine.  Compared with the serial DPOR
    (``jobs=1``, no executor), the split search runs at least one trace per prefix and
    re-explores what the top levels' backtrack and sleep sets would have pruned: 1.2-2.3x
    the serial search's traces on the SCTBench programs (tests/explore/
    test_dpor_distributed.py checks the same violation kinds and completeness).  On the
    model's scenarios the redundancy is far larger: the 232 traces of the serial search
    of registration-race/interval-seq start with only 3 distinct 3-choice prefixes, while
    the split takes every alternative of its first 3 choices (64 prefixes, most of them
    equivalent orders of independent first steps), each searched from an empty sleep
    set; its first 12 subtrees alone run 814 traces (one of them 268), so with 2 jobs the
    split had not completed after 3,894 schedules (100 s) what the serial search
    completes in 232 (where the serial search completes within `HEAD_TRACES`, the head
    returns its result).  The probes run the program: a `KeyboardInterrupt` it raises
    there stops the search before any schedule.

Concurrency
    Blocking; the caller's thread drives the executor.  `run_subtree` is the task an
    executor runs (a module-level function; its target may be a `TargetSpec`).

See also
    `odp_async.explore.dpor` (the search), `odp_async.explore.runner` (``explore``
    calls this for ``chooser="dpor"`` with ``jobs > 1`` or an executor).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

import attrs

from .._runtime.footprint import hidden_write, tracking_run_ends, tracking_run_starts
from ..errors import NondeterminismError
from .config import ExploreConfig
from .dfs import PrunedExecution
from .dpor import DporChooser
from .executors import Executor, InlineExecutor
from .fairness import fair_after
from .target import Target, TargetSpec

__all__ = [
    "LEVEL_ROUNDS",
    "MAX_SPLIT_DEPTH",
    "SPLIT_PREFIXES",
    "Frontier",
    "SubtreeResult",
    "explore_split",
    "frontier",
    "run_subtree",
]

#: The least number of prefixes (work items) a split search hands out, when the tree has
#: that many: ~4 items per worker of a 16-worker cluster, few enough that the redundancy
#: of the top levels stays small.  Fixed, so results do not depend on the machine.
SPLIT_PREFIXES = 64

#: The most levels (choices) a prefix has.
MAX_SPLIT_DEPTH = 32

#: The preemption levels that have a round of their own (0, 1, 2): the next round runs
#: every subtree to its end.  Most bugs need few preemptions (Musuvathi and Qadeer,
#: PLDI 2007); each round runs its subtrees again from their start.
LEVEL_ROUNDS = 3

#: The traces of the serial search run first, as one work item (the split's head).
HEAD_TRACES = 64

#: Seconds `explore_split` waits for results between two progress reports.
WAIT_SECONDS = 1.0

_Hit = tuple[int, tuple[int, ...]]


class Sink(Protocol):
    """Where the results go (the runner's tally): `done` traces so far, `pruned`, and
    `truncated` (set when an item's execution stopped at the step bound)."""

    done: int
    pruned: int
    truncated: bool

    def merge(
        self,
        worker: str,
        done: int,
        steps: int,
        failing: tuple[int, ...],
        hit: _Hit | None,
        found_by: str | None = None,
        *,
        unfinished: int = 0,
    ) -> None: ...

    def report(self, *, force: bool = False) -> None: ...

    def time_is_up(self, ran: int | None = None) -> bool:
        """True once the wall-clock budget is spent (never before `ran` > 0)."""
        ...


@attrs.frozen
class Frontier:
    """The prefixes of a split search, in prefix order; `cut` when the preemption bound
    dropped an alternative while splitting."""

    prefixes: tuple[tuple[int, ...], ...]
    cut: bool
    #: The preemptions of each prefix.
    costs: tuple[int, ...] = ()


@attrs.frozen
class SubtreeResult:
    """What a work item sends back: traces run (to their end), executions pruned, steps,
    the 1-based (within the item) indices of the failing traces, the first failure
    (index, full schedule), whether its DPOR search ran to its end (`finished`; within
    the preemption bound) and whether it was also exhaustive (the bound cut nothing),
    whether the explored code raised KeyboardInterrupt, and its seconds."""

    traces: int
    pruned: int
    steps: int
    failing: tuple[int, ...]
    hit: _Hit | None
    finished: bool
    exhaustive: bool
    interrupted: bool
    elapsed: float
    #: The preemptions of the next execution's forced prefix (None: finished).
    upcoming: int | None = None
    #: An execution stopped at the step bound (`DporChooser.truncated`): not exhaustive.
    truncated: bool = False
    #: How many of its traces reached the step bound unfinished (`Execution.unfinished`).
    unfinished: int = 0


class _Stopped(Exception):
    """A probe reached the choice after its prefix."""


class _Probe:
    """Replays a prefix, then stops the run at the next choice and records it: the number
    of options and which of them would be preemptions (a draw: none), and the prefix's
    own preemptions."""

    __slots__ = ("_pos", "_prefix", "cost", "costs")

    def __init__(self, prefix: tuple[int, ...]) -> None:
        self._prefix = prefix
        self._pos = 0
        self.cost = 0
        self.costs: tuple[int, ...] | None = None

    def new_execution(self) -> None:
        self._pos = 0
        self.cost = 0
        self.costs = None

    def _next(self, costs: tuple[int, ...]) -> int:
        if self._pos >= len(self._prefix):
            self.costs = costs
            raise _Stopped
        pick = self._prefix[self._pos]
        self._pos += 1
        self.cost += costs[pick]
        return pick

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return self._next(tuple(0 if last is None or t is last else 1 for t in runnable))

    def draw(self, n: int, label: object) -> int:
        return self._next((0,) * n)


def frontier(target: Target, config: ExploreConfig, least: int = SPLIT_PREFIXES) -> Frontier:
    """The prefixes of `target`'s split search (see the module docstring): level by level,
    each prefix is replaced by its children (in option order) until there are `least`
    of them (the rest of that level stays as it is), no prefix can be extended, or they
    are `MAX_SPLIT_DEPTH` choices long."""
    bound = config.preemption_bound
    # (prefix, is a leaf, its preemptions)
    level: list[tuple[tuple[int, ...], bool, int]] = [((), False, 0)]
    cut = False
    for _ in range(MAX_SPLIT_DEPTH):
        if len(level) >= least or all(leaf for _, leaf, _ in level):
            break
        grown: list[tuple[tuple[int, ...], bool, int]] = []
        for at, (prefix, leaf, had) in enumerate(level):
            if leaf or len(grown) + len(level) - at >= least:
                grown.append((prefix, leaf, had))
                continue
            probe = _Probe(prefix)
            try:
                target.run(probe, max_steps=config.max_steps)
            except _Stopped:
                pass
            if probe.costs is None:
                grown.append((prefix, True, had))  # the run ends before another choice
                continue
            for option, cost in enumerate(probe.costs):
                if bound is not None and probe.cost + cost > bound:
                    cut = True
                    continue
                grown.append(((*prefix, option), False, probe.cost + cost))
        level = grown
    return Frontier(tuple(p for p, _, _ in level), cut, tuple(c for _, _, c in level))


def _check_hidden() -> None:
    # State changed past every note (a class attribute written through its class): the
    # item cannot be complete (`odp_async._runtime.footprint.hidden_write`).
    why = hidden_write()
    if why is not None:
        raise NondeterminismError(why)


def run_subtree(
    target: Target | TargetSpec,
    config: ExploreConfig,
    prefix: tuple[int, ...],
    budget: int,
    level: int | None = None,
    first: int = 0,
) -> SubtreeResult:
    """Work item: the DPOR search below `prefix`, at most `budget` traces, up to the
    executions whose forced prefix has at most `level` preemptions (None: all; `first`:
    the first execution's, the prefix's own), stopping at the first failure with
    ``config.stop_on_first`` (the task an executor runs).  The run with a level is the
    beginning of the run with a higher one."""
    if isinstance(target, TargetSpec):
        from .runner import _rebuilt  # the runner's per-process cache of rebuilt targets

        target = _rebuilt(target)
    start = time.perf_counter()
    chooser = DporChooser(
        config.preemption_bound,
        trust_primitives=config.trust_primitives and not target.scenario.needs_world,
        prefix=prefix,
        fair_after=fair_after(config.max_steps),
    )
    traces = pruned = steps = unfinished = 0
    failing: list[int] = []
    hit: _Hit | None = None
    interrupted = stopped = False
    upcoming: int | None = first
    tracking_run_starts()  # one tracking session for the item's runs
    try:
        while traces < budget and chooser.has_more:
            upcoming = first if chooser.executions == 0 else chooser.next_preemptions
            if level is not None and upcoming is not None and upcoming > level:
                break
            try:
                execution = target.run(chooser, max_steps=config.max_steps)
            except PrunedExecution:
                pruned += 1
                _check_hidden()
                continue
            _check_hidden()
            traces += 1
            steps += execution.sim.steps
            unfinished += execution.unfinished
            if execution.is_failure:
                failing.append(traces)
                if hit is None:
                    hit = (traces, execution.sim.schedule)
                if config.stop_on_first:
                    stopped = True
                    break
    except KeyboardInterrupt:  # raised by the explored code (workers ignore SIGINT)
        interrupted = True
    finally:
        tracking_run_ends()
    finished = not (stopped or interrupted) and chooser.is_complete
    exhaustive = finished and chooser.is_exhaustive
    if not finished:
        upcoming = first if chooser.executions == 0 else chooser.next_preemptions
    elapsed = time.perf_counter() - start
    return SubtreeResult(
        traces,
        pruned,
        steps,
        tuple(failing),
        hit,
        finished,
        exhaustive,
        interrupted,
        elapsed,
        None if finished else upcoming,
        chooser.truncated,
        unfinished,
    )


@attrs.define
class _Item:
    """A prefix's latest accepted result, and how many traces it had after each round
    it ran in (round, traces)."""

    worker: str = "main"
    result: SubtreeResult | None = None
    counts: list[tuple[int, int]] = attrs.field(factory=list)

    @property
    def traces(self) -> int:
        return self.result.traces if self.result is not None else 0


def explore_split(
    target: Target,
    config: ExploreConfig,
    executor: Executor,
    sink: Sink,
    *,
    least: int = SPLIT_PREFIXES,
) -> bool:
    """Run the split DPOR search of `target` on `executor` and add what ran to `sink`
    (see the module docstring).  True when the search is complete: every item
    exhaustive, nothing cut by the bound, the budget not spent and no stop at a failure.
    An item's error (a `NondeterminismError`...) is raised here; so is
    `KeyboardInterrupt` raised by the explored code, after the rounds that ran are
    added to `sink` (a partial result)."""
    task: Target | TargetSpec = target
    if not isinstance(executor, InlineExecutor):
        task = target.spec()
        executor.prepare(task)
    offset = 0
    ran = _run_head(task, config, executor)
    if ran is not None:
        worker, head = ran
        sink.merge(
            worker,
            head.traces,
            head.steps,
            head.failing,
            head.hit,
            "dpor",
            unfinished=head.unfinished,
        )
        sink.pruned += head.pruned
        if head.truncated:
            sink.truncated = True
        if head.interrupted:
            raise KeyboardInterrupt  # what the head ran is in `sink`: a partial result
        if head.finished:
            return head.exhaustive  # the serial search ended within the head
        left = config.schedules - head.traces
        if (head.hit is not None and config.stop_on_first) or left <= 0:
            return False
        if sink.time_is_up(head.traces):
            return False
        offset = head.traces
        config = config.evolve(schedules=left)
    split = frontier(target, config, least)
    prefixes, costs = split.prefixes, split.costs
    n = len(prefixes)
    items = [_Item() for _ in range(n)]
    news: list[list[int]] = []  # per round: the new traces of each item
    complete = not split.cut
    try:
        while True:
            upcoming = [
                costs[k] if item.result is None else item.result.upcoming
                for k, item in enumerate(items)
            ]
            levels = [u for u in upcoming if u is not None]
            if not levels:
                break  # every subtree ran to its end
            left = config.schedules - sum(item.traces for item in items)
            if left <= 0 or sink.time_is_up(offset + sum(item.traces for item in items)):
                complete = False
                break
            level: int | None = min(levels)
            if level is not None and level >= LEVEL_ROUNDS:
                level = None  # the last round: every subtree to its end
            active = [k for k in range(n) if upcoming[k] is not None]
            if level is not None:
                active = [k for k in active if upcoming[k] == level]
            wanted = {k: (items[k].traces + left, level) for k in active}
            had = [item.traces for item in items]
            done = _run_round(
                task, config, prefixes, costs, executor, wanted, len(news), had, left, sink
            )
            new = [0] * n
            news.append(new)
            stop = False
            for k in active:
                if k not in done:
                    stop, complete = True, False
                    break  # cancelled: after the failing item, or out of time
                worker, result = done[k]
                grew = result.traces - items[k].traces
                if grew > left:
                    # The budget ends inside this item: run just what is left of it.
                    budget = items[k].traces + left
                    again = _run_round(
                        task, config, prefixes, costs, executor, {k: (budget, level)}, -1
                    )
                    worker, result = again[k]
                    grew = left
                    stop = True
                items[k] = _Item(
                    worker, result, [*items[k].counts, (len(news) - 1, result.traces)]
                )
                new[k] = grew
                left -= grew
                hit = result.hit is not None and config.stop_on_first
                if stop or hit:
                    stop, complete = True, False
                    break
            _progress(sink, items)
            if stop:
                break
    except KeyboardInterrupt:
        executor.abort()
        _merge(items, news, sink, offset)
        raise
    except BaseException:
        executor.abort()
        raise
    _merge(items, news, sink, offset)
    if any(item.result is not None and item.result.truncated for item in items):
        sink.truncated = True
    return complete and all(item.result is not None and item.result.exhaustive for item in items)


def _progress(sink: Sink, items: list[_Item]) -> None:
    base = sink.done  # the head's, merged already
    sink.done = base + sum(item.traces for item in items)
    try:
        sink.report()
    finally:
        sink.done = base


def _run_head(
    task: Target | TargetSpec, config: ExploreConfig, executor: Executor
) -> tuple[str, SubtreeResult] | None:
    """The head: the serial search (no prefix) for up to `HEAD_TRACES` traces, as one
    work item on `executor`: (its worker, its result); None when `HEAD_TRACES` is 0."""
    budget = min(HEAD_TRACES, config.schedules)
    if budget <= 0:
        return None
    executor.submit(("head",), run_subtree, task, config, (), budget, None, 0)
    try:
        while True:
            for outcome in executor.wait(WAIT_SECONDS):
                if outcome.key != ("head",):
                    continue
                if outcome.error is not None:
                    raise outcome.error
                result: SubtreeResult = outcome.value
                return outcome.worker, result
    except BaseException:
        executor.abort()
        raise


def _run_round(
    task: Target | TargetSpec,
    config: ExploreConfig,
    prefixes: tuple[tuple[int, ...], ...],
    costs: tuple[int, ...],
    executor: Executor,
    wanted: dict[int, tuple[int, int | None]],
    round_: int,
    had: list[int] | None = None,
    left: int = 0,
    sink: Sink | None = None,
) -> dict[int, tuple[str, SubtreeResult]]:
    """Run the items of `wanted` (item -> (budget, level)), keeping `executor.window`
    submitted, lowest first: their (worker, result).  An item after the one where the
    results so far, in prefix order, add up `left` new traces (beyond `had`, the traces
    each had) is not needed: cancelled, left out.  So is, with ``stop_on_first``, an item
    after a failing one, and every item not yet submitted once the wall-clock budget of
    `sink` is spent (what is running finishes; an item runs to its end)."""
    todo = sorted(wanted)
    pending: dict[Hashable, int] = {}
    done: dict[int, tuple[str, SubtreeResult]] = {}
    last: int | None = None  # no item after it is needed
    at = 0
    ran = sum(had) if had is not None else 0
    while True:
        if sink is not None and at < len(todo):
            started = ran + sum(r.traces - (had[k] if had else 0) for k, (_, r) in done.items())
            if sink.time_is_up(started):
                at = len(todo)  # submit nothing more
        while at < len(todo) and len(pending) < executor.window:
            item = todo[at]
            at += 1
            if last is not None and item > last:
                continue
            key = (round_, item)
            budget, level = wanted[item]
            if had is not None and all(k in done for k in todo[: at - 1]):
                # every item before it is done: just what they left (nothing to re-run)
                used = sum(done[k][1].traces - had[k] for k in todo[: at - 1])
                budget = min(budget, had[item] + left - used)
            executor.submit(
                key, run_subtree, task, config, prefixes[item], budget, level, costs[item]
            )
            pending[key] = item
        if not pending:
            return {k: v for k, v in done.items() if last is None or k <= last}
        for outcome in executor.wait(WAIT_SECONDS):
            item = pending.pop(outcome.key, -1)
            if item < 0:
                continue
            if outcome.error is not None:
                raise outcome.error
            result: SubtreeResult = outcome.value
            if result.interrupted:
                raise KeyboardInterrupt
            done[item] = (outcome.worker, result)
            end = last
            if config.stop_on_first and result.hit is not None:
                end = item if end is None else min(end, item)
            if had is not None:
                grown = 0
                for k in todo:  # the items done so far, in prefix order
                    if k not in done or (end is not None and k > end):
                        break
                    grown += done[k][1].traces - had[k]
                    if grown >= left:
                        end = k if end is None else min(end, k)
                        break
            if end is not None and end != last:
                last = end
                late = [other for other, k in pending.items() if k > end]
                executor.cancel(late)
                for other in late:
                    del pending[other]


def _merge(items: list[_Item], news: list[list[int]], sink: Sink, offset: int = 0) -> None:
    """Add the items' results to `sink`.  The order of the traces: after `offset` (the
    head's), by round, then by item (prefix order), then in the item's own order; a
    trace belongs to the round whose run first reached it."""
    offsets: list[list[int]] = []  # per round, per item: the traces before its new ones
    base = offset
    for new in news:
        row = []
        for grew in new:
            row.append(base)
            base += grew
        offsets.append(row)

    def index(k: int, m: int) -> int:
        before = 0
        for round_, count in items[k].counts:
            if m <= count:
                return offsets[round_][k] + m - before
            before = count
        raise AssertionError(f"trace {m} of item {k} is in no round")

    for k, item in enumerate(items):
        result = item.result
        if result is None:
            continue
        failing = tuple(index(k, m) for m in result.failing)
        hit = (index(k, result.hit[0]), result.hit[1]) if result.hit is not None else None
        sink.merge(
            item.worker,
            result.traces,
            result.steps,
            failing,
            hit,
            "dpor",
            unfinished=result.unfinished,
        )
        sink.pruned += result.pruned
