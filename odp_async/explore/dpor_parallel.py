"""DPOR split into subtrees: one search, handed out as prefixes to any executor.

Contract
    `explore_split(target, config, executor, sink)` runs the DPOR search of ``target``
    (`odp_async.explore.dpor.DporChooser`) as independent work items, one per *prefix*,
    on an `odp_async.explore.executors.Executor` (this process, worker processes, a Dask
    cluster):

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
    3. **Budget.**  The budget (``schedules`` traces) is shared evenly between the items
       (`shares`), so a budgeted search samples every subtree, as the serial search's
       fewest-preemptions-first order samples the whole tree, instead of spending it all
       in the first subtree.  An item that did not finish within its share runs again
       (from its start) with at most twice its share, taken in prefix order from what
       the finished items left, while that is at least half its share.  So a search
       stops short of its budget by what no item could use that way, and re-running
       costs at most as much again.
    4. **Order.**  Schedule `i` of the split search is the `i`-th trace in prefix order,
       then in its subtree's own (deterministic) order, of each item's last run.  Items
       run anywhere, in any order; each result depends only on (prefix, share), and the
       shares of a round only on the results of the rounds before it, so the counts,
       the failing indices, the first failure (lowest index) and its schedule and token
       are identical for every executor and worker count.  With ``stop_on_first`` the
       first round with a failure is the last, and its failing item of lowest prefix
       order cancels the items after it.

    The split is fixed (`SPLIT_PREFIXES`), not sized from measured time: a measured size
    would make the counts depend on the machine.  The counts do depend on the budget (it
    sets the shares).  Compared with the serial DPOR (``jobs=1``, no executor), the split
    search runs at least one trace per prefix and re-explores what the top levels'
    backtrack and sleep sets would have pruned: 1.2-2.3x the serial search's traces on
    the SCTBench programs (tests/explore/test_dpor_distributed.py checks the same
    violation kinds and completeness).

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

from .config import ExploreConfig
from .dfs import PrunedExecution
from .dpor import DporChooser
from .executors import Executor, InlineExecutor
from .target import Target, TargetSpec

__all__ = [
    "MAX_SPLIT_DEPTH",
    "SPLIT_PREFIXES",
    "Frontier",
    "SubtreeResult",
    "explore_split",
    "frontier",
    "run_subtree",
    "shares",
]

#: The least number of prefixes (work items) a split search hands out, when the tree has
#: that many: ~4 items per worker of a 16-worker cluster, few enough that the redundancy
#: of the top levels stays small.  Fixed, so results do not depend on the machine.
SPLIT_PREFIXES = 64

#: The most levels (choices) a prefix has.
MAX_SPLIT_DEPTH = 32

#: Seconds `explore_split` waits for results between two progress reports.
WAIT_SECONDS = 1.0

_Hit = tuple[int, tuple[int, ...]]


class Sink(Protocol):
    """Where the results go (the runner's tally): `done` traces so far, `pruned`."""

    done: int
    pruned: int

    def merge(
        self, worker: str, done: int, steps: int, failing: tuple[int, ...], hit: _Hit | None
    ) -> None: ...

    def report(self, *, force: bool = False) -> None: ...


@attrs.frozen
class Frontier:
    """The prefixes of a split search, in prefix order; `cut` when the preemption bound
    dropped an alternative while splitting."""

    prefixes: tuple[tuple[int, ...], ...]
    cut: bool


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
    level: list[tuple[tuple[int, ...], bool]] = [((), False)]  # (prefix, is a leaf)
    cut = False
    for _ in range(MAX_SPLIT_DEPTH):
        if len(level) >= least or all(leaf for _, leaf in level):
            break
        grown: list[tuple[tuple[int, ...], bool]] = []
        for at, (prefix, leaf) in enumerate(level):
            if leaf or len(grown) + len(level) - at >= least:
                grown.append((prefix, leaf))
                continue
            probe = _Probe(prefix)
            try:
                target.run(probe, max_steps=config.max_steps)
            except _Stopped:
                pass
            if probe.costs is None:
                grown.append((prefix, True))  # the run ends before another choice
                continue
            for option, cost in enumerate(probe.costs):
                if bound is not None and probe.cost + cost > bound:
                    cut = True
                    continue
                grown.append(((*prefix, option), False))
        level = grown
    return Frontier(tuple(prefix for prefix, _ in level), cut)


def run_subtree(
    target: Target | TargetSpec, config: ExploreConfig, prefix: tuple[int, ...], budget: int
) -> SubtreeResult:
    """Work item: the DPOR search below `prefix`, at most `budget` traces, stopping at the
    first failure with ``config.stop_on_first`` (the task an executor runs)."""
    if isinstance(target, TargetSpec):
        from .runner import _rebuilt  # the runner's per-process cache of rebuilt targets

        target = _rebuilt(target)
    start = time.perf_counter()
    chooser = DporChooser(
        config.preemption_bound,
        trust_primitives=config.trust_primitives and not target.scenario.needs_world,
        prefix=prefix,
    )
    traces = pruned = steps = 0
    failing: list[int] = []
    hit: _Hit | None = None
    interrupted = stopped = False
    try:
        while traces < budget and chooser.has_more:
            try:
                execution = target.run(chooser, max_steps=config.max_steps)
            except PrunedExecution:
                pruned += 1
                continue
            traces += 1
            steps += execution.sim.steps
            if execution.is_failure:
                failing.append(traces)
                if hit is None:
                    hit = (traces, execution.sim.schedule)
                if config.stop_on_first:
                    stopped = True
                    break
    except KeyboardInterrupt:  # raised by the explored code (workers ignore SIGINT)
        interrupted = True
    finished = not (stopped or interrupted) and chooser.is_complete
    exhaustive = finished and chooser.is_exhaustive
    elapsed = time.perf_counter() - start
    return SubtreeResult(
        traces, pruned, steps, tuple(failing), hit, finished, exhaustive, interrupted, elapsed
    )


def shares(budget: int, items: int) -> list[int]:
    """`budget` split evenly between `items` (the first ones get the remainder)."""
    base, extra = divmod(budget, items)
    return [base + (1 if k < extra else 0) for k in range(items)]


def explore_split(
    target: Target,
    config: ExploreConfig,
    executor: Executor,
    sink: Sink,
    *,
    least: int = SPLIT_PREFIXES,
) -> bool:
    """Run the split DPOR search of `target` on `executor` and add what ran to `sink`, in
    prefix order (see the module docstring).  True when the search is complete: every
    item exhaustive, nothing cut by the bound, and no stop at a failure.  An item's error
    (a `NondeterminismError`...) is raised here; so is `KeyboardInterrupt` raised by the
    explored code.

    The budget (``config.schedules`` traces) is shared evenly between the items; an item
    that did not finish its subtree within its share is run again (from its start: a
    search is not carried from one task to the next) with at most twice its share,
    from what the finished ones left, in prefix order, while that is at least half its
    share (so re-running costs at most as much again).  With ``stop_on_first`` the first
    round with a failure is the last one, and the failing item of lowest prefix order
    cancels the items after it.  On `KeyboardInterrupt` the items that ran are added to
    `sink` (a partial result) before it propagates."""
    split = frontier(target, config, least)
    prefixes = split.prefixes
    n = len(prefixes)
    task: Target | TargetSpec = target
    if not isinstance(executor, InlineExecutor):
        task = target.spec()
        executor.prepare(task)
    final: dict[int, tuple[str, SubtreeResult]] = {}  # item -> its latest result
    budgets = dict(enumerate(shares(config.schedules, n)))
    rounds = 0
    try:
        while True:
            wanted = {k: b for k, b in budgets.items() if b > 0}
            _run_round(task, config, prefixes, executor, wanted, final, rounds, sink)
            rounds += 1
            if config.stop_on_first and any(r.hit for _, r in final.values()):
                break
            left = config.schedules - sum(r.traces for _, r in final.values())
            budgets = {}
            for k in range(n):
                result = final.get(k)
                if result is None or result[1].finished:
                    continue
                had = result[1].traces
                more = min(had, left)
                if more < max(1, had // 2):
                    break
                budgets[k] = had + more
                left -= more
            if not budgets:
                break
    except KeyboardInterrupt:
        executor.abort()
        _merge(final, n, config, sink)  # the partial result: the items that ran
        raise
    except BaseException:
        executor.abort()
        raise
    return _merge(final, n, config, sink) and not split.cut


def _run_round(
    task: Target | TargetSpec,
    config: ExploreConfig,
    prefixes: tuple[tuple[int, ...], ...],
    executor: Executor,
    budgets: dict[int, int],
    final: dict[int, tuple[str, SubtreeResult]],
    round_: int,
    sink: Sink,
) -> None:
    """Run the items of `budgets` (item -> traces), keeping `executor.window` submitted,
    lowest first; record each result in `final`.  With ``stop_on_first``, a failing item
    cancels the items after it."""
    todo = sorted(budgets)
    pending: dict[Hashable, int] = {}
    first_hit: int | None = None
    at = 0
    while True:
        while at < len(todo) and len(pending) < executor.window:
            item = todo[at]
            at += 1
            if first_hit is not None and item > first_hit:
                continue
            key = (round_, item)
            executor.submit(key, run_subtree, task, config, prefixes[item], budgets[item])
            pending[key] = item
        if not pending:
            return
        for outcome in executor.wait(WAIT_SECONDS):
            item = pending.pop(outcome.key, -1)
            if item < 0:
                continue
            if outcome.error is not None:
                raise outcome.error
            result: SubtreeResult = outcome.value
            if result.interrupted:
                raise KeyboardInterrupt
            final[item] = (outcome.worker, result)
            hit = config.stop_on_first and result.hit is not None
            if hit and (first_hit is None or item < first_hit):
                first_hit = item
                late = [other for other, k in pending.items() if k > item]
                executor.cancel(late)
                for other in late:
                    del pending[other]
        # Progress: the traces run so far (provisional: an item run again counts once).
        sink.done = sum(r.traces for _, r in final.values())
        try:
            sink.report()
        finally:
            sink.done = 0


def _merge(
    final: dict[int, tuple[str, SubtreeResult]], n: int, config: ExploreConfig, sink: Sink
) -> bool:
    """Add the items' results to `sink` in prefix order (up to the first failing item
    with ``stop_on_first``).  True when every item ran its subtree to the end."""
    complete = True
    for k in range(n):
        if k not in final:
            complete = False
            continue
        worker, result = final[k]
        base = sink.done
        failing = tuple(base + i for i in result.failing)
        hit = (base + result.hit[0], result.hit[1]) if result.hit is not None else None
        sink.merge(worker, result.traces, result.steps, failing, hit)
        sink.pruned += result.pruned
        complete = complete and result.exhaustive
        if config.stop_on_first and hit is not None:
            return False
    return complete
