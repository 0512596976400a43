"""Failure reports a person can act on: the cause of an error, and the run step by step.

Contract
    `error_leaves(result)` unwraps the root's error of a sim run (every explored program
    runs in a task group, so a child's error arrives inside an `ExceptionGroup`) into its
    leaves: each with its type, message, the name of the task that raised it (the name
    given to ``start_soon``) and the innermost user frame ``file:line`` (the deepest
    traceback frame outside the odp_async package).  `describe_leaves` is the one-line
    text of those leaves that an ``error`` violation carries as its detail.

    `describe_execution(execution)` is the whole report of one run: the verdict line and
    every violation, the error leaves one per line, the blocked tasks of a deadlock, and
    (for a run recorded with ``trace=True``) the run step by step: every step, including
    those in which a task finished, by the names the user gave the tasks, with readable
    labels (``Mutex 'm'.acquire``, ``finished``), preemptions marked ``*`` and the step of
    the first violation marked ``<==``.  Pure: it reads the execution, runs nothing.

Concurrency
    None: pure functions over finished runs.

See also
    `odp_async.explore.target.failure_violations` (makes violations from an outcome),
    `odp_async._runtime.sim` (`SimResult.ends`, `SimResult.trace`, `SimResult.preemptions`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from .._raised import exception_text, walk
from .._raised import leaves as _error_leaves_of
from .._runtime.labels import label_text
from .._runtime.sim import (
    CHECKPOINT,
    LEFT_ALONE,
    NOTE,
    PARK,
    SLEEP,
    Cancelled,
    SimResult,
    TaskEnd,
)

if TYPE_CHECKING:
    from .target import Execution

__all__ = [
    "ErrorLeaf",
    "describe_execution",
    "describe_leaves",
    "end_text",
    "error_leaves",
    "user_frames",
]

#: How many steps `describe_execution` shows by default (the last ones: failures end runs).
DEFAULT_MAX_STEPS_SHOWN: Final = 60

# "SlotPool 'p' (0 free)", "Completion 'c' (not completed)": identity, then state.
_PRIMITIVE_STATE: Final = re.compile(r"^(\w+ '[^']*') \(.*\)$")
_PACKAGE: Final = Path(__file__).resolve().parents[1]
# Inside the package, the frames that are machinery rather than a program: when no frame
# lies outside the package (a built-in scenario or protocol), the deepest frame outside
# these is the one to show.
_MACHINERY: Final = tuple(
    str(_PACKAGE / part) for part in ("_runtime", "explore", "sync.py", "errors.py", "sim.py")
)


@attrs.frozen
class ErrorLeaf:
    """One innermost exception of a failed run, and where it came from."""

    type_name: str
    message: str
    #: The name of the task that raised it (its ``start_soon`` name; ``main`` for the root).
    task: str
    task_id: int
    #: The sim step in which the task raised it.
    step: int
    #: ``file:line`` of the innermost user frame, None when the traceback has none.
    where: str | None
    error: BaseException = attrs.field(eq=False, repr=False)

    def describe(self) -> str:
        """``AssertionError: balance is -1 (in task 'withdraw' at bank.py:14)``."""
        head = f"{self.type_name}: {self.message}" if self.message else self.type_name
        at = f" at {self.where}" if self.where else ""
        return f"{head} (in task {self.task!r}{at})"


def error_leaves(result: SimResult) -> tuple[ErrorLeaf, ...]:
    """The leaves of the root's error (`ExceptionGroup`\\ s unwrapped), in raise order."""
    if result.error is None:
        return ()
    root_name = result.tasks[0][1] if result.tasks else "main"
    raised = [
        (end, {id(e) for e in walk(end.error)}) for end in result.ends if end.error is not None
    ]
    leaves: list[ErrorLeaf] = []
    for leaf in _error_leaves_of(result.error):
        end = next((e for e, ids in raised if id(leaf) in ids), None)
        if end is None:
            end = TaskEnd(result.steps, 0, root_name, leaf)
        leaves.append(
            ErrorLeaf(
                type(leaf).__qualname__,
                exception_text(leaf),
                end.task,
                end.task_id,
                end.step,
                _user_frame(leaf),
                leaf,
            )
        )
    leaves.sort(key=lambda leaf: leaf.step)
    return tuple(leaves)


def describe_leaves(leaves: tuple[ErrorLeaf, ...] | list[ErrorLeaf]) -> str:
    """The detail of an ``error`` violation: each leaf's `ErrorLeaf.describe`, joined."""
    if len(leaves) == 1:
        return leaves[0].describe()
    return f"{len(leaves)} errors: " + "; ".join(leaf.describe() for leaf in leaves)


