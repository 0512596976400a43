"""The sim runtime: a deterministic driver that steps coroutines itself, one task at a time.

Contract
    `run(main, *args, seed=...)` runs ``main(*args)`` as the root task of a fresh
    `SimRuntime` and returns a `SimResult`; it never raises for what happened inside the
    run (an error, a deadlock, a step limit are outcomes).  Every resumption of a task is
    one *step*.  Before each step, if more than one task is runnable, the chooser picks one;
    its answers, in order, are the run's *schedule*.  The same chooser answers give the
    same run, bit for bit, in any process: the driver never reads the wall clock, never
    iterates a set or a dict keyed by ``id()``, and time is virtual.

    Choice points are exactly the traps a task yields to the driver: ``checkpoint``,
    ``park`` (block on a `Waiter`) and ``sleep``.  Code under the sim must await only
    odp_async's runtime calls and `odp_async.sync` primitives; awaiting anything else
    (an asyncio future, a trio trap, a bare ``yield`` as in ``asyncio.sleep(0)``, an
    asyncio/trio/anyio primitive that fails for want of its event loop) is a usage
    error, not an outcome: `run` raises `ForeignAwait` naming the awaited object.

    Not an outcome either: a `KeyboardInterrupt` raised inside a task that is the user's
    Ctrl-C leaves `run` unchanged, after the run's tasks have been unwound.  Which one
    is: `odp_async._runtime.interrupts.is_ctrl_c` (while the explorer or the CLI marks
    Ctrl-C, or SIGINT is ignored as in the explorer's workers, a `KeyboardInterrupt` the
    program raises itself is its own error; otherwise every one is taken for Ctrl-C).
    A `SystemExit` (``sys.exit()`` in the program) is the program's own error, an
    outcome like any exception.

    `run_brief` is `run` for callers that look closer only at runs that went wrong (the
    explorer): a run ending ``"ok"`` returns its step count, no record built; and
    `BriefRuns` runs one program many times on one runtime, reset between runs, with the
    same results as fresh runtimes.

    Who raised what: `SimResult.ends` records, for every task that finished, the step,
    the task and its exception (None for a return), so a report can name the task behind
    each leaf of the root's `ExceptionGroup`.

    Structured concurrency: tasks are spawned into task groups; an exception in a child
    cancels the group (its siblings and the body), and the group re-raises the errors as
    a `BaseExceptionGroup` once every child has finished.  Cancel scopes and deadlines
    follow trio: a `Cancelled` is raised at the next checkpoint or cancellable park of
    every task inside a cancelled scope (shields stop it), and is caught by the outermost
    cancelled scope.  A group's exit waits for its children without being cancelled
    itself (trio's nursery); when a child ends with a `Cancelled` (a scope around the
    group was cancelled: ``fail_after``, ``move_on_after``), a `Cancelled` leaves the
    exit, for that scope to catch (``fail_after`` then raises `TimeoutError`).  With
    errors, the group raises them alone (anyio's groups hold no cancellation).  Time
    advances only when no task is runnable, straight to the next deadline (trio's
    autojump clock).  An infinite deadline never comes (``sleep(math.inf)``, a scope with
    ``deadline=math.inf``, a time plus a delay past the largest float): the clock stays
    finite, and such a sleep ends only by a cancellation.

    Deadlock: when no task is runnable, no timer can fire and the root has not
    finished, the run stops with outcome ``"deadlock"`` and a `Deadlock` record naming
    every blocked task (a task in an endless sleep included), what it waits on and who
    holds that (a holder that already
    finished is marked so), with the wait-for cycle when there is one.  A cycle may be
    one task long: a task re-acquiring a lock it holds (lockdep's "recursive locking"),
    or waiting on a `Completion` while every other task waits, through locks or task
    groups, for it (described by those wait-for edges: a completion has no owner).  A
    *partial* deadlock: some blocked tasks wait on each other for good (no deadline
    pending, every way out held inside the group: locks, pools, task groups, never a
    completion or a condition anyone may signal) while others still run.  The run stops
    on the block that closes the cycle (its last step is that block) when no task that
    could still run (or is blocked elsewhere, asleep, or yet to be spawned) could free
    a stuck one: none entered a cancel scope around one and is still inside it (a
    group's body before its exit), none is a sibling inside one whose code raises (or
    that is inside, or names, a ``fail_after``: its deadline raises), and
    nothing it holds reaches such a scope, its task group, or a pool a stuck task waits
    on that its code releases (`SimRuntime._rescuable`: a walk of the object graph,
    `odp_async._runtime.rescue`; unsure is "could").  When the step bound stops the
    run with a cycle there, the outcome is ``"deadlock"`` only if that cycle is blocked
    for good by the same test; a cycle some task could still free (a watchdog not done
    yet, a supervisor that cancels and restarts its workers: a livelock) is
    ``"step-limit"``.  Either way `Deadlock.runnable` names
    the tasks that could still run.  The check runs only when a task blocks on a wait
    with a blocked holder, never per step.

Concurrency
    One OS thread.  The driver is not reentrant per runtime, but separate `run` calls
    (even nested ones) are independent: the runtime in effect is carried by a context
    variable set in the root task's context, never by module state.

See also
    `odp_async._runtime.choosers` (who decides), `odp_async._runtime._base` (the trap
    protocol), `odp_async.sync` (the primitives that park).
"""

from __future__ import annotations

import contextvars
import dis
import heapq
import inspect
import math
import types
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, Literal

import attrs

from ..errors import (
    BodyNotAwaitable,
    ForeignAwait,
    InternalError,
    InvalidArgument,
    OdpError,
    ProtocolViolation,
)
from ._base import (
    MAX_DRAW,
    RUNTIME_VAR,
    CancelScopeLike,
    Runtime,
    Waiter,
    _FailAfter,
    check_draw,
    check_sleep,
    deadline_after,
    new_waiter,
)
from .budget import CHECK_EVERY, RunOutOfTime, time_check
from .choosers import Chooser, RandomChooser, StreamChooser
from .footprint import (
    FieldOf,
    Footprint,
    ReadOf,
    declared_footprint,
    noted_run_starts,
    tracking_run_ends,
    tracking_run_starts,
)
from .handed import HandedState
from .interrupts import is_ctrl_c
from .rescue import Reach, held_in
from .stall import StepInterrupt, drive_begins, drive_ends

__all__ = [
    "BlockedTask",
    "BriefRuns",
    "Cancelled",
    "Deadlock",
    "DeadlockError",
    "SimCancelScope",
    "SimResult",
    "SimRuntime",
    "SimTask",
    "SimTaskGroup",
    "StepLimitExceeded",
    "TaskEnd",
    "run",
    "run_brief",
]

# Trap opcodes: what a task yields to the driver, as ``(op, arg)``.
CHECKPOINT: Final = 0
PARK: Final = 1
SLEEP: Final = 2
#: Not a trap: a trace entry for something a step did (``(event, primitive)``), such as
#: taking or releasing a lock, recorded for timelines.
NOTE: Final = 3


class _CheckpointTrap:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CHECKPOINT_TRAP"


#: What `odp_async._runtime.checkpoint` yields under the sim: ``(CHECKPOINT, label)``
#: without the tuple, the label already stored in the running task's `SimTask.pending`
#: (one constant compared by identity at every step, no tuple built and taken apart).
#: `CHECK_EVERY` - 1: a run looks at its time budget when ``steps & _CHECK_MASK`` is 0.
_CHECK_MASK = CHECK_EVERY - 1
#: The same for a run that keeps footprints or a trace, whose steps cost more (a step of
#: the model's ``populate`` notes every frame in use).
_CHECK_MASK_NOTING = CHECK_EVERY // 64 - 1

CHECKPOINT_TRAP: Final = _CheckpointTrap()

_RUNNABLE: Final = 0
_BLOCKED: Final = 1
_SLEEPING: Final = 2
_DONE: Final = 3

DEFAULT_MAX_STEPS: Final = 1_000_000


@types.coroutine
def trap(op: int, arg: object) -> Generator[tuple[int, object], Any, Any]:
    """The one awaitable the driver understands: yield ``(op, arg)``, return what is sent.

    The trap rule: a tuple of two, `op` an int, `CHECKPOINT` (any label), `PARK` on a
    `Waiter` or `SLEEP` until a float time (or `CHECKPOINT_TRAP` alone); anything else a
    task yields (a future, a trio trap, a bare ``yield``) is not the driver's: a
    `ForeignAwait`.  The driver never iterates what was yielded (an asyncio future is
    iterable, and iterating it raises)."""
    return (yield (op, arg))


class Cancelled(BaseException):
    """Raised in a sim task at a checkpoint or park inside a cancelled scope.

    Like trio's `Cancelled`: a `BaseException`, so ``except Exception`` does not swallow
    it; let it propagate (clean up in ``finally``).
    """


def _sees_cancel(scopes: list[SimCancelScope]) -> bool:
    """Whether a cancelled scope is visible from the innermost of `scopes` (outermost
    first): walking outwards, a cancelled scope before any shielded one (trio's rule)."""
    for scope in reversed(scopes):
        if scope._cancel_called:
            return True
        if scope._shield:
            return False
    return False


class SimTask:
    """One task of a sim run.  Identity is ``id`` (unique within the run, in spawn order)."""

    __slots__ = (
        "__weakref__",
        "cancel_cached",
        "context",
        "coro",
        "epoch_seen",
        "footprint",
        "group",
        "history",
        "id",
        "name",
        "pending",
        "ran",
        "resume_cancellable",
        "scopes",
        "send",
        "send_value",
        "sleep_token",
        "spawn_key",
        "state",
        "throw_exc",
        "waiter",
        "watched",
        "woken_at",
    )

    def __init__(
        self,
        task_id: int,
        name: str,
        coro: Coroutine[Any, Any, Any],
        context: contextvars.Context,
        group: SimTaskGroup | None,
        scopes: list[SimCancelScope],
    ) -> None:
        self.id = task_id
        self.name = name
        self.coro = coro
        #: ``coro.send``, bound once: the driver calls it at every step.
        self.send = coro.send
        self.context = context
        self.group = group
        # Invariant: scopes[i] encloses scopes[i + 1]; the innermost scope is last.
        self.scopes = scopes
        self.state = _RUNNABLE
        self.send_value: object = None
        self.throw_exc: BaseException | None = None
        # True when the task's current trap may be interrupted by a cancellation.  False
        # for the first step: a task always starts, and meets cancellation at its first
        # checkpoint (as on trio and asyncio).
        self.resume_cancellable = False
        # Cached "is any visible scope cancelled", valid while epoch_seen == runtime epoch.
        self.epoch_seen = -1
        self.cancel_cached = False
        self.waiter: Waiter | None = None
        self.sleep_token = 0
        # What the task will do when resumed: the label of its last checkpoint, the waiter
        # it parked on, or None before its first step.  Choosers may look (not touch).
        self.pending: object = None
        # For reduction (only kept when the chooser asks): what its last step touched
        # (None: unknown), a hash of the labels of every step it ran, and what it was
        # spawned as (`_spawned_as`, held so that their identities stay theirs, or None
        # when that is unknown) so identical unstarted tasks can be told.
        self.footprint: Footprint | None = None
        self.history = 0
        self.spawn_key: object = None
        # The index of its last step (0: none yet), the step that last made it runnable
        # after a park (-1: none), and how many `watch_progress` it is inside: then its
        # steps and wakes are noted as writes of `progress_of` it (`task_passed_over`).
        self.ran = 0
        self.woken_at = -1
        self.watched = 0

    def __repr__(self) -> str:
        return f"<SimTask {self.id} {self.name!r}>"

    def cancel_is_pending(self) -> bool:
        """True if an exception or a cancellation (a cancelled scope it sees) is due to
        the task when it runs next.  For choosers: looks, changes nothing."""
        return self.throw_exc is not None or _sees_cancel(self.scopes)


