"""A recorded run as a frozen timeline: lanes, spans, instants, violations and step rows.

Contract
    `Timeline.from_execution(ex)` turns an `Execution` recorded with ``trace=True`` into
    plain frozen records that every renderer (text, trace-event JSON, PNG) reads and none
    has to re-derive:

    - `Lane`: one per task, in task-id order; `Lane.title` is the name, made unique with
      ``#<id>`` when several tasks share it.
    - `Span`: something held or open over an inclusive range of steps ``[start, end]``:
      a lock hold (from the sim's ``acquire*`` note to its ``release``; a ``downgrade``
      ends the write hold and starts a read hold in the same step), an invalidation
      window, a fault attempt, a register / deregister / exit window (the checker's
      ``X-begin``/``X-end`` events with one key).  A span still open when the run stopped
      ends at the last step and has ``is_open``.  A task blocked (``wait``, named after
      what it waits on) or asleep (``sleep``) has a span from the step where it stopped
      to the step before it ran again.
    - `Instant`: a checker event with no duration (install, zap, DMA, warning,
      mm-release), an ``X-end`` with no begin, or a failed trylock (category
      ``trylock-failed``: ``acquire_nowait`` raising `WouldBlock` is no hold).
    - `Mark`: a violation, at its step and on the lane of its first task.
    - `StepRow`: who ran each step and where it stopped: about to do `text`
      (``checkpoint``), blocked on it (``park``), sleeping (``sleep``), or finished
      (``end``; the lane is the task the sim's `TaskEnd` record names, else found from
      the step's notes and events, or by elimination, else None).

    Time is the sim's step counter: step ``s`` is the ``s``-th task step of the run.  Lock
    notes name the step during which the lock changed hands, so a lock taken and dropped
    within one step is a span with ``start == end``.

    An execution without a trace raises `InvalidArgument`.

Concurrency
    None: pure functions over immutable data.

See also
    `odp_async.explore.target.Execution` (the input), `odp_async._runtime.sim` (trace
    entries), `odp_async.check.Event` (the semantic history), `odp_async.report.text`,
    `odp_async.report.trace_json`, `odp_async.report.png`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

import attrs

from .._runtime.labels import label_text, page_addresses
from .._runtime.sim import CHECKPOINT, NOTE, PARK, SLEEP
from ..errors import InvalidArgument
from ..explore.arguments import show

if TYPE_CHECKING:
    from ..check import Event, Violation
    from ..explore.target import Execution

__all__ = [
    "SPAN_CATEGORIES",
    "Instant",
    "Lane",
    "Mark",
    "Span",
    "StepRow",
    "Timeline",
    "WaitEdge",
    "describe_label",
    "fold_spans",
    "short_resource",
]

#: Span categories the renderers know (any other ``X-begin``/``X-end`` family keeps its
#: own name as category).
SPAN_CATEGORIES: Final = (
    "lock",
    "wait",
    "sleep",
    "invalidate",
    "fault",
    "register",
    "deregister",
    "exit",
)

_HOLD_MODES: Final = {"acquire": "exclusive", "acquire-read": "read", "acquire-write": "write"}
# "Mutex 'B.umem_mutex'", "SlotPool 'slots' (0 free)": the kind and quoted name identify
# the primitive; what follows is state that changes between notes.
_RESOURCE: Final = re.compile(r"^(\w+) '([^']*)'")
_TRACE_OPS: Final = {CHECKPOINT: "checkpoint", PARK: "park", SLEEP: "sleep"}


def short_resource(description: str) -> tuple[str, str]:
    """``("Mutex 'a'", "a")``: a primitive's identity and its short name, from its text."""
    m = _RESOURCE.match(description)
    if m is None:
        return description, description
    return m.group(0), m.group(2)


def describe_label(label: object) -> str:
    """A trace label as text: strings as they are, ``('fault', 'B', 81920)`` as
    ``fault(B, 0x14000)`` (ints from 0x1000 up are addresses, shown in hex).  A page
    number (``('dma', 'B', 20)``) is shown as its address, ``dma(B, 0x14000)``."""
    return label_text(label, page_addresses)


@attrs.frozen
class Lane:
    """One task of the run."""

    task_id: int
    name: str
    #: `name`, or ``name#id`` when another task has the same name.
    title: str