def describe_execution(
    execution: Execution,
    *,
    steps: bool = True,
    max_steps_shown: int = DEFAULT_MAX_STEPS_SHOWN,
    cause: bool = True,
) -> str:
    """The report of one run (see the module docstring), as lines of text.

    `steps` False leaves out the step list; otherwise the last `max_steps_shown` steps
    are shown (a line says how many earlier ones were left out).  An execution recorded
    without ``trace=True`` gets a line saying how to get its steps.  `cause` False leaves
    out the verdict line and the error leaves, for a caller that has already printed the
    violation (an ``error`` violation's detail holds its leaves); other violations of
    the run are still listed (``also: ...``).
    """
    sim = execution.sim
    lines: list[str] = []
    failure = execution.failure
    if failure is None:
        lines.append(f"{execution.verdict}: the run ended {sim.outcome} after {sim.steps} steps")
    else:
        lines.append(f"{execution.verdict}: {failure.describe()}")
        lines.extend(f"also: {v.describe()}" for v in execution.violations[1:])
    if not cause:
        del lines[0]
    names = _task_names(sim)
    leaves = error_leaves(sim) if sim.outcome == "error" and cause else ()
    if leaves:
        lines.append("raised:" if len(leaves) == 1 else f"raised ({len(leaves)} errors):")
        for leaf in leaves:
            head = f"{leaf.type_name}: {leaf.message}" if leaf.message else leaf.type_name
            at = f", at {leaf.where}" if leaf.where else ""
            who = names.get(leaf.task_id, leaf.task)
            lines.append(f"  {head}")
            lines.append(f"    in task {who!r} (step {leaf.step}){at}")
    if sim.deadlock is not None:
        deadlock = sim.deadlock
        cycle = deadlock.cycle
        if cycle:
            if len(cycle) > 1:
                lines.append("the wait-for cycle:")
            elif cycle[0].waits_on_itself:
                lines.append("waits on itself:")
            elif cycle[0].relation == LEFT_ALONE:
                lines.append("the only task left:")
            else:
                lines.append("every other task waits for it:")
            lines.extend(f"  {b.describe()}" for b in cycle)
        rest = [b for b in deadlock.blocked if b not in cycle]
        if rest:
            lines.append("also blocked:" if cycle else "blocked:")
            lines.extend(f"  {b.describe()}" for b in rest)
        if deadlock.runnable:
            lines.append(f"could still run: {', '.join(deadlock.runnable)}")
    if steps:
        if sim.trace is None:
            lines.append("(no steps recorded: run it with trace=True to see them)")
        else:
            marked = failure.step if failure is not None else None
            lines.extend(_step_lines(sim, names, max_steps_shown, marked))
    return "\n".join(lines)


# --- error leaves ---------------------------------------------------------------------


def user_frames(error: BaseException) -> tuple[tuple[str, int], ...]:
    """``(file, line)`` of each traceback frame of `error` in the program's code, outermost
    first: the frames outside the odp_async package; for a program inside it (a built-in
    scenario or protocol), the frames outside its machinery (`_MACHINERY`).  Empty when
    the traceback has none."""
    files: list[tuple[str, int]] = []
    tb = error.__traceback__
    while tb is not None:
        files.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    outside = [(f, n) for f, n in files if not _in_package(f)]
    if not outside:
        outside = [(f, n) for f, n in files if not f.startswith(_MACHINERY)]
    return tuple(outside)


def _user_frame(error: BaseException) -> str | None:
    frames = user_frames(error)
    if not frames:
        return None
    filename, line = frames[-1]
    return f"{show_path(filename)}:{line}"


def _in_package(filename: str) -> bool:
    return filename.startswith(str(_PACKAGE) + os.sep)


def show_path(filename: str) -> str:
    """`filename` relative to the working directory when below it (what a terminal can
    click on), else as given."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if rel.startswith(os.pardir) else rel


# --- the step list --------------------------------------------------------------------


def _task_names(sim: SimResult) -> dict[int, str]:
    """Task id -> the name to show: the user's name, ``name#id`` where names repeat."""
    counts: dict[str, int] = {}
    for _, name in sim.tasks:
        counts[name] = counts.get(name, 0) + 1
    return {tid: name if counts[name] == 1 else f"{name}#{tid}" for tid, name in sim.tasks}