_new_object = object.__new__
_copy_context = contextvars.copy_context
_INF: Final = math.inf


#: `BlockedTask.relation` of a task waiting on a completion while every other task waits,
#: directly or through others, for it (a one-task cycle of the run; no holder named).
BLOCKING_ALL: Final = "blocking every other task"
#: `BlockedTask.relation` of the run's one unfinished task, waiting on a completion that
#: no task is left to complete (`BLOCKING_ALL` with nobody else to block).
LEFT_ALONE: Final = "no other task left"
#: What a task in a sleep with no end (``sleep(math.inf)``, no deadline) waits for.
SLEEPS_FOR_EVER: Final = "the end of an endless sleep (sleep(inf)): only a cancellation ends it"


@attrs.frozen
class BlockedTask:
    """A task that was blocked when the run stopped, and what it waited on."""

    task: str
    task_id: int
    waits_for: str
    #: Who holds `waits_for` (names; ``"B (finished)"`` for a holder that has returned
    #: while still holding it).
    holders: tuple[str, ...]
    #: How `holders` relate to `waits_for`: "held by" for a lock, "to finish:" for a group,
    #: `BLOCKING_ALL` for a completion (no owner, no holders named) while every other
    #: task waits, directly or through others, for this one; `LEFT_ALONE` when there is
    #: no other unfinished task.
    relation: str = "held by"
    #: The task itself is among the holders: it waits on itself (a one-task cycle).
    waits_on_itself: bool = False
    #: Tasks queued before it that it must let go first (names): the writers queued
    #: ahead of a reader on an `RWLock` (a nested read behind a queued writer).
    behind: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.behind and self.relation == "held by":
            # (not "recursive locking": the queued tasks, not its own hold, keep it out)
            held = ", ".join(f"{h} itself" if h == self.task else h for h in self.holders)
            by = f" (held by {held})" if held else ""
            queued = ", ".join(self.behind)
            return f"{self.task} waits for {self.waits_for} behind the queued {queued}{by}"
        if self.waits_on_itself and self.relation == "held by":
            others = [h for h in self.holders if h != self.task]
            also = f" (and {', '.join(others)})" if others else ""
            return (
                f"{self.task} waits for {self.waits_for} held by {self.task} itself{also}"
                " (recursive locking)"
            )
        if self.relation == LEFT_ALONE:
            return f"{self.task} waits for {self.waits_for}, and no other task is left to end it"
        if self.relation == BLOCKING_ALL:
            # A completion has no owner: name the edges, not who would complete it.
            return (
                f"{self.task} waits for {self.waits_for}, while every other task waits, "
                f"directly or through others, for {self.task}"
            )
        held = f" {self.relation} {', '.join(self.holders)}" if self.holders else ""
        return f"{self.task} waits for {self.waits_for}{held}"


@attrs.frozen
class TaskEnd:
    """A task that finished: at which step, and how (`error` None for a return).

    `error` is the exception that left the task's coroutine (a `Cancelled` for a task
    that was cancelled), the same object a task group re-raises inside its
    `ExceptionGroup`, so a leaf of the root's error can be traced to the task that
    raised it.
    """

    step: int
    task_id: int
    task: str
    error: BaseException | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Deadlock:
    """Every blocked task of a stopped run; `cycle` is a wait-for cycle among them, if any.

    `cycle` lists the tasks in wait order: ``cycle[i]`` waits for something held by
    ``cycle[i + 1]``, and the last waits for something held by the first.
    """

    blocked: tuple[BlockedTask, ...]
    cycle: tuple[BlockedTask, ...]
    #: Tasks that could still run when the cycle closed (runnable, or asleep with a
    #: timer pending): non-empty for a *partial* deadlock (the run was stopped at the
    #: cycle, the others were not waited for).
    runnable: tuple[str, ...] = ()

    @property
    def is_partial(self) -> bool:
        return bool(self.runnable)

    def describe(self) -> str:
        """``A waits for Mutex 'm' held by B; B waits for SlotPool 'p' (0 free) held by A``."""
        shown = self.cycle or self.blocked
        text = "; ".join(b.describe() for b in shown)
        rest = [b for b in self.blocked if b not in shown]
        if rest:
            text += "; also blocked: " + "; ".join(b.describe() for b in rest)
        if self.runnable:
            text += f" (partial: {', '.join(self.runnable)} could still run)"
        return text

    def __str__(self) -> str:
        return self.describe()


class DeadlockError(OdpError, RuntimeError):
    """`SimResult.unwrap()` of a deadlocked run.  ``.deadlock`` holds the record."""

    def __init__(self, deadlock: Deadlock) -> None:
        super().__init__(f"deadlock: {deadlock.describe()}")
        self.deadlock = deadlock


class StepLimitExceeded(OdpError, RuntimeError):
    """`SimResult.unwrap()` of a run stopped by its step bound (a livelock or a long run)."""


Outcome = Literal["ok", "error", "deadlock", "step-limit"]


@attrs.frozen
class SimResult:
    """What a sim run did.  `schedule` replays it with `ReplayChooser`."""

    outcome: Outcome
    value: object
    error: BaseException | None
    deadlock: Deadlock | None
    steps: int
    schedule: tuple[int, ...]
    time: float
    trace: tuple[tuple[int, int, int, object], ...] | None = None
    #: ``(task id, name)`` of every task of the run, in spawn order.
    tasks: tuple[tuple[int, str], ...] = ()
    #: Every task that finished (returned, raised or was cancelled), in finishing order.
    ends: tuple[TaskEnd, ...] = ()
    #: With ``trace=True``: the steps at which the chooser preempted the task that ran
    #: the step before (it could have gone on, another was picked).
    preemptions: tuple[int, ...] = ()

    @property
    def is_ok(self) -> bool:
        return self.outcome == "ok"

    def unwrap(self) -> object:
        """The root's return value; or raise its error / `DeadlockError` / step limit."""
        if self.outcome == "ok":
            return self.value
        if self.error is not None:
            raise self.error
        if self.deadlock is not None:
            raise DeadlockError(self.deadlock)
        raise StepLimitExceeded(f"the run stopped after its step bound of {self.steps} steps")


