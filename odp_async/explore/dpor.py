"""Source-DPOR with sleep sets: one execution per Mazurkiewicz trace (or close to it).

Contract
    `DporChooser` is the exhaustive chooser of Abdulla, Aronis, Jonsson and Sagonas,
    "Optimal Dynamic Partial Order Reduction" (POPL 2014), Algorithm 1 ("Source-DPOR"),
    made stateless the way `DfsChooser` is: it drives one sim run at a time, replaying a
    forced prefix and then continuing with the first eligible task, in the same loop::

        chooser = DporChooser(preemption_bound=None)
        while chooser.has_more and budget_left():
            try:
                result = sim.run(program, chooser=chooser)
            except PrunedExecution:
                continue  # sleep-set blocked: nothing new to check
            check(result)
        chooser.is_complete  # True: every trace (equivalence class) was explored

    After each execution the chooser knows every step's task and footprint (it sets
    ``ask_always`` and ``wants_footprints``, so the sim shows it every step and keeps each
    step's footprint; `odp_async._runtime.footprint`).  It computes happens-before with
    vector clocks (program order, the step that spawned a task before its first step, the
    ends of a task group's children before the step that resumes the parent from the
    group's join when the parent spawned them all, and every pair of dependent steps),
    finds the *races* (two dependent steps of different
    tasks ordered by nothing else), and for each race ``e < e'`` adds one *initial* of the
    reversed continuation (a task that can start ``notdep(e).proc(e')`` from the state
    before `e`) to the backtrack set of that state, unless one is already explored,
    scheduled or asleep there.  Sleep sets (Godefroid) prune the re-exploration of a
    trace from a later sibling.  When no backtrack entry is left, `is_complete` is True:
    every Mazurkiewicz trace of the program (every draw value included) was run, so a
    property checked on every run holds on every schedule.

    Soundness rests on footprints: a step with an unknown footprint (a label that declares
    nothing, a task's first step, a cancellation) conflicts with every other step, so
    reduction only applies where footprints were declared or noted.  Two resources are
    told apart within one execution by the key `DfsChooser` uses (objects first seen in
    the same step share a key unless their class or name differ: more conflicts, never
    fewer).  A step's footprint has three kinds of access: reads, writes and
    commutative *updates* (`odp_async._runtime.footprint.UpdateOf`, what
    `odp_async.tracked.TrackedBag` notes for an add or a remove): two updates of one
    resource are independent, an update and a read or a write of it are not.  Where the
    reversed continuation starts with a task that is not runnable in the earlier state
    (one woken by the clock, say), every runnable task is added there instead (sound,
    less reduced).

    **Draws** (`draw`) branch fully: every value is explored under its own DPOR subtree.

    **Blocking.**  A race whose later step belongs to a task the earlier step made
    runnable (it woke it: the two are never enabled together) is not reversed; the orders
    where another step wakes it first come from that step's own race with the earlier one
    (both touch what the task waits on).  A task whose next step is a wait on a closed
    *gate* (`odp_async.sync.Completion` made with ``gate=True``, before its
    ``complete_all()``; no cancellation due) is not offered while another task can run:
    that step could only park until the ``complete_all()`` wakes it, so a waiter that
    parked early and one that arrives after the gate opened are one trace, not two (the
    built-in scenarios' program-order gates are such gates).  When every runnable task
    waits on a closed gate, all are offered (they park; a deadlock is reported as such).

    **noted_only** (off by default): the caller vouches that shared state is reached only
    through noted objects (`SharedCell`, the primitives); steps whose label declares
    nothing, a task's first step included, are then exactly their noted accesses.

    **Preemption bound** (optional, ``preemption_bound=b``): a backtrack entry whose
    choice would be preemption number ``b + 1`` is dropped, and the first execution
    continues each task as long as it can.  Then `is_complete` only says the bounded
    search ended; `is_exhaustive` says nothing was dropped (the full guarantee).  As with
    any bounded partial-order reduction, a bounded search is not guaranteed to cover
    every schedule within the bound (Coons, Musuvathi and McKinley, OOPSLA 2013).

    **Fairness** (``fair_after=n``, off by default; the explorer passes half the step
    bound): from step `n` of an execution on, a new choice (past the forced prefix) is
    the eligible task chosen least recently in the execution, not the running one.  A
    task that spins (``while not flag: await checkpoint()``) would otherwise run alone up
    to the step bound, the tasks it waits for never run, and their races are never seen.
    Any choice among the eligible tasks is sound for source-DPOR; only the order of the
    search changes.  Not with a preemption bound (a switch would spend the bound).  An
    execution that still reaches the step bound is cut short: the caller tells the
    chooser (`note_step_limit`), and the search is then never `is_exhaustive`.

    **A fixed prefix** (``prefix=(c0, c1, ...)``, in the format of `schedule`: one entry
    per choice among several tasks or values): the search covers only the executions
    that start with those choices.  Races whose reversal point lies inside the prefix
    are counted but not reversed (the caller explores every alternative there), and the
    sleep set is empty where the prefix ends.

    **Subtrees** (how `odp_async.explore.dpor_parallel` splits one search): the owner of
    the tree (a chooser that runs nothing itself) hands out queued entries with `take`,
    each a `Subtree`: a copy of the entry's path with its sleep sets, explored and queued
    options.  A fresh chooser given one (`subtree`) searches below it exactly as the
    serial search would from that entry, except that a race whose reversal point lies
    at or above the entry's node is kept as a `Backtrack`; `export` gives what it leaves
    (`SubtreeState`: the entry's step footprint, the entries still queued below it, those
    races), and the owner's `adopt` marks the entry explored, grafts the remaining
    entries into its tree and decides the races there by the serial rule, in the order
    they were found.  An entry handed out stays in its node's queued set until adopted,
    so a race another subtree reports there counts it as covered.  With one entry out at
    a time this is the serial search, trace for trace.

    **Order.**  The search is stateless (each execution replays a prefix), so its
    entries can be taken in any order: the chooser keeps every pending entry (a node and
    an option) in one queue, fewest preemptions first and, among equals, the latest found
    (depth-first).  Bugs that need few preemptions come first, as with iterative
    preemption bounding, without running anything twice.  Sleep sets are stored per node
    (the sleep set on arrival, and the siblings explored before the current choice), not
    recomputed on replay, so they stay sound in that order.

    **Memory** is linear in the path: nodes form a tree by parent links; the current path
    and each queued entry hold their node, so prefixes are shared and nothing is copied
    per alternative; vector clocks exist only while an execution is analysed.  Nothing
    iterates a set or dict in a hash-dependent order: the same program gives the same
    sequence of executions in any process.

Concurrency
    One chooser drives one sim run at a time, on the caller's thread.

See also
    `odp_async.explore.dfs` (plain depth-first search, iterative preemption bounding,
    symmetry), `odp_async.explore.shared` (a shared cell whose reads and writes are noted),
    Nidhugg's source-DPOR.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Sequence
from typing import Any

import attrs

from .._runtime._base import check_draw
from .._runtime.footprint import Footprint, GateOpened
from .._runtime.sim import SimTaskGroup
from ..errors import InvalidArgument
from .dfs import (
    _check_flags,
    _check_preemption_bound,
    _Fp,
    _independent,
    _SystematicChooser,
)

__all__ = ["Backtrack", "DporChooser", "DporStatistics", "Subtree", "SubtreeState"]


@attrs.frozen
class DporStatistics:
    """Where a `DporChooser` is.  `executions` counts the pruned ones too; `traces` not."""

    executions: int
    traces: int
    pruned: int
    races: int
    is_complete: bool
    is_exhaustive: bool
    max_depth: int
    max_preemptions: int


@attrs.define(eq=False, slots=True)
class _Node:
    """One step of an execution (or a draw inside a step), in the shared search tree.

    Nodes form a tree by `parent` (`via`: the option of the parent that leads here); the
    current path and every queued entry hold their node, so prefixes are shared and a
    node lives as long as something below it is still to explore.

    Step nodes: `options` are the runnable task ids in runnable order, `chosen` an index
    into them, `costs[i]` 1 when option `i` is a preemption, `cost` the preemptions
    before this node, `arrival` the sleep set on first arrival (task id -> footprint of
    its sleeping step), `for_chosen` the sleep candidates of the current choice (arrival
    plus the siblings explored before it was chosen), `done` the explored options with
    their step's footprint, `queued` the options waiting in the chooser's queue.  Draw
    nodes: ``options == (n,)``, `chosen` the value.
    """

    is_draw: bool
    options: tuple[int, ...]
    chosen: int
    costs: tuple[int, ...]
    parent: _Node | None
    via: int
    cost: int
    arrival: dict[int, _Fp] = attrs.field(factory=dict)
    for_chosen: dict[int, _Fp] = attrs.field(factory=dict)
    done: list[tuple[int, _Fp | None]] = attrs.field(factory=list)
    queued: set[int] = attrs.field(factory=set)
    chosen_fp: _Fp | None = None
    #: Every option waits on a closed gate (none could be held back): see `_held_back`.
    forced: bool = False

    def path(self) -> list[_Node]:
        nodes: list[_Node] = []
        node: _Node | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        nodes.reverse()
        return nodes


@attrs.frozen
class Backtrack:
    """A race a subtree search (`DporChooser.subtree`) found whose reversal point lies
    above its root: the state at path index `depth` should explore one of `initials`
    (task ids; `racer` is the later racing step's task, `busy` the initials whose first
    step there touches something).  The tree's owner decides (`DporChooser.adopt`).
    `order` places it among the subtree's queue entries (found earlier: lower)."""

    order: int
    depth: int
    initials: tuple[int, ...]
    racer: int
    busy: frozenset[int]


