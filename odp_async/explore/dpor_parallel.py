"""DPOR split into subtrees that carry their sleep sets: one search, on any executor.

Contract
    `explore_split(target, config, executor, sink)` runs the source-DPOR search of
    ``target`` (`odp_async.explore.dpor.DporChooser`) as work items on an
    `odp_async.explore.executors.Executor` (this process, worker processes, a Dask
    cluster), the way Simsa, Bryant and Gibson distribute it ("Scalable Dynamic Partial
    Order Reduction", RV 2012): this process keeps the search tree and its queue of
    backtrack entries; a work item explores the subtree below one entry, starting from a
    copy of the entry's path *with its sleep sets and explored options*, and hands back
    what it leaves (`odp_async.explore.dpor.SubtreeState`):

    0. **Head.**  The first item is the serial search itself (no entry: the whole tree),
       for up to `HEAD_TRACES` traces (with ``HEAD_TRACES = 0``: `ITEM_TRACES`).
       Traces ``1..h`` are the serial search's, so whatever it finds within them is
       found at the same index, and a search it completes within them is complete with
       the serial counts.
    1. **Rounds.**  Then, round after round, this process takes from its queue up to
       `ROUND_ITEMS` entries of the fewest preemptions queued (`L`), in the serial
       search's order (fewest preemptions, then the latest found), at most one per node:
       a later sibling is taken in a later round, so that it sleeps on the earlier one's
       step as in the serial search.  Each becomes an item: a DPOR search of the
       executions below the entry (fewest preemptions first), of at most `ITEM_TRACES`
       traces (fewer where the schedule budget has fewer left).  (Items that also
       stopped at `L` preemptions made about 4 times as many items, and rounds, for the
       same traces: 1.7 times the processor time on stray-end-munmap/interval-seq.)
    2. **Merging.**  The results are added in item order: the entry's option is marked
       explored at its node; the entries the item left queued are grafted into the tree
       and queued here; a race whose reversal point lies at or above the item's node
       (outside the subtree) comes back as a `odp_async.explore.dpor.Backtrack` and is
       decided here, against the tree as it is then, by the serial search's rule (one
       initial, unless one is explored, asleep or queued there).  So each subtree is
       searched from the sleep set the serial search would give it, every backtrack
       point is added once, and the search is complete when the queue is empty:
       ``jobs=2`` runs about as many traces as ``jobs=1`` (the differences: the order of
       the entries, and siblings in one round) and claims completeness with them.
    3. **Order.**  Schedule `i` of the split search is the `i`-th trace by round, then by
       item, then in the item's own (deterministic) order.  Each item's result depends
       only on its entry (a copy of the path) and its budget, and what a round takes only
       on the rounds before it, so the counts, the failing indices, the first failure
       (lowest index), its schedule and token are identical for every executor and
       worker count.  With ``stop_on_first`` a failing item ends the search; the items
       after it in its round are cancelled and not counted.  Out of wall-clock time, no
       more items are submitted; the items run so far, up to the first one not run,
       count.

    Rounds are fixed in size (`ROUND_ITEMS`, `ITEM_TRACES`), not sized from measured
    time: a measured size would make the counts depend on the machine.  Each item
    replays its entry's path, and each round waits for its slowest item; a round with
    one entry runs on one worker (a search whose queue stays narrow gains nothing from
    more workers, and loses nothing but the round trips).

Concurrency
    Blocking; the caller's thread drives the executor.  `run_subtree` is the task an
    executor runs (a module-level function; its target may be a `TargetSpec`).

See also
    `odp_async.explore.dpor` (the search, `DporChooser.subtree`, `take`, `adopt`),
    `odp_async.explore.runner` (``explore`` calls this for ``chooser="dpor"`` with
    ``jobs > 1`` or an executor).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Hashable
from typing import Protocol

import attrs

from .._runtime.footprint import hidden_write, tracking_session
from .._runtime.stall import StepStalled, watching_steps
from ..errors import NondeterminismError
from .config import ExploreConfig
from .dfs import PrunedExecution
from .dpor import DporChooser, Subtree, SubtreeState
from .executors import Executor, InlineExecutor
from .fairness import fair_after
from .search_watch import carried as carried_state
from .target import Target, TargetSpec

__all__ = [
    "HEAD_TRACES",
    "ITEM_TRACES",
    "ROUND_ITEMS",
    "SubtreeResult",
    "explore_split",
    "run_subtree",
]

#: The traces of the serial search run first, as one work item (the split's head).
HEAD_TRACES = 64

#: The most entries (work items) a round takes: a few per worker of a 4-worker machine.
#: Fixed, so results do not depend on the machine.
ROUND_ITEMS = 16

#: The most traces an item of a round runs before it hands back what is left below it.
ITEM_TRACES = 32

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
        carried: str | None = None,
    ) -> None: ...

    def report(self, *, force: bool = False) -> None: ...

    def time_is_up(self, ran: int | None = None) -> bool:
        """True once the wall-clock budget is spent (never before `ran` > 0)."""
        ...


@attrs.frozen(eq=False)
class SubtreeResult:
    """What a work item sends back: traces run (to their end), executions pruned, steps,
    the 1-based (within the item) indices of the failing traces, the first failure
    (index, full schedule), whether the explored code raised KeyboardInterrupt, its
    seconds, whether an execution stopped at the step bound (`truncated`), how many of
    its traces reached the step bound unfinished, what it leaves (`state`), and the line
    of a step that did not return within the stall limit, where the item stopped
    (`stalled`; None: none did): the traces before it ran to their end and count, the
    stalled one does not."""

    traces: int
    pruned: int
    steps: int
    failing: tuple[int, ...]
    hit: _Hit | None
    interrupted: bool
    elapsed: float
    truncated: bool
    unfinished: int
    state: SubtreeState
    stalled: str | None = None
    #: What of the program's state changed between runs there (`search_watch`), or None.
    carried: str | None = None


class HiddenWrite(NondeterminismError):
    """State changed during a run past every note (`hidden_write`): the search stops
    with it (never taken for state carried between runs, `search_watch`)."""


def _check_hidden() -> None:
    # State changed past every note (a class attribute written through its class): the
    # item cannot be complete (`odp_async._runtime.footprint.hidden_write`).
    why = hidden_write()
    if why is not None:
        raise HiddenWrite(why)


def run_subtree(
    target: Target | TargetSpec,
    config: ExploreConfig,
    item: Subtree | None,
    budget: int,
) -> SubtreeResult:
    """Work item: the DPOR search below `item` (None: the whole tree, the serial search),
    at most `budget` traces (in its own order: fewest preemptions first), stopping at
    the first failure with ``config.stop_on_first`` (the task an executor runs).
    Depends only on its arguments."""
    if isinstance(target, TargetSpec):
        from .runner import _rebuilt  # the runner's per-process cache of rebuilt targets

        target = _rebuilt(target)
    start = time.perf_counter()
    chooser = DporChooser(
        config.preemption_bound,
        trust_primitives=config.trust_primitives and not target.scenario.needs_world,
        fair_after=fair_after(config.max_steps),
    )
    if item is not None:
        chooser.subtree(item)
    traces = pruned = steps = unfinished = 0
    failing: list[int] = []
    hit: _Hit | None = None
    interrupted = False
    stalled: str | None = None
    with tracking_session():  # one tracking session for the item's runs
        try:
            with watching_steps(config.stall_limit):
                while traces < budget and chooser.has_more:
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
                            break
        except KeyboardInterrupt:  # raised by the explored code (workers ignore SIGINT)
            interrupted = True
        except StepStalled as e:  # the traces before it stand (a failure among them too)
            stalled = str(e)
        except NondeterminismError:
            if carried_state(target) is None:
                raise  # else: a run started from state an earlier one left (said below)
    state = chooser.export(item.node if item is not None else None)
    return SubtreeResult(
        traces,
        pruned,
        steps,
        tuple(failing),
        hit,
        interrupted,
        time.perf_counter() - start,
        chooser.truncated,
        unfinished,
        state,
        stalled,
        carried_state(target),
    )


def explore_split(
    target: Target,
    config: ExploreConfig,
    executor: Executor,
    sink: Sink,
) -> bool:
    """Run the split DPOR search of `target` on `executor` and add what ran to `sink`
    (see the module docstring).  True when the search is complete: the queue ran empty,
    nothing was cut by the preemption or the step bound, the budget not spent and no
    stop at a failure.  An item's error (a `NondeterminismError`...) is raised here; so
    is `KeyboardInterrupt` raised by the explored code, and `StepStalled` for an item
    that stalled, after the items that ran (up to and including that one's traces
    before the stall) are added to `sink` (a partial result)."""
    task: Target | TargetSpec = target
    if not isinstance(executor, InlineExecutor):
        task = target.spec()
        executor.prepare(task)
    tree = DporChooser(config.preemption_bound)  # the owner's tree and queue
    ran = 0  # traces merged so far
    head = min(HEAD_TRACES, config.schedules)
    items: list[Subtree | None] = [None]
    budgets = [head if head > 0 else min(ITEM_TRACES, config.schedules)]
    try:
        for round_ in itertools.count():
            done = _run_round(task, config, executor, items, budgets, sink, ran, round_)
            stop = False
            for k, item in enumerate(items):
                if k not in done:
                    stop = True  # out of time: the items after it do not count
                    break
                worker, result = done[k]
                shift = ran
                sink.merge(
                    worker,
                    result.traces,
                    result.steps,
                    tuple(shift + m for m in result.failing),
                    None if result.hit is None else (shift + result.hit[0], result.hit[1]),
                    "dpor",
                    unfinished=result.unfinished,
                    carried=result.carried,
                )
                sink.pruned += result.pruned
                ran += result.traces
                if result.truncated:
                    sink.truncated = True
                if result.carried is not None:
                    return False  # runs shared state: no verdict (`search_watch`)
                if result.interrupted:
                    raise KeyboardInterrupt  # what ran is in `sink`: a partial result
                if result.stalled is not None:
                    # What ran before the stalled trace is in `sink` (a failure found
                    # there stays the result), as in the serial search, which stops
                    # at the same trace.
                    raise StepStalled(result.stalled)
                tree.adopt(item, result.state)
                if result.hit is not None and config.stop_on_first:
                    stop = True
                    break
            sink.report()
            if stop:
                return False
            if not tree.has_more:
                return not sink.truncated and tree.is_exhaustive
            left = config.schedules - ran
            if left <= 0 or sink.time_is_up(ran):
                return False
            taken = tree.take(min(ROUND_ITEMS, -(-left // ITEM_TRACES)))
            items = list(taken)
            budgets = [min(ITEM_TRACES, left - k * ITEM_TRACES) for k in range(len(items))]
    except BaseException:
        executor.abort()
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def _run_round(
    task: Target | TargetSpec,
    config: ExploreConfig,
    executor: Executor,
    items: list[Subtree | None],
    budgets: list[int],
    sink: Sink,
    ran: int,
    round_: int,
) -> dict[int, tuple[str, SubtreeResult]]:
    """Run `items` (with their `budgets`), keeping `executor.window`
    submitted, lowest first: their (worker, result).  With ``stop_on_first``, an item
    after a failing one is not needed: cancelled, left out; so is every item not yet
    submitted once the wall-clock budget of `sink` is spent (what is running finishes)."""
    pending: dict[Hashable, int] = {}
    done: dict[int, tuple[str, SubtreeResult]] = {}
    last: int | None = None  # no item after it is needed
    at = 0
    while True:
        if at < len(items) and at > 0:
            started = ran + sum(r.traces for _, r in done.values())
            if sink.time_is_up(started):
                at = len(items)  # submit nothing more
        while at < len(items) and len(pending) < executor.window:
            k = at
            at += 1
            if last is not None and k > last:
                continue
            key = ("item", round_, k)
            executor.submit(key, run_subtree, task, config, items[k], budgets[k])
            pending[key] = k
        if not pending:
            return {k: v for k, v in done.items() if last is None or k <= last}
        for outcome in executor.wait(WAIT_SECONDS):
            k = pending.pop(outcome.key, -1)
            if k < 0:
                continue
            if outcome.error is not None:
                raise outcome.error
            result: SubtreeResult = outcome.value
            done[k] = (outcome.worker, result)
            ends = (
                result.interrupted
                or result.stalled is not None
                or (config.stop_on_first and result.hit is not None)
            )
            if ends and (last is None or k < last):
                last = k
                late = [name for name, other in pending.items() if other > k]
                executor.cancel(late)
                for name in late:
                    del pending[name]