@attrs.frozen
class Span:
    """Something held or open on one lane over the inclusive steps ``[start, end]``."""

    lane: int  # a task id of the timeline's lanes
    category: str  # "lock", "wait", "invalidate", "fault", "register", ... (SPAN_CATEGORIES)
    name: str  # short: "mmap_sem", "inv0", "fault B 0x14000"
    start: int
    end: int  # invariant: start <= end
    #: Lock holds: "read", "write" or "exclusive" (mutex, slot); "" for windows.
    mode: str = ""
    #: The full text: "RWLock 'mmap_sem'", "inv0 madvise-dontneed [0x10000, 0x20000)".
    detail: str = ""
    #: How it ended: the end event's text ("fault B 0x14000 resolved"); "" if open.
    end_detail: str = ""
    #: Never closed: cut at the last step of the run.
    is_open: bool = False

    @property
    def is_lock(self) -> bool:
        return self.category == "lock"


@attrs.frozen
class Instant:
    """A checker event with no duration, on a lane (None: no task could be named)."""

    step: int
    lane: int | None
    category: str  # the event kind: "install", "zap", "dma", "warning", ...
    name: str  # the event key: "B", "mm", ...
    detail: str
    address: int | None = None


@attrs.frozen
class Mark:
    """A violation: where it shows on the timeline, and what it says."""

    step: int
    lane: int | None
    kind: str
    #: The task names the violation gives (the lane is the first one's).
    tasks: tuple[str, ...]
    #: The full description, as `Violation.describe()` gives it.
    text: str


@attrs.frozen
class StepRow:
    """What one step did: which lane ran it and where that task stopped."""

    step: int
    lane: int | None  # None: a task finished here and no record names it
    action: str  # "checkpoint", "park", "sleep", "end" or "other" (a foreign await)
    #: What the task is about to do (checkpoint), blocks on (park), its wake-up time
    #: (sleep); "" for "end".
    text: str
    #: The step's lock notes, in order: ("acquire-read", "mmap_sem").
    notes: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class WaitEdge:
    """One edge of a deadlock's wait-for cycle: `waiter` waits for `resource`, which
    `holder` holds (task ids of the timeline's lanes)."""

    waiter: int
    resource: str
    holder: int


@attrs.frozen
class Timeline:
    """One recorded run, renderer-independent.  Build with `from_execution`."""

    title: str
    outcome: str
    steps: int
    lanes: tuple[Lane, ...]  # invariant: task ids unique and increasing
    spans: tuple[Span, ...]  # sorted by (start, lane, end)
    instants: tuple[Instant, ...]  # sorted by step (stable)
    rows: tuple[StepRow, ...]  # one per step that ran, increasing
    violations: tuple[Mark, ...]  # in the order the run recorded them
    #: The deadlock's description when the run ended in one.
    deadlock: str | None = None
    #: The deadlock's wait-for cycle, waiter to holder, closing on its first waiter.
    cycle: tuple[WaitEdge, ...] = ()
    #: The run reached its step bound and did not finish under a fair continuation
    #: either (`Execution.unfinished`): no verdict.
    unfinished: bool = False

    @property
    def verdict(self) -> str:
        """What the run amounts to: its violation kinds (``"stale-translation,
        stale-dma"``), else ``"inconclusive"`` for an `unfinished` run, else ``"clean"``;
        never the sim's ``ok`` (which means only that the program did not raise)."""
        kinds = list(dict.fromkeys(m.kind for m in self.violations))
        if not kinds and self.deadlock is not None:
            kinds = ["deadlock"]
        if not kinds and self.unfinished:
            return "inconclusive"
        return ", ".join(kinds) if kinds else "clean"

    def folded(self) -> Timeline:
        """The same run with back-to-back repeats folded (see `fold_spans`)."""
        return attrs.evolve(self, spans=fold_spans(self.spans))

    @property
    def violation(self) -> Mark | None:
        """The first violation (the one a replay token reproduces), if any."""
        return self.violations[0] if self.violations else None

    def lane(self, task_id: int) -> Lane:
        for lane in self.lanes:
            if lane.task_id == task_id:
                return lane
        raise InvalidArgument(f"no lane for task id {task_id!r} in {self.title!r}")

    @classmethod
    def from_execution(cls, ex: Execution, *, title: str | None = None) -> Timeline:
        """The timeline of `ex`, which must have been run with ``trace=True``.

        `title` names the run in headers (for instance ``Target.label``,
        ``"registration-race/odp2014"``); the default is ``"odp_async run"``.

        Raises: `InvalidArgument` if `ex` carries no trace.
        """
        sim = getattr(ex, "sim", None)
        trace = getattr(sim, "trace", None)
        if sim is None:
            raise InvalidArgument(
                f"expected an Execution (what Target.run returns), got {show(ex)}"
            )
        if trace is None:
            raise InvalidArgument(
                "this execution was recorded without a trace; re-run it with trace=True "
                "(Target.run(chooser, max_steps=..., trace=True)) to draw its timeline"
            )
        deadlock = sim.deadlock
        timeline = _build(
            title if title is not None else "odp_async run",
            outcome=str(sim.outcome),
            steps=int(sim.steps),
            tasks=tuple(sim.tasks),
            trace=tuple(trace),
            events=tuple(ex.events),
            violations=tuple(ex.violations),
            deadlock=deadlock.describe() if deadlock is not None else None,
            cycle=_cycle(deadlock),
            ends=tuple((e.step, e.task_id) for e in getattr(sim, "ends", ())),
        )
        return attrs.evolve(timeline, unfinished=bool(getattr(ex, "unfinished", False)))

    def _check_invariants(self) -> None:
        ids = [lane.task_id for lane in self.lanes]
        assert ids == sorted(set(ids)), "lanes not in task-id order"
        known = set(ids)
        for span in self.spans:
            assert span.start <= span.end, f"span ends before it starts: {span}"
            assert span.lane in known, f"span on an unknown lane: {span}"
        steps = [row.step for row in self.rows]
        assert steps == sorted(set(steps)), "rows not one per step, in order"