def _step_lines(
    sim: SimResult, names: dict[int, str], max_shown: int, marked: int | None
) -> list[str]:
    assert sim.trace is not None
    pauses: dict[int, tuple[int, int, object]] = {}
    notes: dict[int, list[tuple[int, object]]] = {}
    for step, task_id, op, label in sim.trace:
        if op == NOTE:
            notes.setdefault(step, []).append((task_id, label))
        else:
            pauses[step] = (task_id, op, label)
    ends = {end.step: end for end in sim.ends}
    preempted = set(sim.preemptions)
    rows: list[tuple[int, str, str]] = []
    last_pause: dict[int, tuple[int, object]] = {}
    for step in range(1, sim.steps + 1):
        tid: int | None = None
        if step in pauses:
            tid = pauses[step][0]
        elif step in ends:
            tid = ends[step].task_id
        elif step in notes:
            tid = notes[step][0][0]
        if tid is None:
            rows.append((step, "?", "(not recorded)"))
            continue
        did = _did(last_pause.get(tid), [label for _, label in notes.get(step, ())])
        if step in pauses:
            _, op, label = pauses[step]
            last_pause[tid] = (op, label)
            then = _pause_text(op, label)
            if op == PARK and did == _identity(label_text(label)):
                did = ""  # "Mutex 'm'; waits on Mutex 'm'" says it twice
        elif step in ends:
            then = end_text(ends[step])
        else:
            then = "stopped"
        text = f"{did}; {then}" if did else then
        if step == marked:
            text += "  <=="
        rows.append((step, names.get(tid, f"task {tid}"), text))
    lines = [f"the run, step by step ({len(rows)} steps; * marks a preemption, <== the failure):"]
    end = len(rows)
    if marked is not None and max_shown > 0 and marked < end - max_shown + 1:
        # The failure lies before the last `max_shown` steps (what other tasks did after
        # it, e.g. their cancellation): the window ends a little after the failure.
        end = min(end, marked + max_shown // 4)
    shown = rows[max(0, end - max_shown) : end] if max_shown > 0 else []
    if end - len(shown) > 0:
        lines.append(f"  ... {end - len(shown)} earlier steps not shown")
    later = len(rows) - end
    width = max((len(name) for _, name, _ in shown), default=0)
    digits = len(str(sim.steps))
    for step, name, text in shown:
        star = "*" if step in preempted else " "
        lines.append(f"  step {step:>{digits}} {star} {name:<{width}}  {text}")
    if later:
        lines.append(f"  ... {later} later steps not shown")
    if marked is not None and marked > sim.steps:
        # Found by the fair continuation past the step bound (`odp_async.explore.fairness`):
        # its steps are not part of this recorded run.
        lines.append(
            f"  ... steps {sim.steps + 1}-{marked}: past the step bound, continued under a "
            f"fair (round-robin) scheduler, not listed; the failure is at step {marked}  <=="
        )
    return lines


def _did(previous: tuple[int, object] | None, step_notes: list[object]) -> str:
    """What the task did in its step: what it said it would do, and the notes it left
    (``Mutex 'm'.acquire``; the announced ``Mutex 'm'`` is not repeated before them)."""
    notes = [_note_text(label) for label in step_notes]
    head = ""
    if previous is None:
        head = "starts"
    else:
        op, label = previous
        if op == CHECKPOINT and label is not None:
            head = _identity(label_text(label))
        elif op == PARK:
            head = f"wakes from {_identity(label_text(label))}"
        elif op == SLEEP:
            head = "wakes up"
    if head and any(note.startswith(f"{head}.") for note in notes):
        head = ""
    return ", ".join([head, *notes] if head else notes)


def _pause_text(op: int, label: object) -> str:
    if op == CHECKPOINT:
        return "yields" if label is None else f"next: {_identity(label_text(label))}"
    if op == PARK:
        return f"waits on {label_text(label)}"
    if op == SLEEP:
        return f"sleeps until t={label:g}" if isinstance(label, float) else "sleeps"
    return f"awaits {label_text(label)}"


def end_text(end: TaskEnd) -> str:
    """How a task ended, for a reader: ``finished``, ``finished (cancelled)``, or
    ``raised <type>: <message>`` (an exception group: how many errors it holds)."""
    error = end.error
    if error is None:
        return "finished"
    if isinstance(error, Cancelled):
        return "finished (cancelled)"
    if isinstance(error, BaseExceptionGroup):
        n = len(error.exceptions)
        return f"raised {type(error).__name__} ({n} error{'s' if n > 1 else ''} from its tasks)"
    text = exception_text(error)
    message = f": {text}" if text else ""
    return f"raised {type(error).__qualname__}{message}"


def _identity(text: str) -> str:
    """``Completion 'x'`` of ``Completion 'x' (not completed)``: a primitive's state when
    the label was taken is not what the step did (kept only in "waits on ...")."""
    m = _PRIMITIVE_STATE.match(text)
    return m.group(1) if m else text


def _note_text(label: object) -> str:
    if isinstance(label, tuple) and len(label) == 2:
        event, resource = label
        if isinstance(event, str) and event.startswith("try-") and event.endswith("-failed"):
            # a failed trylock: an attempt, not a hold
            return f"{_identity(label_text(resource))}.{event[4:-7]} (trylock failed)"
        return f"{_identity(label_text(resource))}.{event}"
    return label_text(label)
