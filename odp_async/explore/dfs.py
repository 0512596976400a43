"""Exhaustive depth-first search of a sim program's schedules, by re-execution.

Contract
    `DfsChooser` enumerates the schedules of a deterministic program the way loom and
    shuttle's ``dfs`` do: stateless, by running the program again and again.  Each
    execution replays a *forced prefix* of choices (the path to the deepest choice node
    with an unexplored alternative, with that alternative taken) and then continues with
    the first option at every new node.  Task choices and value choices (`draw`) are both
    branch points; every value of a draw is explored.  Nothing is random, and nothing
    iterates a set or a dict in an order that depends on object hashes: the same program
    gives the same sequence of schedules in any process.  A replayed node that offers
    other tasks (by id) or another number of values than recorded raises
    `NondeterminismError`; a draw raises it inside the program, so it is raised again
    from the next `choose` or `new_execution`, out of the run.

    **Preemptions.**  Choosing a task other than `last` (the task that ran the previous
    step, if still runnable) is a preemption.  ``preemption_bound=b`` explores only the
    executions with at most `b` preemptions.  At every node the non-preemptive choice
    comes first, so the first execution runs each task as long as it can.

    **Iterative preemption bounding** (Musuvathi and Qadeer, "Iterative Context Bounding
    for Systematic Testing of Multithreaded Programs", PLDI 2007), ``iterative=True``:
    every execution with 0 preemptions is explored, then those with exactly 1, then 2, ...
    up to `preemption_bound` (None: until none is left).  Nothing is run twice: the
    search at level `c` only takes non-preemptive choices; each preemptive alternative is
    saved as a work item (the path to its node) for level ``c + 1``, whose forced prefix
    has exactly ``c + 1`` preemptions and is continued non-preemptively.  An execution
    that cannot continue without a preemption (`last` is asleep) is abandoned with
    `PrunedExecution`; its continuations are the next level's work.  `bound` is the level
    being explored, `complete_bound` the highest level already exhausted.

    **Sleep sets** (Godefroid), with ``reduction=True``.  A step's footprint is known only
    after it ran: the sim stores it in ``task.footprint`` when the step ends, and a task
    keeps it only until its next step.  So the chooser sets ``ask_always`` (it is called
    before every step, even with one runnable task) and reads the footprint of the step
    it let run at the next call; the footprint of a run's last step is read at the next
    `new_execution`.  At each node it remembers the footprint of every explored child's
    step.  The sleep set of a child is the node's sleep set plus the earlier explored
    siblings, keeping those whose step is `independent` of the step taken; after any step
    (a choice or not) the sleeping tasks whose step conflicts with it wake up.  A sleeping
    task is never scheduled; when every eligible task is asleep, the execution is
    abandoned with `PrunedExecution`.  A step with an unknown footprint conflicts with
    everything, so reduction applies only where footprints were declared.

    **Local steps.**  A step is *local* when its footprint is empty and its task was
    *quiet* when chosen (`_is_quiet`: runnable, no exception pending for it, resuming
    without looking at its cancel scopes: a task's first step, or one after a
    non-cancellable wait), so that no other step can change what it does or be changed
    by it.  Once such a step of task `t` was explored at a node, every later alternative
    `a` there has `t` in its sleep set with an empty entry: `t` stays asleep until a step
    of unknown footprint (a cancellation, an undeclared step) wakes it, so a plain
    depth-first search of `a`'s subtree runs execution after execution only to abandon
    each when `t` is all that is left (on ``classic:twostage_N``, each task's first step
    is local, and those blocked runs grew as 2^N).  Instead, each such alternative gets
    one *probe*: a run that takes it and then continues with the first allowed option at
    every node, recording no alternative (nor a cut of the bound) below it, and whose
    taken alternative does not enter the node's sleep set.  A probe is abandoned like
    any run when only sleeping tasks are left (counted in `executions_pruned`), and
    checked when a step of unknown footprint woke `t` (the assertion failure whose
    cancellation wakes it is how a probe finds ``twostage``'s reader, at the same
    schedule as the full subtree did).  A probe of a deferred (preemptive) alternative
    runs in the next level, as the subtree would have.  Soundness: every run of the
    probed subtree is equivalent to one that takes `t`'s local step first, which is in
    `t`'s subtree, so the unbounded search still covers every class; under a bound that
    representative may need more preemptions, the weakening of the guarantee that sleep
    sets already have (see "Guarantee" below).  `alternatives_probed` counts them.

    Footprints name run-local objects (a `Mutex` built by the program), so footprints of
    different executions cannot be compared as they are.  Each resource is translated
    into a key that is stable across executions with the same prefix: plain values
    (str, int, tuples of those) stay themselves; any other object becomes the index of the
    step in which it was first recorded in this execution (which steps are recorded
    depends on the prefix only) with its class and its str ``name``, if it stores one
    that cannot hold an address (`_tag`: so two objects first recorded in one step stay
    two resources unless they share both).  For an entry observed at step `m`, keys
    with an index below `m` denote the same object in every execution that shares the
    first `m` steps; objects first recorded at or after `m` cannot be told apart and are
    assumed to conflict.  Assumption: a name an object stores is a function of the
    program's choices (the model's and the primitives' are).

    **Symmetry** (``symmetry=True``, the default when `reduction` is on): runnable tasks
    that have not run a step yet, spawned as the same call of an ``async def`` function
    or a bound method of one (the same function and the same argument objects, by
    identity) with the same name, in the same task group and cancel scopes, with the
    same context variables (by identity), form a class, and only the lowest-id task of
    each class is eligible.  Only such a call is known to start its coroutine from
    nothing but the function and its arguments: ``start_soon`` calls the callable at
    spawn time, so a callable object or a sync function returning a coroutine may give
    each task its own state (its spawn number) before it runs; such a task is only
    itself.  Such tasks are interchangeable: the
    runs where one of them goes first are those where the other does, with the two
    exchanged, so the verdict does not depend on which one is taken.  A task that ran a
    step is only itself (its locals may hold what it read from shared state: a job popped
    from a shared queue, a ticket taken from a counter), so symmetry never merges it.
    The exchange is invisible only while the program cannot tell the tasks apart: their
    names are equal, but a task object (its ``id``, ``repr``, hash, its identity as a
    dict key or in a comparison) sets them apart.  So the sim tells the chooser of every
    task handed to the program (`note_identity`: ``current_task()``, a primitive's
    ``owner``, ``writer``, ``readers``, holders in ``statistics()`` or `describe_wait`,
    a task group's children; the primitives' own bookkeeping is not the program's
    reading).  When a task symmetry merged in an execution (one of a class of two or
    more at a node of its path) is revealed in that execution, whatever the order, the
    pruned subtrees are not covered: the search drops every saved path and level and
    restarts without symmetry (`symmetry_dropped`; the executions already run stay
    counted).  Checking per execution is enough: a run of a pruned subtree that reveals
    a merged task is the exchange of one of the explored subtree that reveals the other
    (or an equivalent of it, which runs the same steps).  Symmetry prunes the order in
    which identical workers *start* (``locked_counter``: N identical fresh workers are
    one choice, not N), not what they do once running.

    Guarantee: without reduction the search visits every schedule within the bound.
    With reduction it visits one representative per class of equivalent schedules (up
    to the reordering of independent steps and the exchange of symmetric tasks), given
    footprints that cover every shared access (`odp_async._runtime.footprint`).  With
    reduction *and* a finite bound the guarantee is weaker: a sleep set may prune an
    execution within the bound whose only explored equivalent needs more preemptions
    (Coons, Musuvathi and McKinley, "Bounded Partial-Order Reduction", OOPSLA 2013).
    `is_exhaustive` says the search ended without the bound cutting anything, so the full
    guarantee holds.  Probes (see "Local steps") fall under the same weakening: a probed
    subtree's runs are only covered by equivalents that run a local step earlier.

Concurrency
    One chooser drives one sim run at a time, on the caller's thread.  Its state (the path
    and the work items of the next level) lives between runs and is the search itself.

See also
    `odp_async.explore.pct` (randomized), `odp_async._runtime.footprint`,
    `odp_async._runtime.sim` (when the chooser is asked, what ``SimTask`` exposes), loom's
    and shuttle's ``dfs`` schedulers.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Hashable, Sequence
from types import CoroutineType, MethodType
from typing import Any, Final, Generic, NoReturn, Protocol, TypeVar

import attrs

from .._runtime._base import check_draw
from .._runtime.footprint import FieldOf, Footprint, GateOpened, ReadOf, UpdateOf
from ..errors import InvalidArgument, NondeterminismError, OdpError, ProtocolViolation

__all__ = ["DfsChooser", "DfsStatistics", "PrunedExecution"]

#: What a resource first seen at or after an entry's step becomes, relative to that entry.
_FRESH: Final = -1

_NO_KEYS: Final[frozenset[Hashable]] = frozenset()


class PrunedExecution(OdpError, RuntimeError):
    """`DfsChooser.choose` abandoned a redundant execution (it propagates out of the run).

    ``reason`` is ``"sleep-set"`` (every eligible task was asleep: an equivalent execution
    was or will be explored) or ``"preemption-bound"`` (continuing needs a preemption the
    current bound or level does not allow).  ``choices`` is the prefix that was run.
    """

    def __init__(self, reason: str, choices: tuple[int, ...]) -> None:
        super().__init__(
            f"execution abandoned after {len(choices)} choices ({reason}): {list(choices)}",
            reason,
            choices,
        )
        self.reason = reason
        self.choices = choices

    def __reduce__(self) -> tuple[type[PrunedExecution], tuple[str, tuple[int, ...]]]:
        return type(self), (self.reason, self.choices)


@attrs.frozen
class DfsStatistics:
    """Where a `DfsChooser` is.  `executions` counts the pruned ones too."""

    executions: int
    pruned: int
    bound: int | None
    complete_bound: int | None
    is_complete: bool
    is_exhaustive: bool
    max_depth: int
    max_preemptions: int
    #: Alternatives explored by one probe run instead of a subtree
    #: (`DfsChooser.alternatives_probed`).
    probed: int = 0
    #: The program told merged tasks apart: the search restarted without symmetry
    #: (`DfsChooser.symmetry_dropped`).
    symmetry_dropped: bool = False


@attrs.frozen
class _Fp:
    """A footprint in run-stable keys (see the module docstring), observed at step `seen`."""

    reads: frozenset[Hashable]
    writes: frozenset[Hashable]
    seen: int
    #: Commutative updates (`odp_async._runtime.footprint.UpdateOf`): only DPOR keeps
    #: them apart; `DfsChooser` counts them among the writes.
    updates: frozenset[Hashable] = frozenset()


def _is_fresh(k: Hashable, seen: int) -> bool:
    if type(k) is not tuple:
        return False
    # An object: ("<obj>", its step, tag); a field of one: ("<field>", the owner's step,
    # part, the owner's tag) (`_SystematicChooser._key`).
    if k[0] == "<obj>":
        return bool(k[1] >= seen)
    return k[0] == "<field>" and (k[1] >= seen or _is_fresh(k[2], seen))


def _tag(obj: object) -> Hashable:
    """What tells apart objects first seen in one step: the class and a str ``name``
    stored on the object (a primitive's, a region's).

    Sleep sets compare a footprint of one execution with a step of another that shares
    its first steps, so a key must denote the same object in both: the class does; a
    name does when the program builds it from its own values ("B.umem_mutex").  A name
    that may hold an address (``0x``, or nine digits in a row: ``f"m{id(x)}"``) is
    ignored, as is one a property computes (only a slot or the instance dict is read):
    a name that differs between two such executions would hide a real conflict.
    """
    cls = type(obj)
    name: object = None
    if not isinstance(getattr(cls, "name", None), property):
        try:
            name = object.__getattribute__(obj, "name")
        except Exception:
            name = None
    if type(name) is not str or "0x" in name or _ADDRESS.search(name) is not None:
        name = None
    return (cls.__qualname__, name)


_ADDRESS: Final = re.compile(r"[0-9]{9}")


def _relative(keys: frozenset[Hashable], seen: int) -> frozenset[Hashable]:
    return frozenset(_FRESH if _is_fresh(k, seen) else k for k in keys)


def _independent(entry: _Fp, step: _Fp) -> bool:
    # entry.seen <= step.seen: the entry was observed at its node, the step ran later.
    m = entry.seen
    ar, aw = _relative(entry.reads, m), _relative(entry.writes, m)
    br, bw = _relative(step.reads, m), _relative(step.writes, m)
    if not entry.updates and not step.updates:
        return not (aw & (bw | br)) and not (bw & ar)
    au, bu = _relative(entry.updates, m), _relative(step.updates, m)
    # Two updates of one resource commute; an update and a read or a write do not.
    return not (aw & (bw | br | bu)) and not (bw & (ar | au)) and not (au & br or bu & ar)


def _is_value(resource: object) -> bool:
    if resource is None or type(resource) in (bool, int, float, str, bytes):
        return True
    if type(resource) in (tuple, frozenset):
        return all(_is_value(r) for r in resource)  # type: ignore[attr-defined]
    return False


def _identity(obj: object) -> Hashable:
    """What `obj` is, by identity: a bound method is its object and its function (each
    ``self.work`` is a new bound method object); anything else its `id`."""
    if type(obj) is MethodType:
        return ("<method>", id(obj.__self__), id(obj.__func__))
    return id(obj)


def _is_unstarted(task: Any) -> bool:
    """True if `task` has not run a step: its coroutine neither suspended nor finished."""
    coro = task.coro
    return (
        task.history == 0
        and task.pending is None
        and task.throw_exc is None
        and type(coro) is CoroutineType
        and coro.cr_frame is not None
        and not coro.cr_suspended
        and not coro.cr_running
    )


def _is_quiet(task: Any) -> bool:
    """True if no other task's step can change what `task`'s pending step does, short of
    writing shared state it reads: it is runnable (it stays so until it runs), no
    exception waits to be thrown into it, and it resumes without looking at its cancel
    scopes (a task's first step, or one after a non-cancellable wait), so a cancellation
    in between does not reach that step."""
    return task.throw_exc is None and not task.resume_cancellable


def _is_empty(fp: Footprint | None) -> bool:
    """True for a known footprint that reads and writes nothing."""
    return fp is not None and not fp.reads and not fp.writes


def _class_key(task: Any) -> Hashable:
    """The task's symmetry class (see the module docstring): a task that has not run yet
    is interchangeable with another unstarted one spawned as the same call of an
    ``async def`` function (the sim's ``spawn_key``: function, argument, code and default
    identities) with the same name, task group, cancel scopes and context variables; a
    task that ran a step, or spawned through any other callable, is only itself."""
    spawned = task.spawn_key
    if spawned is None or not _is_unstarted(task):
        return ("<task>", task.id)
    func, args, code, defaults, kwdefaults = spawned
    context = task.context
    return (
        "<unstarted>",
        _identity(func),
        tuple(_identity(a) for a in args),
        id(code),
        id(defaults),
        tuple(id(v) for v in kwdefaults),
        task.name,
        id(task.group),
        tuple(id(s) for s in task.scopes),
        frozenset((id(var), id(value)) for var, value in context.items()),
    )


class _Recorded(Protocol):
    """A node of a recorded path, as far as replaying it checks it."""

    @property
    def is_draw(self) -> bool: ...

    @property
    def options(self) -> tuple[int, ...]: ...


def _check_preemption_bound(preemption_bound: object) -> None:
    if preemption_bound is not None and (
        not isinstance(preemption_bound, int)
        or isinstance(preemption_bound, bool)
        or preemption_bound < 0
    ):
        raise InvalidArgument(
            f"preemption_bound must be None or an int >= 0, got {preemption_bound!r} "
            f"({type(preemption_bound).__name__})",
            "preemption_bound",
            preemption_bound,
        )


def _check_flags(*flags: tuple[str, object]) -> None:
    for name, value in flags:
        if not isinstance(value, bool):
            raise InvalidArgument(
                f"{name} must be a bool, got {value!r} ({type(value).__name__})", name, value
            )


_N = TypeVar("_N", bound=_Recorded)


class _SystematicChooser(Generic[_N]):
    """What `DfsChooser` and `DporChooser` share: the per-search counters, the
    per-execution state of a run that replays a recorded prefix then extends it, the
    replay checks, run-stable footprint keys, and pruning and failing an execution.

    A subclass (over its node type `_N`) calls `_init_search` from its ``__init__`` and
    `_start_execution` from ``new_execution``, and defines `has_more` and `schedule`.
    """

    __slots__ = (
        "_aborted",
        "_canon",
        "_cost",
        "_cut",
        "_failed",
        "_keys",
        "_ordinal",
        "_path",
        "_pos",
        "_prefix_len",
        "_prev_node",
        "_prev_task",
        "_sets",
        "_sleep",
        "_started",
        "_truncated_at",
        "ask_always",
        "executions",
        "executions_pruned",
        "max_depth",
        "max_preemptions",
        "preemption_bound",
        "trust_primitives",
        "wants_footprints",
    )

    def _init_search(self, preemption_bound: int | None, trust_primitives: bool) -> None:
        self.preemption_bound = preemption_bound
        self.trust_primitives = trust_primitives
        self.executions = 0
        self.executions_pruned = 0
        self.max_depth = 0
        self.max_preemptions = 0
        self._cut = False  # an alternative was dropped because of the bound
        # The preemption level (`_truncation_level`) of the first execution that reached
        # its step bound, or None: its suffix past the bound was never explored.
        self._truncated_at: int | None = None
        self._started = False
        self._failed: NondeterminismError | None = None
        self._path: list[_N] = []  # the current execution's choice points
        # Per execution.
        self._pos = 0  # next path index; < _prefix_len while replaying the forced prefix
        self._prefix_len = 0
        self._cost = 0  # preemptions so far
        self._ordinal = 0  # steps shown so far (with ask_always: steps run)
        self._sleep: dict[int, _Fp] = {}  # task id -> footprint of its pending step
        self._canon: dict[Hashable, Any] = {}  # object -> step where first observed
        self._keys: dict[Hashable, Hashable] = {}  # resource -> its key (`_stable_keys`)
        # One frozenset per distinct set of keys (`_stable_keys`): a step's footprint is
        # kept in its node's done list and in every work item saved below it.
        self._sets: dict[frozenset[Hashable], frozenset[Hashable]] = {}
        self._prev_task: Any = None  # the task whose step ran since the last call
        self._prev_node: _N | None = None  # the node that chose it, if any
        self._aborted = False

    # --- public state -----------------------------------------------------------------

    @property
    def has_more(self) -> bool:
        raise NotImplementedError

    @property
    def schedule(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def is_complete(self) -> bool:
        """True when every execution (within the bound) has been run.  Not a proof by
        itself when `truncated` (an execution stopped at the step bound): see
        `is_exhaustive`."""
        return self._started and self._failed is None and not self.has_more

    @property
    def failure(self) -> NondeterminismError | None:
        """Why the search stopped early: the program did not replay its own choices."""
        return self._failed

    @property
    def is_exhaustive(self) -> bool:
        """Complete, and no bound cut anything (neither the preemption bound nor the step
        bound: `truncated`): every schedule is covered, at any bound."""
        return self.is_complete and not self._cut and self._truncated_at is None

    @property
    def truncated(self) -> bool:
        """True once an execution reached the step bound (`note_step_limit`): its steps
        past the bound, and every race or branch among them, were never explored, so
        the search proves nothing (`is_exhaustive` is False; dfs's `complete_bound`
        stops below that execution's level)."""
        return self._truncated_at is not None

    def note_step_limit(self) -> None:
        """The last execution ended at its step bound (``outcome == "step-limit"``),
        whatever a fair continuation then showed (`odp_async.explore.fairness`: those
        steps are not this search's).  Called by `odp_async.explore.target.Target.run`."""
        if self._truncated_at is None:
            self._truncated_at = self._truncation_level()

    def _truncation_level(self) -> int:
        return 0

    @property
    def preemptions(self) -> int:
        """Preemptions of the current (or last) execution."""
        return self._cost

    # --- one execution ----------------------------------------------------------------

    def _start_execution(self) -> None:
        """Reset the per-execution state; the choices of the path so far are replayed."""
        self._started = True
        self.executions += 1
        self._pos = 0
        self._prefix_len = len(self._path)
        self._cost = 0
        self._ordinal = 0
        self._sleep = {}
        self._canon = {}
        self._keys = {}
        self._sets = {}
        self._prev_task = None
        self._prev_node = None
        self._aborted = False

    def _check_offer(self, node: _Recorded, pos: int, ids: tuple[int, ...], at: str) -> None:
        """Fail unless the replayed run offers the tasks the recorded run offered."""
        if node.is_draw or node.options != ids:
            expected = f"a draw among {node.options[0]}" if node.is_draw else node.options
            self._fail(
                f"{at} {pos}: the run offers tasks {ids}, the recorded run offered "
                f"{expected}: the program is not deterministic"
            )

    def _check_draw(self, node: _Recorded, pos: int, n: int, label: object, at: str) -> None:
        """Fail unless the replayed run draws where and among as many as the recorded."""
        if not node.is_draw or node.options != (n,):
            self._fail(
                f"{at} {pos}: the run draws among {n} values for {label!r}, the "
                "recorded run made another choice there: the program is not deterministic"
            )

    def _took(self, pos: int, cost: int) -> None:
        """The choice at path index `pos` is made; it costs `cost` preemptions."""
        self._pos = pos + 1
        self._cost += cost
        self.max_depth = max(self.max_depth, self._pos)
        self.max_preemptions = max(self.max_preemptions, self._cost)

    def _stable_keys(
        self, fp: Footprint, ordinal: int, updates: set[Hashable] | None = None
    ) -> tuple[frozenset[Hashable], frozenset[Hashable]]:
        """`fp`'s (reads, writes), noted reads included (`with_noted_reads`), in
        run-stable keys.  A resource's key is fixed at its first sight in the execution,
        so it is remembered per resource (`_keys`) and not rebuilt at every step.  A
        noted update (`UpdateOf`) goes into `updates` when given, else among the writes
        (more conflicts, never fewer)."""
        memo = self._keys
        reads: set[Hashable] = set()
        writes: set[Hashable] = set()
        for resource in fp.reads:
            k = memo.get(resource)
            if k is None:
                k = memo[resource] = self._key(resource, ordinal)
            reads.add(k)
        for resource in fp.writes:
            into = writes
            if type(resource) is GateOpened:
                continue  # a mark, not an access (the gate's own write is beside it)
            if type(resource) is ReadOf:
                # A noted read (`with_noted_reads`): a read of what it marks.
                resource, into = resource.read_of, reads
            elif type(resource) is UpdateOf:
                resource = resource.update_of
                if updates is not None:
                    into = updates
            k = memo.get(resource)
            if k is None:
                k = memo[resource] = self._key(resource, ordinal)
            into.add(k)
        return self._frozen(reads), self._frozen(writes)

    def _frozen(self, keys: set[Hashable]) -> frozenset[Hashable]:
        """`keys` frozen, the same object for equal sets within an execution."""
        if not keys:
            return _NO_KEYS
        frozen = frozenset(keys)
        return self._sets.setdefault(frozen, frozen)

    def _key(self, resource: Hashable, ordinal: int) -> Hashable:
        """The run-stable key of `resource`, first seen (if not before) at step `ordinal`."""
        if _is_value(resource):
            return ("<value>", resource)
        canon = self._canon
        if type(resource) is FieldOf:
            # One field of an object: the object's key and the part, so two fields
            # (two dict entries) of one object stay two resources.  The owner is
            # kept alive by the entry, so its id is not reused in this execution.
            owner = resource.owner
            seen: tuple[int, Hashable, object] = canon.get(("<owner>", id(owner)))  # type: ignore[assignment]
            if seen is None:
                seen = canon[("<owner>", id(owner))] = (ordinal, _tag(owner), owner)
            return ("<field>", seen[0], self._key(resource.part, ordinal), seen[1])
        # Objects first seen in one step share its ordinal, told apart only by their
        # class and name (more conflicts, never fewer): so the key does not depend on
        # the frozenset's iteration order.
        first: tuple[str, int, Hashable] | None = canon.get(resource)
        if first is None:
            first = canon[resource] = ("<obj>", ordinal, _tag(resource))
        return first

    def _search_over(self) -> NoReturn:
        raise ProtocolViolation(
            f"{type(self).__name__}.new_execution() after the search was complete "
            "(check has_more before each run)"
        )

    def _prune(self, reason: str) -> NoReturn:
        self._aborted = True
        self.executions_pruned += 1
        self._prev_task = self._prev_node = None
        raise PrunedExecution(reason, self.schedule)

    def _fail(self, message: str) -> NoReturn:
        self._failed = NondeterminismError(message)
        raise self._failed


@attrs.define(eq=False)
class _Node:
    """One choice point of the current path.

    Invariants: ``chosen`` (-1: none at this level) is not in `todo` nor `deferred`;
    `done` lists, in order, the children explored before `chosen` with the footprint of
    their step (kept only with sleep sets); `costs[i]` is 1 when choosing option `i`
    is a preemption.
    """

    is_draw: bool
    options: tuple[int, ...]  # task ids in runnable order; (n,) for a draw of n values
    ordinal: int  # the step this choice starts (a draw: the step it happens in)
    costs: tuple[int, ...]
    chosen: int
    todo: list[int]
    deferred: list[int] = attrs.field(factory=list)
    done: list[tuple[int, _Fp | None]] = attrs.field(factory=list)
    chosen_fp: _Fp | None = None
    # The chosen child's step was local (`_is_quiet` task, empty footprint).
    chosen_local: bool = False
    # Alternatives to probe at this level and at the next one (`DfsChooser._advance`),
    # and whether `chosen` is one of those probes.
    probes: list[int] = attrs.field(factory=list)
    deferred_probes: list[int] = attrs.field(factory=list)
    probing: bool = False
    # This node's saved state and its ancestors', shared by every work item saved below
    # it while its choice stays (None: not saved since its last change).
    snap: _Chain | None = None
    # The ids of the tasks symmetry merged here (each in a class of two or more).
    merged: tuple[int, ...] = ()


@attrs.frozen
class _Chain:
    """A saved path as a linked list from its last node up: prefixes are shared."""

    node: _Saved
    parent: _Chain | None

    def links(self) -> list[_Chain]:
        """The chain's links, from the first node of the path to this one."""
        out: list[_Chain] = []
        chain: _Chain | None = self
        while chain is not None:
            out.append(chain)
            chain = chain.parent
        out.reverse()
        return out


@attrs.frozen
class _Saved:
    """A node copied into a work item (see `_Node`)."""

    is_draw: bool
    options: tuple[int, ...]
    ordinal: int
    costs: tuple[int, ...]
    chosen: int
    done: tuple[tuple[int, _Fp | None], ...]
    merged: tuple[int, ...] = ()

    @classmethod
    def of(cls, node: _Node) -> _Saved:
        return cls(
            node.is_draw,
            node.options,
            node.ordinal,
            node.costs,
            node.chosen,
            tuple(node.done),
            node.merged,
        )

    def node(self, chosen: int, todo: list[int]) -> _Node:
        return _Node(
            self.is_draw,
            self.options,
            self.ordinal,
            self.costs,
            chosen,
            todo,
            [],
            list(self.done),
            merged=self.merged,
        )


@attrs.frozen
class _WorkItem:
    """A node whose preemptive alternatives the next level explores, with its path.

    `node` is that node (its `chosen` unused); `ancestors` the path to it, each entry
    keeping the choice that leads on (shared with the other work items saved under the
    same prefix).  `alternatives` are its deferred options, in order.
    """

    ancestors: _Chain | None
    node: _Saved
    alternatives: tuple[int, ...]
    #: The alternatives are probes (`DfsChooser._advance`), not subtrees.
    probe: bool = False


class DfsChooser(_SystematicChooser[_Node]):
    """Depth-first search of every schedule (and every drawn value), one run at a time.

    ``DfsChooser(preemption_bound=None, *, iterative=False, reduction=True,
    symmetry=None, trust_primitives=True)``: `symmetry` defaults to `reduction`; with
    `iterative`, `preemption_bound` is the last level (None: no limit);
    ``trust_primitives=False`` tells the sim that acquiring a primitive declares nothing
    (only explicit `Footprint` labels do); it matters only under the noted-only promise
    (`odp_async._runtime.footprint.declared_footprint`).

    The explorer loop::

        chooser = DfsChooser(preemption_bound=2, iterative=True)
        while chooser.has_more and budget_left():
            try:
                result = sim.run(program, chooser=chooser)
            except PrunedExecution:
                continue  # redundant: nothing to check
            check(result)  # result.schedule replays it with ReplayChooser
        chooser.is_complete  # True: the whole space (within the bound) was explored

    `executions` counts started executions (pruned included), `executions_pruned` the
    abandoned ones, `alternatives_probed` the alternatives given one probe run instead
    of a subtree (module docstring, "Local steps"); `bound` is the level being
    explored (iterative) or the bound; `complete_bound` the highest bound whose
    executions were all explored (None: not even 0 yet); `preemptions` and `schedule`
    describe the current (or last) execution; `max_depth` is the most choice points an
    execution went through.  When a replay does
    not match (`failure`), every later call raises that `NondeterminismError`.
    """

    __slots__ = (
        "_classes",
        "_level",
        "_merged",
        "_next_level",
        "_prev_quiet",
        "_probing",
        "_revealed",
        "_this_level",
        "_unsound",
        "alternatives_probed",
        "is_iterative",
        "reduction",
        "symmetry",
        "symmetry_dropped",
    )

    def __init__(
        self,
        preemption_bound: int | None = None,
        *,
        iterative: bool = False,
        reduction: bool = True,
        symmetry: bool | None = None,
        trust_primitives: bool = True,
    ) -> None:
        _check_preemption_bound(preemption_bound)
        _check_flags(
            ("iterative", iterative),
            ("reduction", reduction),
            ("trust_primitives", trust_primitives),
        )
        if symmetry is not None and not isinstance(symmetry, bool):
            raise InvalidArgument(
                f"symmetry must be None or a bool, got {symmetry!r} ({type(symmetry).__name__})",
                "symmetry",
                symmetry,
            )
        self._init_search(preemption_bound, trust_primitives)
        self.is_iterative = iterative
        self.reduction = reduction
        self.symmetry = reduction if symmetry is None else symmetry
        # Read by the sim: every step is shown to us (sleep sets need each footprint);
        # footprints and histories are kept (sleep sets and symmetry need them).
        self.ask_always = reduction
        self.wants_footprints = reduction or self.symmetry
        # The search: besides the current path, the work items (saved paths whose last
        # node has preemptive alternatives) of the level being run and of the next one.
        self._this_level: deque[_WorkItem] = deque()
        self._next_level: deque[_WorkItem] = deque()
        self._level = 0
        # Alternatives probed by one run instead of a subtree (`_advance`), and whether
        # the current execution is such a probe.
        self.alternatives_probed = 0
        self._probing = False
        self._classes: dict[int, Hashable] = {}  # task id -> `_class_key`, per execution
        self._prev_quiet = False  # `_is_quiet` of `_prev_task` when it was chosen
        # Symmetry's soundness (module docstring, "Symmetry"), per execution: the ids of
        # the tasks it merged at a node of the path, and of the tasks whose identity the
        # program learnt (`note_identity`).  Once the two meet, the search is `_unsound`
        # and restarts without symmetry (`symmetry_dropped`).
        self._merged: set[int] = set()
        self._revealed: set[int] = set()
        self._unsound = False
        self.symmetry_dropped = False

    # --- public state -----------------------------------------------------------------

    @property
    def has_more(self) -> bool:
        """True while another execution remains to be run.

        Also True once the search failed (`failure` is set), so that the explorer's next
        run raises the `NondeterminismError` instead of the loop ending quietly.
        """
        if not self._started or self._failed is not None or self._unsound:
            return True
        return (
            any(
                node.todo or node.deferred or node.probes or node.deferred_probes
                for node in self._path
            )
            or bool(self._this_level)
            or bool(self._next_level)
        )

    @property
    def bound(self) -> int | None:
        """The preemption level being explored (iterative), else the bound (None: none)."""
        return self._level if self.is_iterative else self.preemption_bound

    @property
    def complete_bound(self) -> int | None:
        """The highest preemption bound whose executions were all explored, or None."""
        cut = self._truncated_at
        if cut is not None and not self.is_iterative:
            return None  # an execution stopped at the step bound: no level is whole
        if self.is_complete:
            if self.preemption_bound is not None:
                done = self.preemption_bound
            else:
                done = self._level if self.is_iterative else self.max_preemptions
        elif self.is_iterative and self._level > 0:
            done = self._level - 1
        else:
            return None
        if cut is not None:
            done = min(done, cut - 1)  # the level of the truncated execution is not whole
        return done if done >= 0 else None

    def _truncation_level(self) -> int:
        return self._level if self.is_iterative else 0

    @property
    def schedule(self) -> tuple[int, ...]:
        """The choices of the current (or last) execution so far."""
        return tuple(node.chosen for node in self._path[: self._pos])

    def statistics(self) -> DfsStatistics:
        return DfsStatistics(
            executions=self.executions,
            pruned=self.executions_pruned,
            bound=self.bound,
            complete_bound=self.complete_bound,
            is_complete=self.is_complete,
            is_exhaustive=self.is_exhaustive,
            max_depth=self.max_depth,
            max_preemptions=self.max_preemptions,
            probed=self.alternatives_probed,
            symmetry_dropped=self.symmetry_dropped,
        )

    # --- the chooser protocol ---------------------------------------------------------

    def new_execution(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._started:
            self._settle()
            if not self._aborted and self._pos < self._prefix_len:
                self._fail(
                    f"the run ended after {self._pos} choices, but replaying its prefix "
                    f"needs {self._prefix_len}: the program is not deterministic"
                )
            if self._unsound:
                self._restart_without_symmetry()
            elif not self._advance():
                self._search_over()
        self._start_execution()
        self._classes.clear()
        self._merged.clear()
        self._revealed.clear()

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        if self._failed is not None:
            raise self._failed
        self._settle()
        if len(runnable) == 1:
            # Asked only because of ask_always: no branch, but a sleeping task must not run.
            task = runnable[0]
            if task.id in self._sleep:
                self._prune("sleep-set")
            self._prev_quiet = _is_quiet(task)
            self._prev_task, self._prev_node = task, None
            self._ordinal += 1
            return 0
        pos = self._pos
        if pos < len(self._path):
            node = self._path[pos]
            self._check_offer(node, pos, tuple(t.id for t in runnable), "choice")
            if node.merged:
                self._note_merged(node.merged)
        else:
            node = self._new_node(runnable, last)
        i = node.chosen
        self._took(pos, node.costs[i])
        task = runnable[i]
        self._prev_quiet = _is_quiet(task)
        self._prev_task, self._prev_node = task, node
        self._ordinal += 1
        return i

    def draw(self, n: int, label: object) -> int:
        if self._failed is not None:
            raise self._failed
        pos = self._pos
        if pos < len(self._path):
            node = self._path[pos]
            self._check_draw(node, pos, n, label, "choice")
        else:
            check_draw(n)  # a node holds O(n): bounded here too (the sim checks first)
            node = _Node(True, (n,), self._ordinal - 1, (0,) * n, 0, list(range(1, n)))
            self._path.append(node)
        self._took(pos, 0)
        return node.chosen

    def note_identity(self, task: Any) -> None:
        """The program learnt `task`'s identity (the sim calls it: `current_task()`, a
        primitive's owner or holders; `odp_async._runtime.Runtime.reveal`).  If symmetry
        merged that task in this execution, the exchange it relied on is visible, so
        nothing it pruned is covered: the search restarts without symmetry at the next
        `new_execution` (`has_more` is True and `is_complete` False until then)."""
        if not self.symmetry:
            return
        self._revealed.add(task.id)
        if task.id in self._merged:
            self._unsound = True

    def __repr__(self) -> str:
        return (
            f"DfsChooser(preemption_bound={self.preemption_bound!r}, "
            f"iterative={self.is_iterative}, reduction={self.reduction}, "
            f"symmetry={self.symmetry})"
        )

    # --- the search -------------------------------------------------------------------

    def _new_node(self, runnable: Sequence[Any], last: Any) -> _Node:
        n = len(runnable)
        by_id = sorted(range(n), key=lambda i: runnable[i].id)
        last_index = -1
        merged: tuple[int, ...] = ()
        if self.symmetry:
            reps: dict[Hashable, int] = {}
            members: dict[Hashable, int] = {}
            for i in by_id:
                key = self._class_of(runnable[i])
                reps.setdefault(key, i)
                members[key] = members.get(key, 0) + 1
            candidates = list(reps.values())  # lowest id of each class, by id
            if last is not None:
                last_index = reps[self._class_of(last)]
            if len(candidates) < n:
                merged = tuple(
                    runnable[i].id for i in by_id if members[self._class_of(runnable[i])] > 1
                )
                self._note_merged(merged)
        else:
            candidates = by_id
            if last is not None:
                last_index = next(i for i in range(n) if runnable[i] is last)
        costs = tuple(0 if last is None or i == last_index else 1 for i in range(n))
        sleep = self._sleep
        eligible = [i for i in candidates if runnable[i].id not in sleep]
        if not eligible:
            self._prune("sleep-set")
        free = [i for i in eligible if costs[i] == 0]
        preempting = [i for i in eligible if costs[i] == 1]
        bound = self.preemption_bound
        allowed = bound is None or self._cost + 1 <= bound
        probing = self._probing
        if preempting and not allowed and not probing:
            self._cut = True
        deferred: list[int] = []
        if not allowed:
            todo = free
        elif self.is_iterative:
            todo, deferred = free, preempting
        else:
            todo = free + preempting
        ids = tuple(t.id for t in runnable)
        if probing:
            # A probe (`_advance`) follows one continuation and saves no alternative.
            todo, deferred = todo[:1], []
        if not todo:
            if deferred:
                # Kept on the path so its alternatives become the next level's work.
                self._path.append(
                    _Node(False, ids, self._ordinal, costs, -1, [], deferred, merged=merged)
                )
            self._prune("preemption-bound")
        node = _Node(False, ids, self._ordinal, costs, todo[0], todo[1:], deferred, merged=merged)
        self._path.append(node)
        return node

    def _note_merged(self, ids: tuple[int, ...]) -> None:
        self._merged.update(ids)
        if not self._revealed.isdisjoint(ids):
            self._unsound = True

    def _restart_without_symmetry(self) -> None:
        """Drop every saved path and level and start the search again from the empty
        prefix, without symmetry: its pruned subtrees are not covered once the program
        told merged tasks apart, so neither the work done nor a bound it reached counts
        (the executions already run stay counted, and a run's truncation stays noted)."""
        self.symmetry = False
        self.symmetry_dropped = True
        self._unsound = False
        self._path = []
        self._this_level.clear()
        self._next_level.clear()
        self._level = 0
        self._cut = False
        self._probing = False

    def _class_of(self, task: Any) -> Hashable:
        """`_class_key`, computed once per unstarted task and execution (it cannot change
        before the task's first step)."""
        if task.spawn_key is None or not _is_unstarted(task):
            return ("<task>", task.id)
        key = self._classes.get(task.id)
        if key is None:
            key = self._classes[task.id] = _class_key(task)
        return key

    def _advance(self) -> bool:
        """Move to the next execution's forced prefix.  False when none is left."""
        path = self._path
        while True:
            while path:
                node = path[-1]
                if node.chosen >= 0 and not node.is_draw and self.reduction and not node.probing:
                    node.done.append((node.options[node.chosen], node.chosen_fp))
                    if node.chosen_local and (node.todo or node.deferred):
                        # Every later alternative here only leads to runs where this
                        # local step's task sleeps (see "Local steps" above): each gets
                        # one probe instead of a subtree.
                        self.alternatives_probed += len(node.todo) + len(node.deferred)
                        node.probes, node.todo = node.todo, node.probes
                        node.deferred_probes, node.deferred = node.deferred, node.deferred_probes
                node.chosen_fp = None
                node.chosen_local = False
                node.snap = None  # its choice or its done list changes
                if node.todo:
                    node.chosen = node.todo.pop(0)
                    node.probing = self._probing = False
                    return True
                if node.probes:
                    node.chosen = node.probes.pop(0)
                    node.probing = self._probing = True
                    return True
                path.pop()
                if node.deferred:
                    self._next_level.append(self._save(path, node, node.deferred, False))
                if node.deferred_probes:
                    self._next_level.append(self._save(path, node, node.deferred_probes, True))
            if not self._this_level:
                if not self._next_level:
                    return False
                self._level += 1
                self._this_level, self._next_level = self._next_level, deque()
            item = self._this_level.popleft()
            path.extend(self._restore(item))
            self._probing = item.probe
            return True

    @staticmethod
    def _save(
        ancestors: list[_Node], node: _Node, alternatives: list[int], probe: bool
    ) -> _WorkItem:
        # Snapshots are made once per node and choice, and shared: saving costs the
        # ancestors not saved since they last changed, not the whole path.
        start = len(ancestors)
        while start > 0 and ancestors[start - 1].snap is None:
            start -= 1
        chain = ancestors[start - 1].snap if start > 0 else None
        for a in ancestors[start:]:
            chain = a.snap = _Chain(_Saved.of(a), chain)
        return _WorkItem(chain, _Saved.of(node), tuple(alternatives), probe)

    @staticmethod
    def _restore(item: _WorkItem) -> list[_Node]:
        # Each ancestor keeps the link it was restored from as its snapshot (its choice
        # and done list are those saved): the work items this execution saves share
        # the restored prefix instead of copying it once more per execution.
        links = item.ancestors.links() if item.ancestors is not None else []
        path = []
        for link in links:
            node = link.node.node(link.node.chosen, [])
            node.snap = link
            path.append(node)
        first, *rest = item.alternatives
        if item.probe:
            last = item.node.node(first, [])
            last.probes, last.probing = rest, True
        else:
            last = item.node.node(first, rest)
        path.append(last)
        return path

    # --- sleep sets -------------------------------------------------------------------

    def _settle(self) -> None:
        """Learn the footprint of the step run since the last call; update the sleep set."""
        task = self._prev_task
        if task is None:
            return
        node = self._prev_node
        self._prev_task = self._prev_node = None
        if node is not None and self.reduction:
            node.chosen_local = self._prev_quiet and _is_empty(task.footprint)
        if not self.reduction or (node is None and not self._sleep):
            # Nothing to wake and nothing to remember.  Skipping is deterministic (it
            # depends on the prefix only), so resource keys stay consistent across runs.
            return
        fp = self._stable(task.footprint, self._ordinal - 1)
        if node is not None:
            node.chosen_fp = fp
        if fp is None:
            self._sleep = {}
            return
        candidates = self._sleep
        if node is not None and node.done:
            candidates = dict(candidates)
            for tid, entry in node.done:
                if entry is not None:
                    candidates.setdefault(tid, entry)
        self._sleep = {
            tid: entry
            for tid, entry in candidates.items()
            if tid != task.id and _independent(entry, fp)
        }

    def _stable(self, fp: Footprint | None, ordinal: int) -> _Fp | None:
        if fp is None:
            return None
        reads, writes = self._stable_keys(fp, ordinal)
        return _Fp(reads, writes, ordinal)