def _lanes(tasks: Sequence[tuple[int, str]]) -> tuple[Lane, ...]:
    counts: dict[str, int] = {}
    for _, name in tasks:
        counts[name] = counts.get(name, 0) + 1
    return tuple(
        Lane(tid, name, name if counts[name] == 1 else f"{name}#{tid}")
        for tid, name in sorted(tasks)
    )


class _LaneFinder:
    """Task names (from events and violations) to lanes."""

    def __init__(self, lanes: Iterable[Lane], ran: dict[int, int]) -> None:
        self._first: dict[str, int] = {}
        # a deadlock names a task by its lane's title (``name#id`` for a shared name)
        self._titled: dict[str, int] = {}
        self._names: dict[int, str] = {}
        for lane in lanes:
            self._names[lane.task_id] = lane.name
            self._first.setdefault(lane.name, lane.task_id)
            if lane.title != lane.name:
                self._titled[lane.title] = lane.task_id
        self._ran = ran  # step -> the task id that ran it

    def find(self, name: str, step: int) -> int | None:
        titled = self._titled.get(name)
        if titled is not None:
            return titled
        # Names need not be unique: prefer the task that ran the step.
        tid = self._ran.get(step)
        if tid is not None and self._names.get(tid) == name:
            return tid
        return self._first.get(name)


def _build(
    title: str,
    *,
    outcome: str,
    steps: int,
    tasks: tuple[tuple[int, str], ...],
    trace: tuple[tuple[int, int, int, object], ...],
    events: tuple[Event, ...],
    violations: tuple[Violation, ...],
    deadlock: str | None,
    cycle: tuple[WaitEdge, ...] = (),
    ends: tuple[tuple[int, int], ...] = (),
) -> Timeline:
    lanes = _lanes(tasks)
    last = max([steps, *(entry[0] for entry in trace)])
    rows, ran = _rows(lanes, trace, events, last, dict(ends))
    finder = _LaneFinder(lanes, ran)
    spans = [
        *_lock_spans(trace, last),
        *_window_spans(events, finder, last),
        *_wait_spans(rows, last),
    ]
    spans.sort(key=lambda s: (s.start, s.lane, s.end))
    instants = tuple(
        sorted([*_instants(events, finder), *_failed_trylocks(trace)], key=lambda i: i.step)
    )
    marks = tuple(
        Mark(
            v.sim_step,
            finder.find(v.tasks[0], v.sim_step) if v.tasks else None,
            v.kind,
            v.tasks,
            v.describe(),
        )
        for v in violations
    )
    timeline = Timeline(
        title, outcome, last, lanes, tuple(spans), instants, rows, marks, deadlock, cycle
    )
    timeline._check_invariants()
    return timeline