class SimCancelScope:
    """A cancel scope on the sim's virtual clock.  Same attributes as anyio's.

    Invariant: entered at most once, by one task, and exited by the same task in LIFO order.
    """

    __slots__ = (
        "__weakref__",
        "_cancel_called",
        "_cancelled_caught",
        "_deadline",
        "_exited",
        "_fails",
        "_rt",
        "_shield",
        "_task",
    )

    def __init__(
        self, rt: SimRuntime, *, deadline: float = math.inf, shield: bool = False
    ) -> None:
        self._rt = rt
        self._deadline = _check_deadline(deadline)
        self._shield = shield
        self._cancel_called = False
        self._cancelled_caught = False
        self._task: SimTask | None = None
        self._exited = False
        #: A ``fail_after`` scope: its deadline makes its task raise `TimeoutError`, an
        #: error that cancels the task's group as an explicit ``raise`` would.
        self._fails = False

    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @property
    def cancelled_caught(self) -> bool:
        return self._cancelled_caught

    @property
    def deadline(self) -> float:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = _check_deadline(value)
        if self._task is not None and not self._exited and not self._cancel_called:
            self._rt._arm_deadline(self)

    @property
    def shield(self) -> bool:
        return self._shield

    @shield.setter
    def shield(self, value: bool) -> None:
        self._shield = value
        self._rt._cancel_state_changed()

    def cancel(self, reason: str | None = None) -> None:
        """Cancel every task inside this scope.  Sync, never a checkpoint, idempotent."""
        if not self._cancel_called:
            self._cancel_called = True
            self._rt._cancel_state_changed()

    def __enter__(self) -> SimCancelScope:
        task = self._rt._require_task("entering a cancel scope")
        if self._task is not None:
            raise ProtocolViolation("this cancel scope was already entered; a scope is single-use")
        self._task = task
        task.scopes.append(self)
        task.epoch_seen = -1
        self._rt._arm_deadline(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        task = self._task
        if task is None or not task.scopes or task.scopes[-1] is not self:
            raise ProtocolViolation("cancel scopes must be exited in the reverse order of entry")
        task.scopes.pop()
        task.epoch_seen = -1
        self._exited = True  # its deadline, if still armed, no longer cancels anything
        if isinstance(exc, Cancelled) and self._cancel_called and not self._outer_cancelled(task):
            self._cancelled_caught = True
            return True
        return False

    def _outer_cancelled(self, task: SimTask) -> bool:
        # The Cancelled belongs to the outermost visible cancelled scope (trio's rule).
        return not self._shield and _sees_cancel(task.scopes)


def _error_text(error: BaseException) -> str:
    # one line for a report: the first line of the message, at most 200 characters
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > 200 or len(lines) > 1:
        text = text[:200] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class SimTaskGroup:
    """A task group of the sim.  Same surface as anyio's: ``start_soon``, ``cancel_scope``."""

    __slots__ = (
        "__weakref__",
        "_child_cancelled",
        "_children",
        "_errors",
        "_parent",
        "_raised",
        "_rt",
        "_scope",
        "_stack",
        "_state",
        "_waiter",
    )

    def __init__(self, rt: SimRuntime) -> None:
        self._rt = rt
        self._scope = SimCancelScope(rt)
        self._parent: SimTask | None = None
        self._stack: tuple[SimCancelScope, ...] = ()
        self._children = 0
        self._errors: list[BaseException] = []
        # A child ended with `Cancelled` (a cancellation it did not catch).
        self._child_cancelled = False
        self._waiter: Waiter | None = None
        self._state = 0  # 0 new, 1 open, 2 closed
        # The text of the body's own error while the parent waits for the children
        # (deadlock reports); text, not the error, whose traceback would close a cycle.
        self._raised: str | None = None

    @property
    def cancel_scope(self) -> SimCancelScope:
        return self._scope

    def start_soon(
        self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: object = None
    ) -> None:
        """Spawn ``func(*args)`` as a child task.  Sync; the child runs at a later step."""
        # A spawn reads the group's state (open or exited) and counts a child up.  By the
        # parent, in the group's body: the parent is not at the join, so no child's end
        # can wake it and the count moves commute (a read).  By another task holding the
        # group: a write, ordered against the children's ends (one may wake the parent
        # at the join, then the spawn makes it park again) and against the parent's
        # exit from the join, which may come first (the spawn is refused).
        rt = self._rt
        if rt._fp is not None:  # only a footprint-tracking run records it
            rt.note(ReadOf(self) if rt._current is self._parent else self)
        if self._state != 1:
            raise ProtocolViolation(
                "start_soon() on a task group that is not open (enter it with `async with` first)"
                if self._state == 0
                else "start_soon() on a task group that has already exited"
            )
        self._rt._spawn(func, args, name, self, list(self._stack))
        self._children += 1

    async def __aenter__(self) -> SimTaskGroup:
        if self._state != 0:
            raise ProtocolViolation(
                "this task group was already entered; a task group is single-use"
            )
        task = self._rt._current
        if task is None:
            raise ProtocolViolation("entering a task group outside any task of the sim runtime")
        self._parent = task
        scope = self._scope
        if scope._task is not None or scope._deadline != _INF:
            scope.__enter__()  # entered already (raises), or a deadline to arm
        else:  # ``scope.__enter__()`` inlined for the common case: nothing to arm
            scope._task = task
            task.scopes.append(scope)
            task.epoch_seen = -1
        scopes = task.scopes
        self._stack = tuple(scopes)
        self._state = 1
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        rt = self._rt
        if exc is not None and not isinstance(exc, Cancelled):
            self._raised = _error_text(exc)
            self._scope.cancel()
        while self._children:
            # Not cancellable (trio's nursery: the parent waits for its children whatever
            # happens).  A cancellation of a scope around the group reaches the children,
            # which sit inside it; the `Cancelled` they end with leaves this exit below.
            w = new_waiter(rt, self._parent, self, 0)
            w.cancellable = False
            self._waiter = w
            await trap(PARK, w)
        if rt._fp is not None:  # the exit (closed to spawns): a write of the group
            rt.note(self)
        self._waiter = None
        self._state = 2
        scope = self._scope
        task = scope._task
        own = exc is not None and not isinstance(exc, Cancelled)
        # Without errors, a cancellation leaves the group's exit when the body raised one,
        # or when a child ended with one (trio's nursery), for the cancelled scope it
        # belongs to to catch: the group's own, or one around the group (`move_on_after`,
        # `fail_after`).  With errors, the group raises them alone, as anyio does.
        cancelled: BaseException | None = None
        if not (own or self._errors):
            if exc is not None:
                cancelled = exc
            elif self._child_cancelled:
                cancelled = Cancelled()
        if cancelled is not None:
            swallowed = scope.__exit__(Cancelled, cancelled, None)
        elif exc is None and task is not None and task.scopes and task.scopes[-1] is scope:
            # ``scope.__exit__(None, None, None)`` inlined: the body ended normally
            task.scopes.pop()
            task.epoch_seen = -1
            scope._exited = True
            swallowed = False
        else:
            swallowed = scope.__exit__(exc_type, exc, tb)
        if self._errors or own:
            errors = list(self._errors)
            if own:
                errors.insert(0, exc)  # the body's own error is grouped too, as anyio does
            raise BaseExceptionGroup("unhandled errors in a task group", errors)
        if cancelled is None or swallowed:
            return swallowed
        if cancelled is exc:
            return False  # the body's own cancellation goes on
        raise cancelled

    def _child_done(self, exc: BaseException | None) -> None:
        if exc is not None:
            if isinstance(exc, Cancelled):
                self._child_cancelled = True
            else:
                self._errors.append(exc)
                self._scope.cancel()
        self._children -= 1
        # The join: the parent's step after its park writes the group; children's ends
        # only read it (a count down commutes), so they stay independent of each other.
        if self._rt._fp is not None:  # only a footprint-tracking run records it
            self._rt.note(ReadOf(self))
        if self._children == 0 and self._waiter is not None and not self._waiter.woken:
            w = self._waiter
            w.woken = True
            parent = w.handle
            if type(parent) is SimTask and parent.state == _BLOCKED and parent.waiter is w:
                # ``self._rt.wake(w, None)`` inlined: the parked parent resumes
                rt = self._rt
                parent.state = _RUNNABLE
                parent.waiter = None
                parent.send_value = None
                del rt._blocked[parent]
                rt._runnable.append(parent)
                rt._woken(parent)
            else:
                self._rt.wake(w, None)

    # WaitTarget, for deadlock reports of a parent waiting on its children.
    def _discard(self, waiter: Waiter) -> None:
        pass

    def describe_wait(self) -> tuple[str, tuple[object, ...]]:
        rt = self._rt
        kids = tuple(t for t in rt._tasks if t.group is self and t.state != _DONE)
        for kid in kids:
            rt.reveal(kid)
        # An error waiting to leave the group: a deadlock report must not lose it.
        raised = [f"its body raised {self._raised}"] if self._raised is not None else []
        raised += [f"a child raised {_error_text(e)}" for e in self._errors]
        if raised:
            said = "; ".join(raised)
            return f"its task group's children ({said})", kids
        return "its task group's children", kids


class SimRuntime(Runtime):
    """The driver.  Build it through `run`; one instance runs one execution."""

    __slots__ = (
        "__weakref__",
        "_blocked",
        "_brief",
        "_chooser",
        "_chooser_error",
        "_current",
        "_ends",
        "_epoch",
        "_fp",
        "_fp_unknown",
        "_handed",
        "_keyed",
        "_main_call",
        "_max_steps",
        "_next_id",
        "_noted_only",
        "_now",
        "_on_stop",
        "_preemptions",
        "_rescuers",
        "_reveals",
        "_root",
        "_runnable",
        "_schedule",
        "_seq",
        "_steps",
        "_tasks",
        "_timers",
        "_trace",
        "_trust_primitives",
        "keeps_notes",
    )

    is_sim = True

    def __init__(
        self,
        chooser: Chooser,
        *,
        max_steps: int,
        trace: bool,
        on_stop: Callable[[], None] | None = None,
        noted_only: bool = False,
    ) -> None:
        # The program vouches that it reaches shared state only through noted objects.
        self._noted_only = noted_only
        self._main_call: tuple[object, Sequence[Any]] = (None, ())
        self._on_stop = on_stop
        self._max_steps = max_steps
        self._brief = False
        # The run's tasks and queues: empty here, and emptied again by `_release` at the
        # end of every run (so `_begin` need not).
        self._runnable: list[SimTask] = []
        # Blocked or sleeping tasks, in the order they blocked (deterministic).
        self._blocked: dict[SimTask, None] = {}
        self._tasks: list[SimTask] = []
        self._timers: list[tuple[float, int, object, int]] = []
        # (step, task, error) of every task that finished; `TaskEnd` records are built
        # only with the result (an "ok" run of `run_brief` builds none).
        self._ends: list[tuple[int, SimTask, BaseException | None]] = []
        self._begin(chooser, trace)

    def _begin(self, chooser: Chooser, trace: bool) -> None:
        """Set every other per-run field to its start: with the containers `_release`
        empties, a fresh runtime's state, for `chooser` (`BriefRuns` resets one runtime
        this way before each of its runs)."""
        self._chooser = chooser
        self._schedule: list[int] = []
        self._trace: list[tuple[int, int, int, object]] | None = [] if trace else None
        self._seq = 0
        self._now = 0.0
        self._epoch = 0
        self._steps = 0
        self._next_id = 0
        self._current: SimTask | None = None
        self._root: SimTask | None = None
        # Footprint of the running step, when the chooser wants footprints (else None).
        self._fp: set[object] | None = None
        self._fp_unknown = False
        # Plain containers handed to the run's tasks, under the noted-only promise
        # (`odp_async._runtime.handed`); None when the run does not watch them.
        self._handed: HandedState | None = None
        #: Whether this run records what `note` is given (a footprint per step, or a
        #: trace): when False, `note` is a no-op for the whole run, so a caller may skip
        #: building what it would note (`odp_async.sync`'s read holds).  Set as the run
        #: starts (`_drive_root`, `_drive`).
        self.keeps_notes = True
        self._chooser_error: BaseException | None = None
        self._preemptions: list[int] = []
        # Stuck sets found rescuable this run (`_rescuable`).
        self._rescuers: set[frozenset[int]] = set()
        # The chooser's ``note_identity``, told of every task whose identity the program
        # learns (`reveal`), or None: only a chooser that merges identical tasks asks.
        self._reveals: Callable[[SimTask], None] | None = None
        if type(chooser) in _PLAIN_CHOOSERS:  # neither attribute: the explorer's case
            self._trust_primitives, self._keyed = True, False
            return
        self._reveals = getattr(chooser, "note_identity", None)
        self._trust_primitives = bool(getattr(chooser, "trust_primitives", True))
        # Spawn keys (what a task was spawned as) are kept for choosers that want
        # footprints, the only ones that read them (symmetry reduction).
        self._keyed = bool(getattr(chooser, "wants_footprints", False))

    # --- the Runtime interface -------------------------------------------------------

    def current_task(self) -> SimTask:
        return self._require_task("current_task()")

    def task_name(self, task: object) -> str:
        return task.name if isinstance(task, SimTask) else repr(task)

    def reveal(self, task: object) -> None:
        # Only a program's step tells (the driver's deadlock analysis and the labels of
        # steps read holders too, with no task current): see `Runtime.reveal`.
        reveals = self._reveals
        if reveals is not None and self._current is not None and type(task) is SimTask:
            reveals(task)

    def checkpoint(self, label: object = None) -> Awaitable[None]:
        return trap(CHECKPOINT, label)

    def park(self, waiter: Waiter) -> Awaitable[object]:
        return trap(PARK, waiter)

    def wake(self, waiter: Waiter, value: object) -> None:
        task = waiter.handle
        if not isinstance(task, SimTask):
            raise InternalError(f"wake() of a waiter that was never parked: {waiter!r}")
        if task.state == _BLOCKED and task.waiter is waiter:
            task.state = _RUNNABLE
            task.waiter = None
            task.send_value = value
            # Woken with a value: the park returns it even if a scope around the task is
            # cancelled before it runs again, and the cancellation is raised at its next
            # checkpoint (trio's ``reschedule`` before the abort; anyio on asyncio, whose
            # future is then done).  The hand-off is the task's from here on.
            task.resume_cancellable = False
            del self._blocked[task]
            self._runnable.append(task)
            self._woken(task)
        # Otherwise the task is already runnable because a cancellation reached it; it
        # will see `waiter.woken` in its handler and pass the wake on.

    def sleep(self, seconds: float) -> Awaitable[None]:
        check_sleep(seconds)
        if seconds == 0:
            return trap(CHECKPOINT, "sleep(0)")
        # Infinite for ``sleep(math.inf)`` and for a sum past the largest float: a timer
        # that never fires (`_advance_clock`), as on trio and asyncio.
        return trap(SLEEP, deadline_after(self._now, seconds))

    def now(self) -> float:
        return self._now

    def task_group(self) -> SimTaskGroup:
        # ``SimTaskGroup(self)`` without the type calls (a group per run is common):
        # every slot of the group and of its scope set as their ``__init__`` do (a test
        # checks it).
        scope: SimCancelScope = _new_object(SimCancelScope)
        scope._rt = self
        scope._deadline = _INF
        scope._shield = False
        scope._cancel_called = False
        scope._cancelled_caught = False
        scope._task = None
        scope._exited = False
        scope._fails = False
        group: SimTaskGroup = _new_object(SimTaskGroup)
        group._rt = self
        group._scope = scope
        group._parent = None
        group._stack = ()
        group._children = 0
        group._errors = []
        group._child_cancelled = False
        group._waiter = None
        group._raised = None
        group._state = 0
        return group

    def cancel_scope(self, *, deadline: float = math.inf, shield: bool = False) -> SimCancelScope:
        return SimCancelScope(self, deadline=deadline, shield=shield)

    def fail_after_scope(self, seconds: float) -> AbstractContextManager[CancelScopeLike]:
        scope = SimCancelScope(self, deadline=deadline_after(self._now, seconds))
        scope._fails = True
        return _FailAfter(self, scope)

    def cancelled_exc_class(self) -> type[BaseException]:
        return Cancelled

    def note(self, resource: object, event: str | None = None) -> None:
        fp = self._fp
        if fp is not None:
            fp.add(resource)
        trace = self._trace
        current = self._current
        if trace is not None and event is not None and current is not None:
            if type(resource) is ReadOf:  # a noted read: the event is about what it reads
                resource = resource.read_of
            # The label names holders (`describe_wait`): the driver's reading, not the
            # program's (`reveal` ignores it with no task current).
            self._current = None
            try:
                label = _stable_label(resource)
            finally:
                self._current = current
            trace.append((self._steps, current.id, NOTE, (event, label)))

    def task_blocked(self, task: object) -> bool:
        """`task` is blocked on a primitive or asleep; the asking step's footprint is
        unknown (see `Runtime.task_blocked`).  A task parked at a closed gate
        (``Completion(gate=True)``) is answered False, as one that has not reached it:
        DPOR takes the two for one trace (nothing reads who waits on a gate).  Sync."""
        if not isinstance(task, SimTask):
            raise InvalidArgument(f"task_blocked() needs a task of this run, got {task!r}")
        if self._fp is not None:
            self._fp_unknown = True
        if task.state == _SLEEPING:
            return True
        if task.state != _BLOCKED or task.waiter is None:
            return False
        owner = getattr(task.waiter.queue, "_owner", None)
        return not (hasattr(type(owner), "_gate_closed") and getattr(owner, "gate", False))

    def watch_progress(self, on: bool) -> None:
        task = self._current
        if on:
            task = self._require_task("watch_progress()")
            task.watched += 1
            if self._fp is not None:  # this step too
                self._fp.add(progress_of(task))
        elif task is not None and task.watched:  # (none current: a coroutine closed at teardown)
            task.watched -= 1

    def task_progress(self, task: object) -> int:
        if not isinstance(task, SimTask):
            raise InvalidArgument(f"task_progress() needs a task of this run, got {task!r}")
        if self._fp is not None:
            self._fp.add(ReadOf(progress_of(task)))
        return task.ran

    def task_passed_over(self, task: object, since: int) -> bool:
        """`task` ran no step since `since` and is runnable, not made so by the running
        step; a noted read of `progress_of` it (see `Runtime.task_passed_over`).  Sync."""
        if not isinstance(task, SimTask):
            raise InvalidArgument(f"task_passed_over() needs a task of this run, got {task!r}")
        if self._fp is not None:
            self._fp.add(ReadOf(progress_of(task)))
        return (
            task.ran == since
            and task.state == _RUNNABLE
            and task is not self._current
            and task.woken_at != self._steps
        )

    def draw(self, n: int, label: object = None) -> int:
        if type(n) is not int or not 1 <= n <= MAX_DRAW:
            try:
                check_draw(n)
            except InvalidArgument as e:
                if isinstance(n, int) and n > MAX_DRAW:
                    # The explorer's limit, not the program's bug (it would run live were
                    # the limit not there): a usage error that leaves the run from the
                    # driver, whatever the program catches, as a chooser's error does.
                    self._chooser_error = e
                raise
        if n == 1:
            return 0
        try:
            c = self._chooser.draw(n, label)
        except BaseException as e:
            # The chooser's failure (a replay mismatch, a pruned search) is not the
            # program's: it leaves the run from the driver, whatever the program catches.
            self._chooser_error = e
            raise
        if not 0 <= c < n:
            raise InternalError(f"chooser {self._chooser!r} drew {c!r} for {n} options")
        self._schedule.append(c)
        return c

    # --- the driver ------------------------------------------------------------------

    @property
    def steps(self) -> int:
        return self._steps

    def _require_task(self, what: str) -> SimTask:
        task = self._current
        if task is None:
            raise ProtocolViolation(f"{what} outside any task of the sim runtime")
        return task

    def _spawn(
        self,
        func: Callable[..., Awaitable[Any]],
        args: Sequence[Any],
        name: object,
        group: SimTaskGroup | None,
        scopes: list[SimCancelScope],
    ) -> SimTask:
        # Read before the call: what an ``async def`` function binds (`_spawned_as`).
        code = _async_code(func) if self._keyed else None
        coro: Any = func(*args)
        try:
            if type(coro) is not _COROUTINE:
                if not inspect.isawaitable(coro):
                    if group is None:  # the run's main function
                        called = getattr(func, "__qualname__", None) or _short_repr(func)
                        raise BodyNotAwaitable(f"the run's main function {called}", coro)
                    raise InvalidArgument(
                        f"start_soon() needs an async function, got {func!r} which returned "
                        f"{type(coro).__name__}"
                    )
                coro = _await(coro)
            if name is None:
                name = getattr(func, "__qualname__", None) or repr(func)
            if type(name) is not str:
                name = str(name)
            # ``SimTask(self._next_id, name, coro, copy_context(), group, scopes)`` without the
            # type call (a spawn's hot path): every slot set as ``__init__`` does (a test
            # checks it).
            task: SimTask = _new_object(SimTask)
            task.id = self._next_id
            task.name = name
            task.coro = coro
            task.send = coro.send
            task.context = _copy_context()
            task.group = group
            task.scopes = scopes
            task.state = _RUNNABLE
            task.send_value = None
            task.throw_exc = None
            task.resume_cancellable = False
            task.epoch_seen = -1
            task.cancel_cached = False
            task.waiter = None
            task.sleep_token = 0
            task.pending = None
            task.footprint = None
            task.history = 0
            task.spawn_key = None
            task.ran = 0
            task.woken_at = -1
            task.watched = 0
            if code is not None:  # only symmetry reduction reads it (by identity)
                task.spawn_key = _spawned_as(func, args, code, coro)
            if self._handed is not None and group is not None:
                self._handed.add(func, args)
            self._next_id += 1
            self._tasks.append(task)
            self._runnable.append(task)
            return task
        except BaseException:
            # Not yet a task, so `_close_all` would never close it: a Ctrl-C landing here
            # (at any call above) must not leave it to warn "never awaited" when collected.
            close = getattr(coro, "close", None)
            if close is not None:
                close()
            raise

    def _cancel_state_changed(self) -> None:
        self._epoch += 1
        if self._fp is not None:
            self._fp_unknown = True  # a cancellation changes what other tasks do next
        for task in list(self._blocked):
            resumable = task.state == _SLEEPING or (
                task.waiter is not None and task.waiter.cancellable
            )
            if resumable and self._is_cancelled(task):
                self._unblock_for_cancel(task)

    def _is_cancelled(self, task: SimTask) -> bool:
        if task.epoch_seen != self._epoch:
            task.cancel_cached = _sees_cancel(task.scopes)
            task.epoch_seen = self._epoch
        return task.cancel_cached

    def _unblock_for_cancel(self, task: SimTask) -> None:
        # The cancellation is committed now, as trio delivers it at cancel time: a shield
        # raised before the task runs again must not turn it into a spurious wake.
        del self._blocked[task]
        task.state = _RUNNABLE
        waiter = task.waiter
        task.waiter = None
        task.sleep_token += 1
        task.resume_cancellable = True
        task.throw_exc = Cancelled()
        self._runnable.append(task)
        self._woken(task)
        if waiter is not None:
            # Out of its queue at once, as trio's abort takes it out: a wake after the
            # cancellation goes to the next waiter (a ``wake_all`` no longer counts it),
            # never to this task for it to give back when it runs.
            waiter.queue._discard(waiter)

    def _woken(self, task: SimTask) -> None:
        """`task` was made runnable after a park, by this step (a wake, a join's end, a
        cancellation): `task_passed_over` does not count this step against it, and a
        watched task's progress is written (DPOR orders it against the reads)."""
        task.woken_at = self._steps
        if task.watched and self._fp is not None:
            self._fp.add(progress_of(task))

    def _arm_deadline(self, scope: SimCancelScope) -> None:
        if scope._deadline <= self._now:
            scope.cancel()
        elif scope._deadline != math.inf:
            self._seq += 1
            heapq.heappush(self._timers, (scope._deadline, self._seq, scope, 0))

    def _advance_clock(self) -> bool:
        """Jump to the next timer and fire everything due.  False if nothing can fire.

        An infinite deadline never fires (``sleep(math.inf)``, a finite time plus a
        delay that overflows to infinity, as on trio and asyncio): a task sleeping until
        then is blocked for good unless cancelled, and the clock never becomes infinite.
        """
        timers = self._timers
        fired = False
        while timers and not fired:
            deadline = timers[0][0]
            if deadline == _INF:  # the heap's least: every timer left is infinite
                return False
            while timers and timers[0][0] <= deadline:
                _, _, obj, token = heapq.heappop(timers)
                if isinstance(obj, SimTask):
                    if obj.state == _SLEEPING and obj.sleep_token == token:
                        self._now = max(self._now, deadline)
                        del self._blocked[obj]
                        obj.state = _RUNNABLE
                        obj.resume_cancellable = True
                        self._runnable.append(obj)
                        fired = True
                elif (
                    isinstance(obj, SimCancelScope)
                    and obj._task is not None
                    and not obj._exited
                    and not obj._cancel_called
                    and obj._deadline <= deadline
                ):
                    self._now = max(self._now, deadline)
                    obj.cancel()
                    fired = True
        return fired

    def _finish(self, task: SimTask, exc: BaseException | None) -> None:
        task.state = _DONE
        task.coro = task.send = None  # type: ignore[assignment]
        if task.group is not None:
            task.group._child_done(exc)

    def _foreign_await(self, task: SimTask, trap_value: object) -> ForeignAwait:
        if trap_value is None:
            what = "a bare yield (None) - e.g. asyncio.sleep(0)"
        elif hasattr(type(trap_value), "_asyncio_future_blocking"):
            # an asyncio future (run_in_executor, create_future) or one of its look-alikes
            what = f"an asyncio future {_short_repr(trap_value)}"
        else:
            what = _short_repr(trap_value)
        return ForeignAwait(
            f"task {task.name!r} awaited {what}, which is not an odp_async runtime call; "
            f"{_INSTEAD}"
        )

    def drive(self, main: Callable[..., Awaitable[Any]], args: Sequence[Any]) -> SimResult:
        """Run ``main(*args)`` to its end, a deadlock or the step bound.

        A chooser's exception (e.g. `ReplayMismatch`) propagates, after every task has
        been unwound.
        """
        result = self._drive_root(main, args, False)
        assert isinstance(result, SimResult)
        return result

    def drive_brief(
        self, main: Callable[..., Awaitable[Any]], args: Sequence[Any]
    ) -> SimResult | int:
        """`drive`, except that a run ending ``"ok"`` returns its step count: no result
        record is built for it (the explorer's common case; see `run_brief`)."""
        return self._drive_root(main, args, True)

    def _drive_root(
        self, main: Callable[..., Awaitable[Any]], args: Sequence[Any], brief: bool
    ) -> SimResult | int:
        self._brief = brief
        self._main_call = (main, args)
        watched = drive_begins(self)  # the stall watchdog's view (`.stall`)
        try:
            root = self._spawn(main, args, "main", None, [])
            if self._trace is None and type(self._chooser) in _PLAIN_CHOOSERS:
                # no footprints, asked only among several; their new_execution() does nothing
                self._root = root
                self.keeps_notes = False  # no footprint, no trace
                return self._drive_plain(root)
            if getattr(self._chooser, "wants_footprints", False):
                return self._drive_tracking(root)
            return self._drive(root)
        except _CycleClosed:  # a deadlock certain before the run's end: stop at it
            self._current = None
            return self._result(root, None, None, closed=True)
        except BaseException:
            self._close_all()
            raise
        finally:
            drive_ends(watched)
            self._release()

    def _drive_tracking(self, root: SimTask) -> SimResult | int:
        """`_drive` for a run that keeps footprints, between `tracking_run_starts` and
        `tracking_run_ends` (tracked classes note their fields only in between)."""
        try:
            tracking_run_starts()
            return self._drive(root)
        finally:
            tracking_run_ends()

    def _release(self) -> None:
        """Break the run's reference cycles, so its objects are freed on return.

        A task's context holds the runtime, which holds the task; a task and its cancel
        scopes, groups and waiters point at each other.  None of it is read once the
        result is built, so the links are cut here and reference counting frees the run
        without waiting for the garbage collector.  Task names, ids and states stay (a
        primitive the caller keeps may still name its holder).
        """
        # Every task finished by its own step (nothing left runnable or blocked) and no
        # footprints kept: `_finish` cut coro and send, and the step that ended each task
        # used up its waiter, send value and pending exception; only the links below
        # remain to cut.
        lean = not (self._runnable or self._blocked or self._keyed)
        for task in self._tasks:
            task.context = None  # type: ignore[assignment]
            task.pending = None
            group = task.group
            if group is not None:
                task.group = None
                if group._parent is not None:  # once per group (a group never entered
                    group._parent = None  # has none of these links)
                    group._waiter = None
                    group._stack = ()
                    group._scope._task = None
            scopes = task.scopes
            if scopes:
                for scope in scopes:
                    scope._task = None
                task.scopes = []
            if lean:
                continue
            task.coro = task.send = None  # type: ignore[assignment]
            task.waiter = None
            task.footprint = None
            task.spawn_key = None
            task.throw_exc = None
            task.send_value = None
        self._tasks = []
        self._runnable = []
        self._blocked = {}
        self._timers = []
        self._handed = None
        self._ends = []
        self._root = None
        self._current = None
        self._chooser_error = None

    def _drive(self, root: SimTask) -> SimResult | int:
        self._root = root
        root_value: object = None
        root_error: BaseException | None = None
        runnable = self._runnable
        chooser = self._chooser
        schedule = self._schedule
        trace = self._trace
        max_steps = self._max_steps
        steps = 0
        out_of_time = time_check()
        last: SimTask | None = None
        declared: Footprint | None = None
        ask_always = getattr(chooser, "ask_always", False)
        track = bool(getattr(chooser, "wants_footprints", False))
        trust = self._trust_primitives
        # The chooser vouches that every shared access is noted (SharedCell, primitives).
        noted_only = self._noted_only or bool(getattr(chooser, "footprints_noted_only", False))
        chooser.new_execution()
        # False: no footprint (`_fp` stays None) and no trace for the whole run.
        self.keeps_notes = track or trace is not None
        if not track and trace is None and not ask_always:
            return self._drive_plain(root)
        if track and noted_only:  # objects the notes would miss: adopted, or no promise
            noted_only = noted_run_starts(*self._main_call)
            if noted_only:
                self._handed = HandedState()
        while True:
            if self._chooser_error is not None:
                raise self._chooser_error
            n = len(runnable)
            if n == 0:
                if root.state == _DONE or not self._advance_clock():
                    break
                continue
            if steps >= max_steps:
                break
            if n == 1 and not ask_always:
                i = 0
            elif n == 1:
                chooser.choose(runnable, last)  # a script follows every step; one option
                i = 0
            else:
                i = chooser.choose(runnable, last)
                if not 0 <= i < n:
                    raise InternalError(f"chooser {chooser!r} chose {i!r} among {n} tasks")
                schedule.append(i)
                if trace is not None and last is not None and runnable[i] is not last:
                    self._preemptions.append(steps + 1)
            steps += 1
            self._steps = steps
            if not steps & _CHECK_MASK_NOTING and out_of_time is not None and out_of_time():
                self._current = None
                raise RunOutOfTime(f"abandoned after {steps} steps: out of time")
            task = runnable[i]
            task.ran = steps
            if track:
                declared = declared_footprint(
                    task.pending, trust_primitives=trust, noted_only=noted_only
                )
                self._fp = {progress_of(task)} if task.watched else set()
                self._fp_unknown = declared is None and not noted_only
                # (before the task is current: the label's holders are not the program's
                # reading, `reveal`)
                task.history = hash((task.history, _stable_label(task.pending)))
            self._current = task
            exc = task.throw_exc
            if exc is not None:
                task.throw_exc = None
            elif task.resume_cancellable and (
                task.cancel_cached if task.epoch_seen == self._epoch else self._is_cancelled(task)
            ):
                exc = Cancelled()
            try:
                if exc is None:
                    value = task.send_value
                    task.send_value = None
                    trapped = task.context.run(task.coro.send, value)
                else:
                    trapped = task.context.run(task.coro.throw, exc)
            except StopIteration as stop:
                runnable.pop(i)
                last = None
                if task is root:
                    root_value = stop.value
                self._ends.append((steps, task, None))
                self._finish(task, None)
                if track:  # after _finish: what it wakes or cancels is part of the step
                    self._end_footprint(task, declared)
                continue
            except BaseException as err:  # the task's own error: an outcome, not ours
                if isinstance(err, StepInterrupt) or (
                    isinstance(err, KeyboardInterrupt) and is_ctrl_c(err)
                ):
                    raise  # the user's Ctrl-C or the stall watchdog: never the program's
                if _drive_frame_first(err):
                    # Drop the driver's own frame: it would tie the error to this frame's
                    # locals (a cycle), and it is not the program's.
                    err.__traceback__ = err.__traceback__.tb_next  # type: ignore[union-attr]
                self._raised(task, err)  # ForeignAwait: not the program's outcome
                runnable.pop(i)
                last = None
                if task is root:
                    root_error = err
                self._ends.append((steps, task, err))
                self._finish(task, err)
                if track:  # after _finish: a failing task cancels its group's tasks
                    self._end_footprint(task, declared)
                continue
            finally:
                self._current = None
            if track:
                self._end_footprint(task, declared)
            if trapped is CHECKPOINT_TRAP:
                op, arg = CHECKPOINT, task.pending  # the label, stored by the checkpoint
            else:
                # The trap rule of `trap`, inline (a call per step costs): never iterates
                # `trapped` (an asyncio future is iterable, and iterating it raises).  Not
                # one of ours: a `ForeignAwait`, before the trace sees it.
                if type(trapped) is not tuple or len(trapped) != 2:
                    raise self._foreign_await(task, trapped)
                op, arg = trapped
                if type(op) is not int or not (
                    op == CHECKPOINT
                    or (op == PARK and isinstance(arg, Waiter))
                    or (op == SLEEP and isinstance(arg, float))
                ):
                    raise self._foreign_await(task, trapped)
                task.pending = arg
            if trace is not None:
                trace.append((steps, task.id, op, _stable_label(arg)))
            if op == CHECKPOINT:
                task.resume_cancellable = True
                last = task
            elif op == PARK:
                assert isinstance(arg, Waiter)
                arg.handle = task
                task.resume_cancellable = arg.cancellable
                if arg.woken:
                    task.send_value = arg.value  # woken within its own step
                    last = task
                elif arg.cancellable and self._is_cancelled(task):
                    task.throw_exc = Cancelled()  # a park is a checkpoint
                    last = task
                else:
                    task.waiter = arg
                    task.state = _BLOCKED
                    self._blocked[task] = None
                    runnable.pop(i)
                    last = None
                    if self._closes_cycle(task, arg):
                        raise _CycleClosed
            elif op == SLEEP:
                assert isinstance(arg, float)
                task.resume_cancellable = True
                if self._is_cancelled(task):
                    task.throw_exc = Cancelled()
                    last = task
                else:
                    task.sleep_token += 1
                    task.state = _SLEEPING
                    self._blocked[task] = None
                    self._seq += 1
                    heapq.heappush(self._timers, (arg, self._seq, task, task.sleep_token))
                    runnable.pop(i)
                    last = None
            else:
                raise self._foreign_await(task, trapped)
        return self._result(root, root_value, root_error)

    def _drive_plain(self, root: SimTask) -> SimResult | int:
        """`_drive` for the common case: no footprints, no trace, a chooser asked only
        among several tasks.  The same steps, the same answers asked in the same order;
        only the bookkeeping those features need is left out (`RandomChooser`'s draw is
        inlined: the same call of its generator, as is `StreamChooser`'s)."""
        root_value: object = None
        root_error: BaseException | None = None
        runnable = self._runnable
        chooser = self._chooser
        schedule = self._schedule  # (``schedule.append(i)``: the interpreter's fast path)
        max_steps = self._max_steps
        rnd = chooser._random if type(chooser) is RandomChooser else None
        words = chooser._words if type(chooser) is StreamChooser else None
        # (no bound method made for the two choosers inlined above)
        choose = chooser.choose if rnd is None and words is None else None
        checkpoint_trap = CHECKPOINT_TRAP  # a local: read at every step
        ends = self._ends
        steps = 0
        last: SimTask | None = None
        out_of_time = time_check()
        while True:
            if self._chooser_error is not None:
                self._current = None
                raise self._chooser_error
            n = len(runnable)
            if n > 1:  # the common case first
                if steps >= max_steps:
                    break
                if rnd is not None:
                    i = int(rnd() * n)
                elif words is not None:
                    i = next(words) % n
                else:
                    self._current = None  # the chooser runs between steps
                    assert choose is not None
                    i = choose(runnable, last)
                    if not 0 <= i < n:
                        raise InternalError(f"chooser {chooser!r} chose {i!r} among {n} tasks")
                schedule.append(i)
            elif n == 1:
                if steps >= max_steps:
                    break
                i = 0
            else:
                self._current = None
                if root.state == _DONE or not self._advance_clock():
                    break
                continue
            steps += 1
            self._steps = steps
            if not steps & _CHECK_MASK and out_of_time is not None and out_of_time():
                self._current = None
                raise RunOutOfTime(f"abandoned after {steps} steps: out of time")
            task = runnable[i]
            task.ran = steps
            self._current = task
            exc = task.throw_exc
            if exc is not None:
                task.throw_exc = None
            elif (
                self._epoch  # 0: no scope was ever cancelled in this run
                and task.resume_cancellable
                and (
                    task.cancel_cached
                    if task.epoch_seen == self._epoch
                    else self._is_cancelled(task)
                )
            ):
                exc = Cancelled()
            try:
                if exc is None:
                    value = task.send_value
                    if value is not None:
                        task.send_value = None
                    trapped = task.context.run(task.send, value)
                else:
                    trapped = task.context.run(task.coro.throw, exc)
            except StopIteration as stop:
                self._current = None
                runnable.pop(i)
                last = None
                if task is root:
                    root_value = stop.value
                ends.append((steps, task, None))
                # ``self._finish(task, None)``, inlined
                task.state = _DONE
                task.coro = task.send = None  # type: ignore[assignment]
                group = task.group
                if group is not None:
                    if group._children > 1:  # ``_child_done(None)`` of a child but the last:
                        group._children -= 1  # no wake due, and this loop keeps no footprint
                    else:
                        group._child_done(None)
                continue
            except BaseException as err:  # the task's own error: an outcome, not ours
                if isinstance(err, StepInterrupt) or (
                    isinstance(err, KeyboardInterrupt) and is_ctrl_c(err)
                ):
                    raise  # the user's Ctrl-C or the stall watchdog: never the program's
                self._current = None
                if _drive_frame_first(err):
                    err.__traceback__ = err.__traceback__.tb_next  # type: ignore[union-attr]
                self._raised(task, err)
                runnable.pop(i)
                last = None
                if task is root:
                    root_error = err
                self._ends.append((steps, task, err))
                self._finish(task, err)
                continue
            # `_current` is left set after a checkpoint: only the chooser (above) and what
            # follows the loop run between steps, and both clear it first.
            if trapped is checkpoint_trap:  # its label is in `task.pending` already
                task.resume_cancellable = True
                last = task
            else:
                self._current = None
                last = task if self._trapped(task, i, trapped) else None
        self._current = None
        return self._result(root, root_value, root_error)

    def _raised(self, task: SimTask, err: BaseException) -> None:
        """`task` raised `err`: `ForeignAwait` if it came from another library's await
        (a usage error, never the program's outcome); else nothing."""
        found = _foreign_library_call(err)
        if found is not None:
            foreign, leaf = found
            raise ForeignAwait(
                f"task {task.name!r} called {foreign}, which needs its own event "
                f"loop ({type(leaf).__name__}: {leaf}); {_INSTEAD}"
            ) from err

    def _trapped(self, task: SimTask, i: int, trapped: object) -> bool:
        """A trap other than a checkpoint, for `_drive_plain`: True if `task` stays
        runnable (at index `i`), False if it left `_runnable`.  Anything but a trap of
        `trap` is a `ForeignAwait` (the trap rule of `trap`, inline: the type and length
        checked first, never iterating `trapped`; each op's argument in its branch)."""
        if type(trapped) is not tuple or len(trapped) != 2:
            raise self._foreign_await(task, trapped)
        op, arg = trapped
        if type(op) is not int:
            raise self._foreign_await(task, trapped)
        if op == PARK and isinstance(arg, Waiter):
            task.pending = arg
            arg.handle = task
            task.resume_cancellable = arg.cancellable
            if arg.woken:
                task.send_value = arg.value  # woken within its own step
                return True
            if arg.cancellable and self._is_cancelled(task):
                task.throw_exc = Cancelled()  # a park is a checkpoint
                return True
            task.waiter = arg
            task.state = _BLOCKED
            self._blocked[task] = None
            self._runnable.pop(i)
            if self._closes_cycle(task, arg):
                raise _CycleClosed
            return False
        if op == SLEEP and isinstance(arg, float):
            task.pending = arg
            task.resume_cancellable = True
            if self._is_cancelled(task):
                task.throw_exc = Cancelled()
                return True
            task.sleep_token += 1
            task.state = _SLEEPING
            self._blocked[task] = None
            self._seq += 1
            heapq.heappush(self._timers, (arg, self._seq, task, task.sleep_token))
            self._runnable.pop(i)
            return False
        if op == CHECKPOINT:
            task.pending = arg
            task.resume_cancellable = True
            return True
        raise self._foreign_await(task, trapped)

    def _end_footprint(self, task: SimTask, declared: Footprint | None) -> None:
        fp = self._fp
        self._fp = None
        handed = self._handed
        if handed is not None and handed.changed():
            self._fp_unknown = True  # a handed plain container written: no note saw it
        if self._fp_unknown or fp is None:
            task.footprint = None
            return
        noted = Footprint(writes=frozenset(fp))
        task.footprint = noted if declared is None else declared | noted

    def _result(
        self, root: SimTask, value: object, error: BaseException | None, closed: bool = False
    ) -> SimResult | int:
        if self._brief and error is None and root.state == _DONE:
            return self._steps  # `drive_brief`: an "ok" run builds no record
        trace = tuple(self._trace) if self._trace is not None else None
        schedule = tuple(self._schedule)
        tasks = tuple((t.id, t.name) for t in self._tasks)
        steps, now = self._steps, self._now
        ends = tuple(TaskEnd(step, t.id, t.name, err) for step, t, err in self._ends)
        pre = tuple(self._preemptions)
        if root.state == _DONE:
            outcome: Outcome = "ok" if error is None else "error"
            return SimResult(
                outcome, value, error, None, steps, schedule, now, trace, tasks, ends, pre
            )
        if self._runnable and not closed:
            # at the step bound: a deadlock only if the stuck tasks are blocked for good (a
            # task that could still run and free them makes it a bound, as a livelock is)
            # (asked afresh: a rescuer seen earlier in the run may have finished since)
            stuck = self._stuck()
            bound = not stuck or self._reaches_out(stuck)
        else:
            bound = False
        if bound:
            self._close_all()
            return SimResult(
                "step-limit", None, None, None, steps, schedule, now, trace, tasks, ends, pre
            )
        deadlock = self._deadlock()
        self._close_all()
        return SimResult(
            "deadlock", None, None, deadlock, steps, schedule, now, trace, tasks, ends, pre
        )

    def _stuck(self) -> frozenset[int]:
        """The blocked tasks that can never be woken by what they wait on.

        The greatest set D of blocked tasks such that each waits for something none of
        whose way out lies outside D: a lock held by a task of D (a writer waits for
        every holder, so one stuck holder is enough), or a pool every holder of which is
        in D (any one release would do).  Tasks with a pending deadline may still get
        out, so they are never in D; waits with no known holder (a completion, a queue)
        neither.  A partial deadlock: D is not empty while other tasks still run.
        """
        waits: dict[int, tuple[bool, frozenset[int]]] = {}
        for task in self._blocked:
            w = task.waiter
            if w is None or _has_deadline(task):
                continue
            holders = frozenset(h.id for h in w.queue.describe_wait()[1] if isinstance(h, SimTask))
            if holders:
                waits[task.id] = (bool(getattr(w.queue, "wait_needs_any", False)), holders)
        doomed = set(waits)
        changed = True
        while changed:
            changed = False
            for tid in list(doomed):
                needs_any, holders = waits[tid]
                stuck = holders <= doomed if needs_any else bool(holders & doomed)
                if not stuck:
                    doomed.discard(tid)
                    changed = True
        return frozenset(doomed)

    def _closes_cycle(self, task: SimTask, waiter: Waiter) -> bool:
        """`task` just blocked on `waiter`: did that close a deadlock nothing can undo?

        Called on a block only, never per step.  True when `_stuck` is not empty (a cycle
        of waits on held locks, pools, task groups, without a deadline) and no task that
        could still do anything could cancel one of the stuck tasks (`_rescuable`).  A
        cheap test first: a wait with no blocked holder closes no cycle.
        """
        queue = waiter.queue
        if type(queue) is SimTaskGroup:  # its children, without the scan of describe_wait
            # (a loop, not ``any()`` over a generator: a join's block is once per group)
            for t in self._blocked:
                if t.group is queue and t.waiter is not None:
                    break
            else:
                return False
        else:
            # (no holder: a completion, a condition, a queue; anyone may end the wait)
            for holder in queue.describe_wait()[1]:
                if type(holder) is SimTask and holder.state == _BLOCKED:
                    break
            else:  # no holder blocked (the common case): no cycle through this wait
                return False
        if _has_deadline(task):
            return False
        stuck = self._stuck()
        return bool(stuck) and not self._rescuable(stuck)

    def _rescuable(self, stuck: frozenset[int]) -> bool:
        """Could a task outside `stuck` that has not finished (running, blocked on
        something else, asleep, or one it will spawn) free a stuck task?

        Yes (True) when one of them entered a cancel scope around a stuck task (a task
        group's body before the group's exit), when one of them is inside such a scope
        (a sibling in the group) and program code it reaches has an explicit ``raise``
        (its error would cancel the group) or calls ``fail_after`` (by that name, or the
        function under any name), or it is inside a ``fail_after`` now (its deadline
        raises `TimeoutError`, entered by any code), or when what it holds reaches a stuck
        task's cancel scope, the task group of one, or a pool a stuck task waits on
        that any task may release when program code it reaches names ``release`` (or a
        `WaitQueue` the program made naming an owner, when it names ``wake_one`` or
        ``wake_all``: the owner's holders are not the only way out)
        (`rescue.Reach`: its frames' locals and stack, the functions it holds and every
        global their code names in turn, helpers of other modules included, containers
        and attributes to any depth, its context's variables; the runtime's own objects
        opaque; a task group seen as its own scope).  A task it will spawn is seen
        through the function the spawner holds.  A scope or group reached only through
        a library object's state (the model's workqueue holding its task group, a
        ``WeakSet``) counts when the walk met program code at all: library code cancels
        nothing of its own accord, but program code may make it.  Unsure is yes: a walk
        past `rescue.LIMIT` objects, code that reads frames, ``globals()`` or
        ``sys.modules``, a function-level import of a module not loaded yet.

        A way out kept in a library module's state (a logger's attribute, an installed
        package's registry: trial 22b f7) counts when program code the walk met names
        some library module, class or function (library code may call another library):
        `rescue.held_in` walks back from the way out to a library namespace that holds it
        (no pass at all when the walk met no library but odp_async; one heap pass per
        level of holders otherwise, one in the common case).

        Not seen (the early stop then reports a deadlock the full run would not): a
        scope kept only in odp_async's module state (none keeps one), and a sibling
        failing by accident (an error no code of it raises explicitly: a second bug; the
        deadlock, which came first, is reported).  A True is remembered for the run (the
        walk is not redone for the same stuck tasks: a later block only reports the
        deadlock late, as it would anyway).
        """
        if stuck in self._rescuers:
            return True
        if self._reaches_out(stuck):
            self._rescuers.add(stuck)
            return True
        return False

    def _reaches_out(self, stuck: frozenset[int]) -> bool:
        scopes: dict[int, SimCancelScope] = {}
        for t in self._tasks:
            if t.id in stuck:
                for s in t.scopes:
                    scopes[id(s)] = s
        live = [t for t in self._tasks if t.state != _DONE and t.id not in stuck]
        owners = {id(s._task) for s in scopes.values() if not s._exited}
        if any(id(t) in owners for t in live):
            return True
        targets = set(scopes)
        pools: set[int] = set()
        for t in self._tasks:
            if t.group is not None and id(t.group._scope) in scopes:
                targets.add(id(t.group))
            if t.id in stuck and t.waiter is not None:
                queue = t.waiter.queue
                primitive = getattr(queue, "_owner", None)
                if getattr(primitive, "wait_released_by_anyone", False):
                    pools.update((id(queue), id(primitive)))
                elif getattr(queue, "wait_woken_by_anyone", False):
                    pools.add(id(queue))  # a queue of the caller's naming an owner
        # A task group is seen as its cancel scope (not the scopes around it, which it
        # keeps for its children: no program cancels through them)
        opaque = (SimRuntime, SimTask, SimCancelScope)
        reach = Reach(targets, opaque, {SimTaskGroup: _group_view}, soft=pools)
        siblings = [t for t in live if any(id(s) in scopes for s in t.scopes)]
        if any(s._fails and not s._exited for t in siblings for s in t.scopes):
            # a sibling inside a `fail_after` (its deadline raises `TimeoutError`, which
            # cancels the group as an explicit raise would: a watchdog)
            return True
        for group in (siblings, [t for t in live if t not in siblings]):
            for t in group:
                for root in (t.coro, t.context, t.send_value, t.throw_exc, t.pending):
                    reach.add(root)
            if reach.walk() or (group is siblings and (reach.raises or _FAILS & reach.names)):
                return True
        # what only library objects hold: acted on only at the program's bidding; a pool a
        # stuck task waits on: freed only by program code that releases
        if (reach.library_hit and reach.program_code) or (
            reach.soft_hit and not _RELEASES.isdisjoint(reach.names)
        ):
            return True
        if not reach.program_code or not reach.libraries_met:
            return False  # (no program code, or none that names a library's state)
        # a way out kept in a library's state (a logger's attribute, a library module's
        # global), when program code names some library's state (library code may reach
        # another library's): walked back from the way out, once
        hard = [*scopes.values(), *(t.group for t in self._tasks if id(t.group) in targets)]
        soft = [
            o
            for t in self._tasks
            if t.id in stuck and t.waiter is not None
            for o in (t.waiter.queue, getattr(t.waiter.queue, "_owner", None))
            if id(o) in pools
        ]
        # (the runtime's own holders of scopes, and this method's: not library state)
        skip = {id(scopes), id(hard), id(soft)}
        for t in self._tasks:
            skip.add(id(t.scopes))
            if t.group is not None:
                skip.add(id(t.group._stack))
        by_hard, by_soft = held_in(hard, soft, (*opaque, Waiter), skip)
        return by_hard or (by_soft and not _RELEASES.isdisjoint(reach.names))

    def _deadlock(self) -> Deadlock:
        waiting = [t for t in sorted(self._blocked, key=lambda t: t.id) if t.waiter is not None]
        holders_of: dict[int, tuple[SimTask, ...]] = {}
        described: dict[int, str] = {}
        behind_of: dict[int, tuple[SimTask, ...]] = {}
        named_of: dict[int, tuple[SimTask, ...]] = {}  # every holder, for the report
        for task in waiting:
            assert task.waiter is not None
            what, holders = task.waiter.queue.describe_wait()
            described[task.id] = what
            holders_of[task.id] = named_of[task.id] = tuple(
                h for h in holders if isinstance(h, SimTask)
            )
            if getattr(task.waiter.queue, "wait_needs_any", False):
                # A pool: any holder's release lets it in, so it waits on itself only
                # when it holds every slot; else the cycle goes through the others.
                others = tuple(h for h in holders_of[task.id] if h is not task)
                holders_of[task.id] = others or holders_of[task.id]
            queue_behind = getattr(task.waiter.queue, "waits_behind", None)
            if queue_behind is not None:
                ahead = tuple(h for h in queue_behind(task.waiter) if isinstance(h, SimTask))
                if ahead:
                    # it waits for them too; first, so the cycle found goes through them
                    behind_of[task.id] = ahead
                    holders_of[task.id] = ahead + holders_of[task.id]
        lonely = self._lonely_completion_waiters(waiting, holders_of)
        label = self._task_labels()
        blocked: list[BlockedTask] = []
        for task in waiting:
            assert task.waiter is not None
            queue = task.waiter.queue
            hs = named_of[task.id]
            relation = "to finish:" if isinstance(queue, SimTaskGroup) else "held by"
            if task.id in lonely:
                # the cycle search sees the task as waiting on itself; no holder is named
                holders_of[task.id] = (task,)
                relation = BLOCKING_ALL if len(self._blocked) > 1 else LEFT_ALONE
            names = tuple(
                f"{label[h.id]} (finished)" if h.state == _DONE else label[h.id] for h in hs
            )
            if getattr(queue, "wait_needs_any", False):
                itself = bool(hs) and all(h is task for h in hs)
            else:
                itself = any(h is task for h in hs)
            behind = tuple(label[h.id] for h in behind_of.get(task.id, ()))
            blocked.append(
                BlockedTask(
                    label[task.id], task.id, described[task.id], names, relation, itself, behind
                )
            )
        asleep: list[str] = []  # a sleeper whose timer is pending runs again
        for task in sorted(self._blocked, key=lambda t: t.id):
            if task.state == _SLEEPING and task.pending == _INF and not _has_deadline(task):
                # ``sleep(math.inf)``: only a cancellation ends it, and none can come
                blocked.append(BlockedTask(label[task.id], task.id, SLEEPS_FOR_EVER, (), ""))
            elif task.state == _SLEEPING:
                asleep.append(label[task.id])
        runnable = (*(label[t.id] for t in self._runnable), *asleep)
        return Deadlock(tuple(blocked), _find_cycle(blocked, holders_of), runnable)

    def _task_labels(self) -> dict[int, str]:
        """Task id -> its name in a report: the name, or ``name#id`` when several tasks of
        the run share it (one function started twice), as the step list and the
        timeline's lanes show it."""
        counts = Counter(t.name for t in self._tasks)
        return {t.id: t.name if counts[t.name] == 1 else f"{t.name}#{t.id}" for t in self._tasks}

    def _lonely_completion_waiters(
        self, waiting: list[SimTask], holders_of: dict[int, tuple[SimTask, ...]]
    ) -> frozenset[int]:
        """Tasks waiting on a `Completion` that only they could complete.

        In a total deadlock (nothing runnable, nothing sleeping), a task W waiting on a
        completion with no holder waits on itself when every other unfinished task waits,
        through lock holders or task-group children, for W: none of them can run before
        W does, so none can complete what W waits for.
        """
        if self._runnable or len(waiting) != len(self._blocked):
            return frozenset()
        alive = [t for t in self._tasks if t.state != _DONE]
        lonely: set[int] = set()
        for task in waiting:
            assert task.waiter is not None
            if holders_of[task.id] or not getattr(task.waiter.queue, "wait_is_completion", False):
                continue
            reaches = {task.id}  # the tasks that cannot run before `task` does
            grew = True
            while grew:
                grew = False
                for other in alive:
                    if other.id not in reaches and any(
                        h.id in reaches for h in holders_of.get(other.id, ())
                    ):
                        reaches.add(other.id)
                        grew = True
            if all(t.id in reaches for t in alive):
                lonely.add(task.id)
        return frozenset(lonely)

    def _close_all(self) -> None:
        if self._on_stop is not None:
            self._on_stop()  # observers stop recording: the unwinding is not the run
        # Unwind what is left (children first) so their `finally` blocks run; a task that
        # awaits while unwinding is abandoned.  State changes made here are not reported.
        interrupted: BaseException | None = None
        for task in reversed(self._tasks):
            if task.state == _DONE:
                continue
            task.state = _DONE
            self._current = task
            try:
                task.context.run(task.coro.close)
            except KeyboardInterrupt as e:
                if is_ctrl_c(e):
                    interrupted = interrupted or e  # finish unwinding, then leave with it
            except BaseException:
                pass  # unwinding a stopped run: nothing left to report to
            finally:
                self._current = None
        if interrupted is not None:
            raise interrupted


_COROUTINE: Final = types.CoroutineType


def _async_code(func: object) -> types.CodeType | None:
    """The code of `func` if it is an ``async def`` function or a bound method of one (its
    call only binds the arguments into a new coroutine, running no code of the
    program), else None."""
    target = func.__func__ if type(func) is types.MethodType else func
    if type(target) is not types.FunctionType:
        return None
    code = target.__code__
    return code if code.co_flags & inspect.CO_COROUTINE else None


def _spawned_as(
    func: Callable[..., Awaitable[Any]], args: Sequence[Any], code: types.CodeType, coro: object
) -> tuple[Any, ...] | None:
    """What a task spawned as ``func(*args)`` starts from, as objects compared by identity
    (dfs's symmetry, `odp_async.explore.dfs`): the function (its closure cells and
    globals), the arguments, the code the coroutine runs and the defaults bound with
    them; None when the call ran anything else.

    `code` is `_async_code(func)` read before the call.  Only such a call is known: any
    other callable runs program code at spawn (``start_soon`` calls it then), which may
    give each task its own initial state (a callable object numbering the workers it
    starts, a sync factory closing a nested coroutine over a per-call value), so its
    task is only itself."""
    if type(coro) is not _COROUTINE or coro.cr_code is not code:
        return None
    target = func.__func__ if type(func) is types.MethodType else func
    kwdefaults = target.__kwdefaults__
    return (
        func,
        tuple(args),
        code,
        target.__defaults__,
        tuple(kwdefaults.values()) if kwdefaults else (),
    )


#: ``RUNTIME_VAR.set``, bound once (a run sets it in its context).
_SET_RUNTIME: Final = RUNTIME_VAR.set

#: Choosers with no footprints, no ``ask_always``, a no-op ``new_execution`` and no
#: `trust_primitives`: `_drive` hands them to the plain loop without asking.
_PLAIN_CHOOSERS: Final = (RandomChooser, StreamChooser)

#: The driver loop's code: its frame is cut from the tracebacks of the tasks' errors.
_DRIVE_CODES: Final = (SimRuntime._drive.__code__, SimRuntime._drive_plain.__code__)


def progress_of(task: SimTask) -> FieldOf:
    """The resource a watched task's steps and wakes write and `SimRuntime.task_progress`
    and `SimRuntime.task_passed_over` read: one field of the task (a run-stable key from
    its first sight, as any field)."""
    return FieldOf(task, "<progress>")


def _drive_frame_first(err: BaseException) -> bool:
    tb = err.__traceback__
    return tb is not None and tb.tb_frame.f_code in _DRIVE_CODES


def _stable_label(label: object) -> object:
    # Trace entries must compare equal (and hash) across runs and processes: no object
    # identities, nothing mutable.
    if isinstance(label, Waiter):
        label = label.queue
    if label is None or isinstance(label, str | int | float):
        return label
    if isinstance(label, tuple):
        return tuple(_stable_label(part) for part in label)
    describe = getattr(label, "describe_wait", None)
    if describe is not None:
        text: str = describe()[0]
        return text
    if isinstance(label, Footprint) and label.label is not None:
        return label.label  # what the step does ("store 'counter'"), display only
    return type(label).__name__


#: What a `ForeignAwait` message suggests instead.
_INSTEAD: Final = (
    "under the sim runtime await only odp_async calls (odp_async.checkpoint(), "
    "odp_async.sleep(), task_group()) and the odp_async.sync primitives"
)
#: Event loops whose primitives cannot run under the sim.
_FOREIGN_LOOPS: Final = frozenset({"asyncio", "trio", "anyio", "sniffio"})


def _short_repr(value: object, limit: int = 120) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the usage error
        text = f"<{type(value).__qualname__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _foreign_library_call(err: BaseException) -> tuple[str, BaseException] | None:
    """``("trio._sync.Event.wait()", error)`` when `err` is an asyncio/trio/anyio
    primitive failing for want of its own event loop (raised inside that library), or a
    group holding one (a task group's body awaited it: ``asyncio.Event().wait()`` in
    the task that opened the group), else None."""
    if isinstance(err, BaseExceptionGroup):
        # Iteratively, depth first: a program may nest groups deeper than the stack.
        stack: list[BaseException] = [err]
        for _ in range(_GROUP_LEAVES):
            if not stack:
                return None
            top = stack.pop()
            if isinstance(top, BaseExceptionGroup):
                stack.extend(reversed(top.exceptions))
                continue
            found = _foreign_library_call(top)
            if found is not None:
                return found
        return None
    if not isinstance(err, RuntimeError | AttributeError):
        return None
    frames: list[types.FrameType] = []
    tb = err.__traceback__
    tb_last = tb
    while tb is not None:
        frames.append(tb.tb_frame)
        tb_last = tb
        tb = tb.tb_next
    if not frames:
        return None
    if _loop_of(frames[-1]) is None:
        called = _asyncio_c_call(err, tb_last)
        return None if called is None else (called, err)
    for frame in frames:
        if _loop_of(frame) is not None:
            module = frame.f_globals.get("__name__", "?")
            return f"{module}.{frame.f_code.co_qualname}()", err
    return None


#: How many exceptions of a group (nested ones included) `_foreign_library_call` reads.
_GROUP_LEAVES: Final = 10_000

#: What asyncio's ``get_running_loop()`` (a C function) raises with no asyncio loop
#: running in the thread.  (Its Python callers, ``current_task()`` and the rest, leave a
#: frame of asyncio's: `_foreign_library_call` names them.)
_NO_ASYNCIO_LOOP: Final = "no running event loop"


def _asyncio_c_call(err: BaseException, last: types.TracebackType | None) -> str | None:
    """``"asyncio's get_running_loop()"`` when `err` is what asyncio's C functions raise
    with no loop running and `last` (the innermost traceback entry) stopped at a call:
    a C function leaves no frame of asyncio's, so the innermost frame is the caller's,
    at the call, not at a ``raise`` of its own (the program's own ``raise`` of the same
    message stays its outcome).  Else None."""
    if type(err) is not RuntimeError or err.args != (_NO_ASYNCIO_LOOP,) or last is None:
        return None
    name = None
    for instruction in dis.get_instructions(last.tb_frame.f_code):
        if instruction.offset == last.tb_lasti:
            if instruction.opname != "CALL":
                return None
            return f"asyncio's {name}()" if name else "an asyncio function"
        if (
            instruction.opname.startswith("LOAD_")
            and isinstance(instruction.argval, str)
            and instruction.argval in _NO_LOOP_CALLS
        ):
            name = instruction.argval
    return None


#: asyncio's C functions that raise `_NO_ASYNCIO_LOOP` (named in the message when the
#: code before the call loads one of them by name).
_NO_LOOP_CALLS: Final = frozenset({"get_running_loop"})


def _loop_of(frame: types.FrameType) -> str | None:
    module = frame.f_globals.get("__name__")
    if not isinstance(module, str):
        return None
    top = module.partition(".")[0]
    return top if top in _FOREIGN_LOOPS else None


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _CycleClosed(Exception):
    """Raised by the driver on the block that closed a certain deadlock (never escapes)."""


#: Names through which program code may release a pool's slot or wake a queue of its
#: own that names an owner (`_reaches_out`).
_RELEASES: Final = frozenset({"release", "wake_one", "wake_all", "getattr"})
#: Names whose call raises when a deadline passes (program code naming one may raise).
_FAILS: Final = frozenset({"fail_after", "fail_after_scope"})


def _group_view(group: SimTaskGroup) -> tuple[object, ...]:
    """What a program can reach through a task group: its cancel scope, its errors."""
    return (group._scope, group._errors)


def _check_deadline(value: object) -> float:
    """A cancel scope's deadline as a float: any real number, ``math.inf`` (never), or
    ``-math.inf``; NaN or a non-number raises `InvalidArgument` (trio refuses NaN too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(
            f"a cancel scope's deadline must be a number of seconds, got {value!r} "
            f"({type(value).__name__})"
        )
    try:
        deadline = float(value)
    except OverflowError:  # an int past the floats: as far as any deadline goes
        deadline = _INF if value > 0 else -_INF
    if deadline != deadline:
        raise InvalidArgument(f"a cancel scope's deadline must not be NaN, got {value!r}")
    return deadline


def _has_deadline(task: SimTask) -> bool:
    return any(s._deadline != math.inf and not s._cancel_called for s in task.scopes)


def _find_cycle(
    blocked: list[BlockedTask], holders_of: dict[int, tuple[SimTask, ...]]
) -> tuple[BlockedTask, ...]:
    by_id = {b.task_id: b for b in blocked}
    for start in blocked:
        path: list[int] = []
        on_path: dict[int, int] = {}
        tid: int | None = start.task_id
        while tid is not None and tid in by_id and tid not in on_path:
            on_path[tid] = len(path)
            path.append(tid)
            nxt = [h.id for h in holders_of.get(tid, ()) if h.id in by_id]
            tid = nxt[0] if nxt else None
        if tid is not None and tid in on_path:
            return tuple(by_id[t] for t in path[on_path[tid] :])
    return ()


def run(
    main: Callable[..., Awaitable[Any]],
    *args: Any,
    seed: int = 0,
    chooser: Chooser | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    trace: bool = False,
    on_stop: Callable[[], None] | None = None,
    noted_only: bool = False,
) -> SimResult:
    """Run ``main(*args)`` under the sim runtime and return what happened.

    `chooser` decides every choice point; without one, a `RandomChooser(seed)` does
    (`seed`: an int of at most 64 bits; `chooser`: an object with ``choose`` and
    ``new_execution``, see `odp_async._runtime.choosers.Chooser`).  `max_steps` (an int,
    1 to `MAX_RUN_STEPS`) bounds the run (outcome ``"step-limit"`` past it).  With `trace`, the
    result carries every step as ``(step, task_id, op, label)``.  `on_stop` is called
    when a run that did not finish (deadlock, step bound, chooser error) starts
    unwinding its tasks, so observers can stop recording what the unwinding does.
    `noted_only` is the program's promise that it reaches shared state only through
    noted objects (`odp_async.shared.SharedCell`, the primitives): a step whose label
    declares nothing (a task's first step included) then has exactly its noted accesses
    as footprint, instead of an unknown one (see `odp_async.explore.dpor`).

    Blocks: no (it drives the run to its end on the calling thread).  Raises
    `InvalidArgument` for a bad argument, `InternalError` for a bug of the driver or a
    chooser that answers out of range; never for what the code under test does, with
    two exceptions that are not the program's behaviour: `ForeignAwait` (an
    `InvalidArgument`) when a task awaits something that is not an odp_async runtime
    call, and a `KeyboardInterrupt` raised inside a task that is taken for Ctrl-C
    (`odp_async._runtime.interrupts.is_ctrl_c`), unchanged (a `SystemExit`, and a
    `KeyboardInterrupt` the program raised itself while Ctrl-C is marked, are the
    program's error: an outcome).  Each leaves after the run's tasks have been unwound.
    """
    _check_run(main, max_steps, noted_only)
    _check_run_options(seed, chooser, trace, on_stop)
    if chooser is None:
        chooser = RandomChooser(seed)
    rt = SimRuntime(
        chooser, max_steps=max_steps, trace=trace, on_stop=on_stop, noted_only=noted_only
    )
    ctx = contextvars.copy_context()
    ctx.run(RUNTIME_VAR.set, rt)
    return ctx.run(rt.drive, main, args)


def run_brief(
    main: Callable[..., Awaitable[Any]],
    *args: Any,
    chooser: Chooser,
    max_steps: int = DEFAULT_MAX_STEPS,
    noted_only: bool = False,
) -> SimResult | int:
    """`run` without a trace, except that a run ending ``"ok"`` returns its step count
    (an int) instead of a `SimResult`: the same steps and chooser answers, no record
    built.  Any other outcome returns the `SimResult` that `run` would.  For callers
    that only look closer at runs that went wrong (the explorer).  Raises as `run`."""
    _check_run(main, max_steps, noted_only)
    rt = SimRuntime(chooser, max_steps=max_steps, trace=False, noted_only=noted_only)
    ctx = contextvars.copy_context()
    ctx.run(RUNTIME_VAR.set, rt)
    return ctx.run(rt.drive_brief, main, args)


class BriefRuns:
    """Runs of one program under the sim, one at a time, on one runtime reset between runs.

    ``BriefRuns(main, *args, max_steps=..., noted_only=...).run(chooser)`` is
    ``run_brief(main, *args, chooser=chooser, max_steps=..., noted_only=...)``: the same
    steps, chooser answers and results as a fresh runtime's (each run starts from every
    per-run field reset, in a fresh copy of the caller's context), and for a run ending
    ``"ok"`` its step count instead of a record.  What it saves is building and freeing
    a runtime per run: the explorer runs thousands of short schedules of one program.
    Runs leave no reference cycle, as `run`'s do.

    Raises `InvalidArgument` as `run` does for bad arguments, and `ProtocolViolation` for
    a run started while another of the same object is still going (from inside it).
    """

    __slots__ = ("_args", "_busy", "_main", "_max_steps", "_noted_only", "_rt")

    def __init__(
        self,
        main: Callable[..., Awaitable[Any]],
        *args: Any,
        max_steps: int = DEFAULT_MAX_STEPS,
        noted_only: bool = False,
    ) -> None:
        _check_run(main, max_steps, noted_only)
        self._main = main
        self._args = args
        self._max_steps = max_steps
        self._noted_only = noted_only
        self._rt: SimRuntime | None = None
        self._busy = False

    def run(self, chooser: Chooser) -> SimResult | int:
        """One run under `chooser`: `run_brief`'s answer (see the class docstring)."""
        if self._busy:
            raise ProtocolViolation("BriefRuns.run() inside one of its own runs")
        rt = self._rt
        if rt is None:
            rt = self._rt = SimRuntime(
                chooser, max_steps=self._max_steps, trace=False, noted_only=self._noted_only
            )
        else:
            rt._begin(chooser, False)  # after the last run's `_release`
        ctx = contextvars.copy_context()
        ctx.run(_SET_RUNTIME, rt)
        self._busy = True
        try:
            return ctx.run(rt._drive_root, self._main, self._args, True)
        finally:
            self._busy = False


#: The largest `max_steps` a run takes: the explorer's bound (`ExploreConfig.max_steps`,
#: at most 10**9) and its fair continuation, as long again (`odp_async.explore.fairness`).
MAX_RUN_STEPS: Final = 2 * 10**9
#: A seed is an int of at most this many bits, as the explorer's (`ExploreConfig.seed`).
_SEED_BITS: Final = 64


def _check_run(main: object, max_steps: int, noted_only: bool) -> None:
    if not callable(main):
        raise InvalidArgument(f"run() needs an async function, got {main!r}")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise InvalidArgument(f"max_steps must be a positive int, got {max_steps!r}")
    if max_steps > MAX_RUN_STEPS:
        raise InvalidArgument(
            f"max_steps must be at most {MAX_RUN_STEPS} (2 * 10**9), got {max_steps!r}"
        )
    if not isinstance(noted_only, bool):
        raise InvalidArgument(f"noted_only must be a bool, got {noted_only!r}")


def _check_run_options(seed: object, chooser: object, trace: object, on_stop: object) -> None:
    """`run`'s other keywords, each refused with `InvalidArgument` naming the value."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed.bit_length() > _SEED_BITS:
        raise InvalidArgument(
            f"seed must be an int of at most {_SEED_BITS} bits, got {_short_repr(seed, 60)} "
            f"({type(seed).__name__})"
        )
    if chooser is not None and not all(
        callable(getattr(chooser, m, None)) for m in ("choose", "new_execution")
    ):
        raise InvalidArgument(
            f"chooser must be None or a Chooser (RandomChooser(seed), ReplayChooser(...): "
            f"with choose() and new_execution()), got {_short_repr(chooser, 60)} "
            f"({type(chooser).__name__})"
        )
    if not isinstance(trace, bool):
        raise InvalidArgument(f"trace must be a bool, got {trace!r} ({type(trace).__name__})")
    if on_stop is not None and not callable(on_stop):
        raise InvalidArgument(
            f"on_stop must be None or a callable, got {_short_repr(on_stop, 60)} "
            f"({type(on_stop).__name__})"
        )