def _flatten(nodes: Sequence[_Node | None]) -> tuple[list[tuple[Any, ...]], list[int]]:
    """The nodes reachable from `nodes` by `parent`, as rows (parent row first, -1 for
    none) and the row of each of `nodes` (-1 for None): a path thousands of steps long
    pickles without recursing once per node."""
    index: dict[int, int] = {}
    rows: list[tuple[Any, ...]] = []
    for start in nodes:
        chain: list[_Node] = []
        n = start
        while n is not None and id(n) not in index:
            chain.append(n)
            n = n.parent
        for m in reversed(chain):
            up = -1 if m.parent is None else index[id(m.parent)]
            index[id(m)] = len(rows)
            rows.append(
                (
                    *(up, m.is_draw, m.options, m.chosen, m.costs, m.via, m.cost),
                    *(m.arrival, m.for_chosen, m.done, m.queued, m.chosen_fp, m.forced),
                )
            )
    return rows, [-1 if n is None else index[id(n)] for n in nodes]


def _unflatten(rows: list[tuple[Any, ...]]) -> list[_Node]:
    built: list[_Node] = []
    for up, *fields in rows:
        parent = built[up] if up >= 0 else None
        is_draw, options, chosen, costs, via, cost, arrival, for_chosen = fields[:8]
        done, queued, chosen_fp, forced = fields[8:]
        node = _Node(is_draw, options, chosen, costs, parent, via, cost, arrival, for_chosen)
        node.done, node.queued, node.chosen_fp, node.forced = done, queued, chosen_fp, forced
        built.append(node)
    return built