def _rows(
    lanes: tuple[Lane, ...],
    trace: tuple[tuple[int, int, int, object], ...],
    events: tuple[Event, ...],
    last: int,
    ends: dict[int, int] | None = None,
) -> tuple[tuple[StepRow, ...], dict[int, int]]:
    """One row per step; `ends` (step -> task id, the sim's `TaskEnd` records) names the
    task that finished in a step with no pause."""
    ends = ends or {}
    pauses: dict[int, tuple[int, int, object]] = {}
    notes: dict[int, list[tuple[int, tuple[str, str]]]] = {}
    for step, tid, op, label in trace:
        if op == NOTE:
            event, resource = _note(label)
            notes.setdefault(step, []).append((tid, (event, short_resource(resource)[1])))
        else:
            pauses[step] = (tid, op, label)
    by_name = _LaneFinder(lanes, {})
    event_task: dict[int, int] = {}
    for e in events:
        found = by_name.find(e.task, e.step)
        if found is not None:
            event_task.setdefault(e.step, found)
    last_seen: dict[int, int] = {}
    for step, tid, _, _ in trace:
        last_seen[tid] = max(step, last_seen.get(tid, 0))

    rows: list[StepRow] = []
    ran: dict[int, int] = {}
    ended: set[int] = set()
    # A step with no pause recorded is one where the task that ran finished.
    all_steps = sorted({*pauses, *notes, *event_task, *range(1, last + 1)})
    for step in all_steps:
        step_notes = tuple(n for _, n in notes.get(step, ()))
        if step in pauses:
            tid, op, label = pauses[step]
            action = _TRACE_OPS.get(op, "other")
            text = describe_label(label)
            if action == "sleep" and isinstance(label, int | float):
                text = f"until t={label:g}"
            rows.append(StepRow(step, tid, action, text, step_notes))
            ran[step] = tid
            continue
        who: int | None = None
        if step in ends:
            who = ends[step]
        elif step in notes:
            who = notes[step][0][0]
        elif step in event_task:
            who = event_task[step]
        else:
            # By elimination: a task that has not finished yet and never runs again.
            candidates = [
                lane.task_id
                for lane in lanes
                if lane.task_id not in ended and last_seen.get(lane.task_id, 0) < step
            ]
            if len(candidates) == 1:
                who = candidates[0]
        if who is not None:
            ended.add(who)
            ran[step] = who
        rows.append(StepRow(step, who, "end", "", step_notes))
    return tuple(rows), ran


def _note(label: object) -> tuple[str, str]:
    if isinstance(label, tuple) and len(label) == 2:
        event, resource = label
        return str(event), str(resource)
    return "note", describe_label(label)


def _lock_spans(trace: tuple[tuple[int, int, int, object], ...], last: int) -> list[Span]:
    # (task id, primitive) -> the holds still open, innermost last.
    held: dict[tuple[int, str], list[tuple[int, str]]] = {}
    spans: list[Span] = []

    def close(tid: int, key: str, start: int, mode: str, end: int, how: str) -> None:
        name = short_resource(key)[1]
        spans.append(Span(tid, "lock", name, start, end, mode, key, how, is_open=not how))

    for step, tid, op, label in trace:
        if op != NOTE:
            continue
        event, resource = _note(label)
        key = short_resource(resource)[0]
        stack = held.setdefault((tid, key), [])
        if event in _HOLD_MODES:
            stack.append((step, _HOLD_MODES[event]))
        elif event == "release" and stack:
            start, mode = stack.pop()
            close(tid, key, start, mode, step, f"released at step {step}")
        elif event == "downgrade" and stack and stack[-1][1] == "write":
            start, _ = stack.pop()
            close(tid, key, start, "write", step, f"downgraded at step {step}")
            stack.append((step, "read"))
    for (tid, key), stack in held.items():
        for start, mode in stack:
            close(tid, key, start, mode, last, "")
    return spans


def _failed_trylocks(trace: tuple[tuple[int, int, int, object], ...]) -> list[Instant]:
    """A failed trylock (the sim's ``try-<event>-failed`` note) as an instant of category
    ``trylock-failed`` on its task's lane: an attempt, never a hold."""
    found = []
    for step, tid, op, label in trace:
        if op != NOTE:
            continue
        event, resource = _note(label)
        if event.startswith("try-") and event.endswith("-failed"):
            key, name = short_resource(resource)
            tried = event.removeprefix("try-").removesuffix("-failed")
            found.append(
                Instant(step, tid, "trylock-failed", name, f"{key}: {tried} tried, failed")
            )
    return found


def _wait_spans(rows: tuple[StepRow, ...], last: int) -> list[Span]:
    ran: dict[int, list[int]] = {}
    for row in rows:
        if row.lane is not None:
            ran.setdefault(row.lane, []).append(row.step)
    spans: list[Span] = []
    for row in rows:
        if row.lane is None or row.action not in ("park", "sleep"):
            continue
        later = [s for s in ran[row.lane] if s > row.step]
        end = later[0] - 1 if later else max(last, row.step)
        category = "wait" if row.action == "park" else "sleep"
        name = short_resource(row.text)[1] if category == "wait" else row.text
        spans.append(
            Span(row.lane, category, name, row.step, end, "", row.text, is_open=not later)
        )
    return spans


def _window_spans(events: tuple[Event, ...], finder: _LaneFinder, last: int) -> list[Span]:
    open_: dict[tuple[str, str], list[Event]] = {}
    spans: list[Span] = []

    def span(begin: Event, end: Event | None) -> Span:
        family = begin.kind.removesuffix("-begin")
        lane = finder.find(begin.task, begin.step)
        assert lane is not None  # callers skip events of unknown tasks
        return Span(
            lane,
            family,
            begin.key,
            begin.step,
            end.step if end is not None else max(last, begin.step),
            "",
            begin.detail,
            end.detail if end is not None else "",
            is_open=end is None,
        )

    for e in events:
        if e.kind.endswith("-begin"):
            if finder.find(e.task, e.step) is not None:
                open_.setdefault((e.kind.removesuffix("-begin"), e.key), []).append(e)
        elif e.kind.endswith("-end"):
            pending = open_.get((e.kind.removesuffix("-end"), e.key))
            if pending:
                spans.append(span(pending.pop(0), e))
    for pending in open_.values():
        spans.extend(span(begin, None) for begin in pending)
    return spans


def _instants(events: tuple[Event, ...], finder: _LaneFinder) -> tuple[Instant, ...]:
    instants: list[Instant] = []
    opened: dict[tuple[str, str], int] = {}
    for e in events:
        if e.kind == "violation":
            continue  # the execution's violations are the marks
        if e.kind.endswith("-begin"):
            k = (e.kind.removesuffix("-begin"), e.key)
            opened[k] = opened.get(k, 0) + 1
            continue
        lane = finder.find(e.task, e.step)
        if e.kind.endswith("-end"):
            k = (e.kind.removesuffix("-end"), e.key)
            if opened.get(k, 0) > 0:
                opened[k] -= 1
                continue
            instants.append(
                Instant(e.step, lane, e.kind, e.key, f"{e.detail} (no begin)", e.address)
            )
            continue
        instants.append(Instant(e.step, lane, e.kind, e.key, e.detail, e.address))
    instants.sort(key=lambda i: i.step)
    return tuple(instants)


def _cycle(deadlock: object) -> tuple[WaitEdge, ...]:
    """The wait-for cycle of a sim `Deadlock` (``cycle[i]`` waits on ``cycle[i + 1]``)."""
    found = tuple(getattr(deadlock, "cycle", ()) or ())
    edges = []
    if len(found) == 1 and not getattr(found[0], "waits_on_itself", True):
        return ()  # a completion's waiter with everyone behind it: no edge to itself
    for i, blocked in enumerate(found):
        holder = found[(i + 1) % len(found)]
        edges.append(
            WaitEdge(int(blocked.task_id), short_resource(blocked.waits_for)[1], holder.task_id)
        )
    return tuple(edges)


def fold_spans(spans: Sequence[Span]) -> tuple[Span, ...]:
    """`spans` with back-to-back repeats folded: spans on one lane with the same category,
    name and mode, each starting at most one step after the previous ended, become one
    span named ``"name x16"`` whose detail says how many and over which steps (a setup
    that takes ``mmap_sem`` sixteen times is one bar, not sixteen).  Order is kept."""
    groups: dict[tuple[int, str, str, str], list[Span]] = {}
    out: list[list[Span]] = []
    for span in sorted(spans, key=lambda s: (s.start, s.lane, s.end)):
        key = (span.lane, span.category, span.name, span.mode)
        run = groups.get(key)
        if run is not None and not run[-1].is_open and span.start <= run[-1].end + 1:
            run.append(span)
            continue
        run = [span]
        groups[key] = run
        out.append(run)
    folded: list[Span] = []
    for run in out:
        if len(run) == 1:
            folded.append(run[0])
            continue
        first, last = run[0], run[-1]
        n = len(run)
        folded.append(
            attrs.evolve(
                first,
                name=f"{first.name} x{n}",
                end=max(s.end for s in run),
                detail=f"{first.detail or first.name}: {n} times, steps {first.start}-{last.end}",
                end_detail=last.end_detail,
                is_open=last.is_open,
            )
        )
    folded.sort(key=lambda s: (s.start, s.lane, s.end))
    return tuple(folded)