def _subtree(rows: list[tuple[Any, ...]], at: int, option: int, cost: int) -> Subtree:
    return Subtree(_unflatten(rows)[at], option, cost)


def _subtree_state(
    rows: list[tuple[Any, ...]],
    at: list[int],
    root_fp: _Fp | None,
    entries: tuple[tuple[int, int, int, int], ...],
    reports: tuple[Backtrack, ...],
    cut: bool,
) -> SubtreeState:
    built = _unflatten(rows)
    root = built[at[0]] if at[0] >= 0 else None
    kept = tuple((order, cost, built[k], option) for order, cost, k, option in entries)
    return SubtreeState(root, root_fp, kept, reports, cut)


@attrs.frozen(eq=False)
class Subtree:
    """A work item of a split search: the copy of the path to a queued entry's node (its
    last node; ancestors by `parent`, with their sleep sets and explored options), the
    entry's `option` (a task id, or a draw's value) and its preemptions."""

    node: _Node
    option: int
    cost: int

    def __reduce__(self) -> tuple[Any, ...]:
        rows, (at,) = _flatten([self.node])
        return _subtree, (rows, at, self.option, self.cost)


@attrs.frozen(eq=False)
class SubtreeState:
    """What a subtree search leaves for the tree's owner (`DporChooser.export`): its copy
    of the root node (None: the search had no root, it is the whole tree), the footprint
    of the root option's step, the entries still queued below the root as
    (order, preemptions, node, option), the races to reverse above it, and whether the
    preemption bound dropped an entry below it."""

    root: _Node | None
    root_fp: _Fp | None
    entries: tuple[tuple[int, int, _Node, int], ...]
    reports: tuple[Backtrack, ...]
    cut: bool

    def __reduce__(self) -> tuple[Any, ...]:
        rows, at = _flatten([self.root, *(node for _, _, node, _ in self.entries)])
        entries = tuple(
            (order, cost, k, option)
            for (order, cost, _, option), k in zip(self.entries, at[1:], strict=True)
        )
        return _subtree_state, (rows, at, self.root_fp, entries, self.reports, self.cut)


def _held_back(task: Any) -> bool:
    """True if `task`'s next step is a wait on a closed gate (`odp_async.sync.Completion`
    with ``gate=True``, before its ``complete_all()``), with no cancellation due: the
    step could only park, and ``complete_all()`` would wake it, so running it after the
    gate opens is the same trace.  (A gate promises no ``complete()``, ``reinit()`` or
    reading of its waiters, the operations that could tell the two apart.)"""
    closed = getattr(type(task.pending), "_gate_closed", None)
    if closed is None or not closed(task.pending):
        return False
    pending = getattr(task, "cancel_is_pending", None)
    return pending is not None and not pending()


def _gate_of(task: Any) -> Any:
    """The gate (`odp_async.sync.Completion` with ``gate=True``) whose wait `task`'s next
    step begins with, or None; None too when a cancellation is due (the wait would raise,
    gate open or not)."""
    gate = task.pending
    if (
        getattr(type(gate), "_gate_closed", None) is None
        or getattr(gate, "gate", False) is not True
    ):
        return None
    pending = getattr(task, "cancel_is_pending", None)
    return gate if pending is not None and not pending() else None


def _empty(fp: _Fp | None) -> bool:
    """A step known to touch nothing shared (a task's first step under noted_only)."""
    return fp is not None and not fp.reads and not fp.writes and not fp.updates


def _copy_path(node: _Node) -> _Node:
    """A copy of the path to `node` (its last node returned, ancestors by `parent`): each
    node's options, explored options, queued options and sleep sets, and the choices of
    the path set as on a replay (a subtree search starts from it; nothing is shared)."""
    parent: _Node | None = None
    for n in node.path():
        copy = _Node(
            n.is_draw,
            n.options,
            -1,
            n.costs,
            parent,
            n.via,
            n.cost,
            dict(n.arrival),
            dict(n.arrival),
            list(n.done),
            set(n.queued),
            None,
            n.forced,
        )
        if parent is not None:
            parent.chosen = copy.via
            if not parent.is_draw:
                parent.for_chosen = _sleep_before(parent, parent.options[copy.via])
        parent = copy
    assert parent is not None
    return parent


def _sleep_before(node: _Node, tid: int) -> dict[int, _Fp]:
    """The sleep candidates when `node` chooses task `tid`: the sleep set on arrival,
    then the siblings explored before `tid` was first chosen (all of them if never)."""
    for_chosen = dict(node.arrival)
    for done, entry in node.done:
        if done == tid:
            break
        if entry is not None:
            for_chosen.setdefault(done, entry)
    return for_chosen


class DporChooser(_SystematicChooser[_Node]):
    """Source-DPOR with sleep sets over the sim's step footprints (see the module doc).

    ``DporChooser(preemption_bound=None, *, trust_primitives=True, noted_only=False)``:
    ``trust_primitives=False`` tells the sim that acquiring a primitive declares nothing
    (only explicit `Footprint` labels and noted accesses count); it matters only under
    `noted_only`: without the promise a step that starts at a primitive is unknown
    whatever it says, since the code after the acquire may touch unnoted state.
    ``noted_only=True`` vouches that the program reaches shared state *only* through noted objects
    (`odp_async.explore.shared.SharedCell`, the primitives): a step whose label declares
    nothing (a task's first step, ``checkpoint("x")``) is then exactly its noted accesses
    instead of unknown.  A plain object shared beside the cells breaks that promise, and
    DPOR may then miss its races: off by default.

    `executions` counts started executions (pruned included), `traces` the ones that ran
    to their end, `executions_pruned` the sleep-set-blocked ones, `races` the races
    analysed.  When a replay does not match (`failure`), every later call raises that
    `NondeterminismError`.
    """

    __slots__ = (
        "_analysed",
        "_events",
        "_fixed",
        "_fixed_used",
        "_floor",
        "_fresh_from",
        "_gate_state",
        "_gate_waits",
        "_group_of",
        "_joins",
        "_last_pick",
        "_pending",
        "_prev_pos",
        "_queue",
        "_reports",
        "_resume",
        "_seq",
        "_spawned_by",
        "fair_after",
        "footprints_noted_only",
        "races",
        "traces",
    )

    def __init__(
        self,
        preemption_bound: int | None = None,
        *,
        trust_primitives: bool = True,
        noted_only: bool = False,
        prefix: Sequence[int] = (),
        fair_after: int | None = None,
    ) -> None:
        _check_preemption_bound(preemption_bound)
        if fair_after is not None and (
            not isinstance(fair_after, int) or isinstance(fair_after, bool) or fair_after < 0
        ):
            raise InvalidArgument(
                f"fair_after must be None or a non-negative int, got {fair_after!r}",
                "fair_after",
                fair_after,
            )
        _check_flags(("trust_primitives", trust_primitives), ("noted_only", noted_only))
        for k, c in enumerate(prefix):
            if not isinstance(c, int) or isinstance(c, bool) or c < 0:
                raise InvalidArgument(
                    f"prefix entry {k} must be a non-negative int, got {c!r} ({type(c).__name__})",
                    "prefix",
                    prefix,
                )
        self._init_search(preemption_bound, trust_primitives)
        # The fixed prefix (choices among several options), how much of it the first
        # execution used, and the path index where it ends (-1: not known yet): no
        # backtrack entry is added above it.
        self._fixed = tuple(prefix)
        self._fixed_used = 0
        self._floor = 0 if not prefix else -1
        # A subtree search's races above its root (`subtree`); None: dropped there.
        self._reports: list[Backtrack] | None = None
        # Owner side (`take`, `adopt`): the copy handed out -> its node in this tree.
        self._pending: dict[int, _Node] = {}
        # Read by the sim: a step whose label declares nothing is its noted accesses.
        self.footprints_noted_only = noted_only
        self.ask_always = True  # read by the sim: every step is shown to us
        self.wants_footprints = True  # read by the sim: keep each step's footprint
        self.traces = 0
        self.races = 0
        # Entries still to explore: (preemptions, -seq, seq, node, option); fewest
        # preemptions first, then the latest found (depth-first within a level).
        self._queue: list[tuple[int, int, int, _Node, int]] = []
        self._seq = 0
        self._resume = 0  # path index of the node whose choice is new this execution
        self._analysed = True
        # Per execution.
        self._fresh_from = 0  # first path index not replayed (its races are new)
        # (path index, task id, footprint) of every step run, in order.
        self._events: list[tuple[int, int, _Fp | None]] = []
        self._spawned_by: dict[int, int] = {}  # task id -> event index that spawned it
        # Task id -> the task group it was spawned into; event index -> (group, parent
        # task id) of a step that resumes a parent parked at its group's join.
        self._group_of: dict[int, object] = {}
        self._joins: dict[int, tuple[object, int]] = {}
        # The step that opened each gate (id -> (gate, event index)) and the steps that
        # begin with a wait an open gate lets through (event index -> the gate's id).
        self._gate_state: dict[int, tuple[object, int]] = {}
        self._gate_waits: dict[int, int] = {}
        self._prev_pos = 0
        # The step after which a new choice is round-robin (None: never), and the step at
        # which each task was last chosen in this execution.
        self.fair_after = fair_after
        self._last_pick: dict[int, int] = {}

    # --- public state -----------------------------------------------------------------

    @property
    def has_more(self) -> bool:
        """True while another execution remains (and once the search failed)."""
        if not self._started or self._failed is not None:
            return True
        self._finish_execution()
        return bool(self._queue)

    @property
    def next_preemptions(self) -> int | None:
        """The preemptions of the next execution's forced prefix (its queue entry's), or
        None before the first execution and when none is left.  Entries are taken
        fewest preemptions first (`odp_async.explore.dpor_parallel` runs a search up to
        a level of them)."""
        if not self._started or not self.has_more or not self._queue:
            return None
        return self._queue[0][0]

    @property
    def bound(self) -> int | None:
        return self.preemption_bound

    @property
    def schedule(self) -> tuple[int, ...]:
        """The choices among several options of the current execution so far."""
        return tuple(
            node.chosen
            for node in self._path[: self._pos]
            if node.chosen >= 0 and (node.is_draw or len(node.options) > 1)
        )

    def statistics(self) -> DporStatistics:
        return DporStatistics(
            executions=self.executions,
            traces=self.traces,
            pruned=self.executions_pruned,
            races=self.races,
            is_complete=self.is_complete,
            is_exhaustive=self.is_exhaustive,
            max_depth=self.max_depth,
            max_preemptions=self.max_preemptions,
        )

    # --- the chooser protocol ---------------------------------------------------------

    def new_execution(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._started:
            self._finish_execution()
            if not self._advance():
                self._search_over()
        self._start_execution()
        self._analysed = False
        self._events = []
        self._spawned_by = {}
        self._group_of = {}
        self._joins = {}
        self._gate_state = {}
        self._gate_waits = {}
        self._last_pick = {}

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        if self._failed is not None:
            raise self._failed
        self._settle()
        spawner = len(self._events) - 1
        for t in runnable:
            if t.id not in self._spawned_by:
                self._spawned_by[t.id] = spawner
                self._group_of[t.id] = getattr(t, "group", None)
        # Tasks whose next step would only park on a closed gate are not offered while
        # another task can run (`_held_back`); when none can, all are (`forced`).
        offered = [k for k, t in enumerate(runnable) if not _held_back(t)]
        forced = not offered
        if forced or len(offered) == len(runnable):
            offered = list(range(len(runnable)))
            tasks: Sequence[Any] = runnable
        else:
            tasks = [runnable[k] for k in offered]
            if last is not None and all(t is not last for t in tasks):
                last = None  # the running task is about to park: no preemption
        ids = tuple(t.id for t in tasks)
        pos = self._pos
        if pos < self._prefix_len:
            node = self._path[pos]
            self._check_offer(node, pos, ids, "step")
        else:
            node = self._new_node(tasks, last, ids)
            node.forced = forced
        i = node.chosen
        self._took(pos, node.costs[i])
        self._prev_task, self._prev_node, self._prev_pos = tasks[i], node, pos
        gate = _gate_of(tasks[i])
        if gate is not None and not gate._gate_closed():
            self._gate_waits[spawner + 1] = id(gate)
        queue = getattr(tasks[i].pending, "queue", None)
        if type(queue) is SimTaskGroup and queue._parent is tasks[i]:
            self._joins[spawner + 1] = (queue, ids[i])
        self._last_pick[ids[i]] = self._ordinal
        self._ordinal += 1
        return offered[i]

    def draw(self, n: int, label: object) -> int:
        if self._failed is not None:
            raise self._failed
        pos = self._pos
        if pos < self._prefix_len:
            node = self._path[pos]
            self._check_draw(node, pos, n, label, "step")
        else:
            check_draw(n)  # a node and its queue hold O(n): bounded here too (the sim first)
            parent = self._path[-1] if self._path else None
            via = parent.chosen if parent is not None else -1
            node = _Node(True, (n,), 0, (0,) * n, parent, via, self._cost)
            self._path.append(node)
            if self._floor < 0:
                node.chosen = self._take_fixed(n, pos)
            else:
                for value in range(1, n):
                    self._push(node, value, self._cost)
        self._took(pos, 0)
        return node.chosen

    def __repr__(self) -> str:
        return (
            f"DporChooser(preemption_bound={self.preemption_bound!r}, "
            f"trust_primitives={self.trust_primitives}, "
            f"noted_only={self.footprints_noted_only}"
            + (f", prefix={self._fixed!r}" if self._fixed else "")
            + (f", fair_after={self.fair_after!r})" if self.fair_after is not None else ")")
        )

    # --- a search split into subtrees (odp_async.explore.dpor_parallel) --------------

    def subtree(self, item: Subtree) -> None:
        """Make this fresh chooser search only below `item` (from `take`): its first
        execution replays the item's path and takes its option, with the sleep sets the
        owner's tree has there; races whose reversal point lies at or above the item's
        node are kept for the owner (`export`), not explored here."""
        if self._started or self._fixed:
            raise InvalidArgument("subtree() needs a fresh chooser without a prefix")
        node = item.node
        self._started = True  # `new_execution` takes the entry as the next one
        self._floor = len(node.path())
        self._reports = []
        self._seq = 1
        node.queued.add(item.option)
        self._queue = [(item.cost, -1, 1, node, item.option)]

    def export(self, root: _Node | None) -> SubtreeState:
        """What is left of this subtree search (`subtree`; `root` the item's node, None
        for a search of the whole tree), for the owner's `adopt`."""
        if self._started and self._failed is None:
            self._finish_execution()
            self._record_done()
        root_fp = None
        if root is not None and not root.is_draw:
            tid = root.options[root.chosen] if root.chosen >= 0 else None
            root_fp = next((fp for t, fp in root.done if t == tid), None)
        entries = tuple(
            sorted((seq, cost, node, option) for cost, _, seq, node, option in self._queue)
        )
        reports = tuple(self._reports or ())
        return SubtreeState(root, root_fp, entries, reports, self._cut)

    def take(self, most: int) -> list[Subtree]:
        """Owner side: pop up to `most` queued entries of the fewest preemptions queued,
        in queue order, at most one per node (a later sibling then sleeps on the earlier
        one's step, as in the serial search), each as a `Subtree` over a copy of its
        path (nothing shared with this tree)."""
        if not self._queue:
            return []
        level = self._queue[0][0]
        taken: list[Subtree] = []
        later: list[tuple[int, int, int, _Node, int]] = []
        nodes: set[int] = set()
        while self._queue and len(taken) < most and self._queue[0][0] == level:
            entry = heapq.heappop(self._queue)
            cost, _, _, node, option = entry
            if id(node) in nodes:
                later.append(entry)
                continue
            nodes.add(id(node))
            # It stays in `queued` until adopted: a race another item reports there is
            # covered by it, as by an entry still queued in the serial search.
            taken.append(Subtree(_copy_path(node), option, cost))
            self._pending[id(taken[-1].node)] = node
        for entry in later:
            heapq.heappush(self._queue, entry)
        return taken

    def adopt(self, item: Subtree | None, state: SubtreeState) -> None:
        """Owner side: add a subtree search's result (`export`) to this tree: the root
        option as explored, its remaining entries (their nodes grafted below the root)
        and its races above the root, decided here as the serial search would, in the
        order the subtree found them."""
        self._started = True  # an owner never runs an execution itself
        root: _Node | None = None
        path: list[_Node] = []
        if item is not None:
            root = self._pending.pop(id(item.node))
            path = root.path()
            root.queued.discard(item.option)
            if not root.is_draw and all(t != item.option for t, _ in root.done):
                root.done.append((item.option, state.root_fp))
        if state.cut:
            self._cut = True
        grafted: set[int] = set()
        merged: list[tuple[int, Backtrack | tuple[int, _Node, int]]] = [
            (b.order, b) for b in state.reports
        ]
        merged += [(order, (cost, node, option)) for order, cost, node, option in state.entries]
        merged.sort(key=lambda m: m[0])
        for _, what in merged:
            if isinstance(what, Backtrack):
                node = path[what.depth]
                if what.depth + 1 < len(path):
                    chosen = node.options[path[what.depth + 1].via]
                else:
                    assert item is not None
                    chosen = item.option
                self._backtrack(node, chosen, what.initials, what.racer, what.busy)
                continue
            cost, node, option = what
            if root is not None:
                below = node
                while id(below) not in grafted and below.parent is not state.root:
                    grafted.add(id(below))
                    assert below.parent is not None
                    below = below.parent
                if below.parent is state.root:
                    below.parent = root
                    grafted.add(id(below))
            node.queued.discard(option)
            self._push(node, option, cost)

    # --- the search -------------------------------------------------------------------

    def _new_node(self, runnable: Sequence[Any], last: Any, ids: tuple[int, ...]) -> _Node:
        n = len(runnable)
        costs = tuple(0 if last is None or runnable[i] is last else 1 for i in range(n))
        parent = self._path[-1] if self._path else None
        via = parent.chosen if parent is not None else -1
        sleep = self._sleep
        node = _Node(False, ids, -1, costs, parent, via, self._cost, sleep, sleep)
        self._path.append(node)
        if self._floor < 0 and n > 1:
            pick = self._take_fixed(n, len(self._path) - 1)
            if costs[pick] and not self._allowed(self._cost + 1):
                self._cut = True
                self._prune("preemption-bound")
            node.chosen = pick
            return node
        eligible = [i for i in range(n) if ids[i] not in sleep]
        if not eligible:
            self._prune("sleep-set")
        fair = self.fair_after
        if fair is not None and self._ordinal >= fair and self.preemption_bound is None:
            # Round-robin: the eligible task chosen least recently (never first).
            last = self._last_pick
            pick = min(eligible, key=lambda i: last.get(ids[i], -1))
        else:
            # Continue the last task if it may run, else the lowest task id.
            free = [i for i in eligible if costs[i] == 0]
            pick = free[0] if free else min(eligible, key=lambda i: ids[i])
        if costs[pick] and not self._allowed(self._cost + 1):
            self._cut = True
            self._prune("preemption-bound")
        node.chosen = pick
        return node

    def _take_fixed(self, n: int, pos: int) -> int:
        """The fixed prefix's next choice (among `n`); at its last, the floor is set."""
        k = self._fixed_used
        pick = self._fixed[k]
        if pick >= n:
            self._fail(
                f"step {pos}: prefix entry {k} is {pick}, but the run offers only {n} "
                "options: the program is not deterministic"
            )
        self._fixed_used = k + 1
        if self._fixed_used == len(self._fixed):
            self._floor = pos + 1
        return pick

    def _allowed(self, cost: int) -> bool:
        bound = self.preemption_bound
        return bound is None or cost <= bound

    def _push(self, node: _Node, option: int, cost: int) -> None:
        self._seq += 1
        node.queued.add(option)
        heapq.heappush(self._queue, (cost, -self._seq, self._seq, node, option))

    def _advance(self) -> bool:
        """Set up the next execution's forced prefix.  False when none is left."""
        self._record_done()
        if not self._queue:
            self._path = []
            return False
        _, _, _, node, option = heapq.heappop(self._queue)
        node.queued.discard(option)
        path = node.path()
        self._resume = len(path) - 1
        for parent, child in itertools.pairwise(path):
            parent.chosen = child.via
            if not parent.is_draw:
                # Its sleep candidates are those of the choice on this path: the siblings
                # explored before it (not the ones explored since).
                parent.for_chosen = _sleep_before(parent, parent.options[child.via])
        if node.is_draw:
            node.chosen = option
            # The step the draw happens in runs anew: its races are new.
            step = len(path) - 1
            while step > 0 and path[step].is_draw:
                step -= 1
            self._fresh_from = step
        else:
            node.chosen = node.options.index(option)
            node.for_chosen = _sleep_before(node, option)
            self._fresh_from = len(path) - 1
        self._path = path
        return True

    def _record_done(self) -> None:
        """Mark the new choice of the last execution as explored at its node."""
        path = self._path
        for node in path[self._resume :]:
            if not node.is_draw and node.chosen >= 0:
                tid = node.options[node.chosen]
                if all(t != tid for t, _ in node.done):
                    node.done.append((tid, node.chosen_fp))
            node.chosen_fp = None
        self._resume = len(path)

    # --- footprints and sleep sets ---------------------------------------------------

    def _settle(self) -> None:
        """Learn the footprint of the step run since the last call; update the sleep set."""
        task = self._prev_task
        if task is None:
            return
        node = self._prev_node
        self._prev_task = self._prev_node = None
        assert node is not None
        raw = task.footprint
        fp = self._stable(raw, self._ordinal - 1)
        node.chosen_fp = fp
        if raw is not None:
            for resource in raw.writes:
                if type(resource) is GateOpened:
                    self._gate_state[id(resource.gate)] = (resource.gate, len(self._events))
        self._events.append((self._prev_pos, task.id, fp))
        if fp is None:
            self._sleep = {}
            return
        self._sleep = {
            tid: entry
            for tid, entry in node.for_chosen.items()
            if tid != task.id and _independent(entry, fp)
        }

    def _stable(self, fp: Footprint | None, ordinal: int) -> _Fp | None:
        if fp is None:
            return None
        updates: set[Hashable] = set()
        reads, writes = self._stable_keys(fp, ordinal, updates)
        return _Fp(reads - writes, writes, ordinal, frozenset(updates) - writes)

    def _finish_execution(self) -> None:
        """Settle the last step and analyse the execution's races (once)."""
        if self._analysed or not self._started:
            return
        self._settle()
        self._analysed = True
        if self._floor < 0:
            # The run ended (or was cut) inside the fixed prefix: nothing is reversed.
            self._floor = len(self._path)
            if not self._aborted:
                self._fail(
                    f"the run ended after {self._fixed_used} of the prefix's "
                    f"{len(self._fixed)} choices: the program is not deterministic"
                )
        if not self._aborted:
            self.traces += 1
            if self._pos < self._prefix_len:
                self._fail(
                    f"the run ended after {self._pos} steps, but replaying its prefix "
                    f"needs {self._prefix_len}: the program is not deterministic"
                )
        self._analyse()

    # --- races ------------------------------------------------------------------------

    def _analyse(self) -> None:
        events = self._events
        n = len(events)
        if n == 0:
            return
        tasks = sorted({tid for _, tid, _ in events} | set(self._spawned_by))
        slot = {tid: k for k, tid in enumerate(tasks)}
        width = len(tasks)
        seq: list[int] = []  # per-task sequence number (1-based) of each event
        clocks: list[list[int]] = []
        count = [0] * width
        last_of: dict[int, int] = {}  # task slot -> its last event index
        last_write: dict[Hashable, int] = {}
        reads_since: dict[Hashable, list[int]] = {}
        # Updates commute with updates: each is a candidate for the reads and writes
        # after it, never for another update.
        updates_since: dict[Hashable, list[int]] = {}
        last_unknown = -1
        fresh_node = self._fresh_from
        for j, (node_index, tid, fp) in enumerate(events):
            s = slot[tid]
            count[s] += 1
            seq.append(count[s])
            prev = last_of.get(s)
            if prev is not None:
                base = list(clocks[prev])
            else:
                spawner = self._spawned_by.get(tid, -1)
                base = list(clocks[spawner]) if spawner >= 0 else [0] * width
            for k in self._joined(j, tid, last_of, slot) + self._opened_before(j):
                ck = clocks[k]
                for m in range(width):
                    if ck[m] > base[m]:
                        base[m] = ck[m]
            # Dependent earlier events: the candidates for an immediate race.
            cands: list[int] = []
            if fp is None:
                cands = [e for k, e in last_of.items() if k != s]
            else:
                if last_unknown >= 0:
                    cands.append(last_unknown)
                for r in fp.writes:
                    w = last_write.get(r)
                    if w is not None:
                        cands.append(w)
                    cands.extend(reads_since.get(r, ()))
                    cands.extend(updates_since.get(r, ()))
                for r in fp.updates:
                    w = last_write.get(r)
                    if w is not None:
                        cands.append(w)
                    cands.extend(reads_since.get(r, ()))
                for r in fp.reads:
                    w = last_write.get(r)
                    if w is not None:
                        cands.append(w)
                    cands.extend(updates_since.get(r, ()))
            cands = sorted(set(c for c in cands if events[c][1] != tid))
            full = list(base)
            for c in cands:
                cc = clocks[c]
                for k in range(width):
                    if cc[k] > full[k]:
                        full[k] = cc[k]
            full[s] = count[s]
            clocks.append(full)
            # Races: candidates not already before j through program order or another
            # candidate.
            if node_index >= fresh_node and cands:
                for c in cands:
                    cs = slot[events[c][1]]
                    if base[cs] >= seq[c]:
                        continue
                    if any(d != c and clocks[d][cs] >= seq[c] for d in cands):
                        continue
                    self.races += 1
                    self._reverse(c, j, events, seq, clocks, slot)
            last_of[s] = j
            if fp is None:
                last_unknown = j
                last_write.clear()
                reads_since.clear()
                updates_since.clear()
            else:
                for r in fp.writes:
                    last_write[r] = j
                    reads_since[r] = []
                    updates_since[r] = []
                for r in fp.updates:
                    updates_since.setdefault(r, []).append(j)
                for r in fp.reads:
                    reads_since.setdefault(r, []).append(j)

    def _joined(
        self, j: int, tid: int, last_of: dict[int, int], slot: dict[int, int]
    ) -> list[int]:
        """The events that end the children of the task group whose join step `j`
        resumes (empty unless it is one): each happens before `j` in every execution.

        The parent parks at the join while the group has a child left and is woken when
        the count reaches zero; a child's end counts down.  So when every child was
        spawned by the parent itself (before it reached the join, which it leaves only
        by this step), every child has ended before `j` and its last event before `j`
        is its end.  A child spawned by another task (a child passing the group on, or
        a task outside it) may be spawned after that wake and run alongside `j`: then
        no edge is added (the races are reversed as any other)."""
        joined = self._joins.get(j)
        if joined is None:
            return []
        group, parent = joined
        events = self._events
        out: list[int] = []
        for child, g in self._group_of.items():
            if g is not group:
                continue
            spawner = self._spawned_by[child]
            if spawner < 0 or events[spawner][1] != parent or child == tid:
                return []
            k = last_of.get(slot[child])
            if k is None:
                return []
            out.append(k)
        return out

    def _opened_before(self, j: int) -> list[int]:
        """The event that opened the gate whose wait step `j` begins with (empty unless it
        does): it happens before `j` in every execution.

        A gate opens once, by its ``complete_all()``, and a wait on it passes only after
        that; in an order where the waiter gets to the wait first, it parks there (a step
        that touches only the gate, whose waiters nothing reads) and goes on after the
        ``complete_all()`` wakes it: the same trace (`_held_back` does not even offer that
        order).  So the race of the opener with the passing wait is never reversed, nor
        is one of a step before the opener with `j`."""
        gate = self._gate_waits.get(j)
        if gate is None:
            return []
        opened = self._gate_state.get(gate)
        return [opened[1]] if opened is not None and opened[1] < j else []

    def _enabled_by(
        self, i: int, tid: int, events: list[tuple[int, int, _Fp | None]], node: _Node
    ) -> bool:
        """True if step `i` (chosen at `node`) made task `tid` able to run: not offered
        before it (parked, or held back at a closed gate), offered at the next choice
        (not `forced` there), and no clock advance in between (the sim advances the
        clock only when no task is runnable: certainly not when another task was
        offered before `i`, or `i`'s task still is after it)."""
        if i + 1 >= len(events):
            return False
        after = self._path[events[i + 1][0]]
        if after.forced or tid not in after.options:
            return False
        return len(node.options) > 1 or events[i][1] in after.options

    def _reverse(
        self,
        i: int,
        j: int,
        events: list[tuple[int, int, _Fp | None]],
        seq: list[int],
        clocks: list[list[int]],
        slot: dict[int, int],
    ) -> None:
        """Race i < j: make sure the state before i explores an initial of notdep(i).j."""
        node_index = events[i][0]
        if node_index < self._floor and self._reports is None:
            return  # inside the fixed prefix: its alternatives are the caller's
        node = self._path[node_index]
        racer = events[j][1]
        if racer not in node.options and self._enabled_by(i, racer, events, node):
            # Not co-enabled: step i made the racer runnable (it woke it), so no order
            # puts j before i; an order where another step wakes it first comes from
            # that step's own race with i (both touch what the racer waits on).
            return
        si = slot[events[i][1]]
        # v: the events after i that do not happen after i, then j's step.  Each task's
        # first event in v; a task is an initial when no earlier first event precedes it
        # (happens-before of this execution: a superset of v's own, so every task found
        # is a true initial, and the earliest event always is one).
        first: dict[int, int] = {}
        for k in range(i + 1, j):
            if clocks[k][si] < seq[i]:
                first.setdefault(events[k][1], k)
        first.setdefault(events[j][1], j)
        initials = tuple(
            tid
            for tid, k in first.items()
            if not any(m < k and clocks[k][slot[other]] >= seq[m] for other, m in first.items())
        )
        busy = frozenset(t for t in initials if not _empty(events[first[t]][2]))
        if node_index < self._floor:
            # Above a subtree's root (`subtree`): the caller decides, against its tree.
            assert self._reports is not None
            self._seq += 1
            self._reports.append(Backtrack(self._seq, node_index, initials, racer, busy))
            return
        chosen = node.options[node.chosen] if node.chosen >= 0 else None
        self._backtrack(node, chosen, initials, racer, busy)

    def _backtrack(
        self,
        node: _Node,
        chosen: int | None,
        initials: tuple[int, ...],
        racer: int,
        busy: frozenset[int],
    ) -> None:
        """Queue at `node` (whose option `chosen` is on the current path) one of the
        `initials` of a reversed race with `racer` unless one is covered there (see
        `_reverse`); `busy`: the initials whose first step there touches something."""
        covered = {t for t, _ in node.done} | node.arrival.keys()
        if chosen is not None:
            covered.add(chosen)
        if any(t in covered for t in initials):
            return  # explored there, or asleep (explored from an earlier sibling)
        if any(t in node.queued for t in initials):
            # Covered by an entry still queued.  Any one initial will do; but when each
            # queued initial is one whose step here touches nothing (a task's first step
            # under noted_only: on reorder_3), its run leads elsewhere first, while the
            # racing task, when it is an initial, reverses the race directly.  So the
            # racer is queued too (more exploration, never less; never beside an initial
            # already explored or asleep: an earlier variant that did lost outcomes,
            # tests/explore/test_dpor_soundness; nor beside a queued initial that does
            # something: on twostage_10 that multiplied the queue by 40).
            if racer not in initials or racer not in node.options or racer in node.queued:
                return
            if any(t in node.queued and t in busy for t in initials):
                return
        covered |= node.queued
        enabled = [t for t in initials if t in node.options]
        enabled = [racer] if racer in enabled else enabled[:1]
        if not enabled:
            # Not runnable in that state (woken by the clock, say): try every task there.
            enabled = [t for t in node.options if t not in covered]
        for t in enabled:
            cost = node.cost + node.costs[node.options.index(t)]
            if not self._allowed(cost):
                self._cut = True
                continue
            self._push(node, t, cost)
