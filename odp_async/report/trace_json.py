"""A timeline as Chrome trace-event JSON, for Perfetto (ui.perfetto.dev) or chrome://tracing.

Contract
    `render_trace(timeline)` returns a JSON-ready dict in the trace-event format
    (``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``);
    `write_trace(timeline, path)` writes it as UTF-8 JSON.  The same timeline gives the
    same dict, event for event.

    - Time: step ``s`` occupies ``[s * 1000, (s + 1) * 1000)`` microseconds, so one step
      reads as one millisecond.  A span over steps ``[start, end]`` is a complete event
      (``ph: "X"``) at ``ts = start * 1000`` with ``dur = (end - start + 1) * 1000``.
    - One process (pid 1, named after the timeline), one thread per task (``tid`` = task
      id + 1, ``thread_name`` metadata).  Complete events on one thread must nest, and a
      lock hold and a window need not, so spans that would overlap without nesting go to
      an extra thread of the same task (``"fault (2)"``) sorted right under it.
    - Categories (``cat``): ``step`` (what the task did in that step: every step that
      ran is an event, named with where the task stopped), ``lock`` (named after the
      lock, ``args.mode`` read / write / exclusive), ``invalidate``, ``fault``,
      ``register``, ``deregister``, ``exit``; instants (``ph: "i"``, ``s: "t"``) for
      installs, zaps, DMA, warnings; each violation is a global instant (``s: "g"``,
      ``cat: "violation"``) whose ``args.text`` is the full description.
    - ``otherData`` carries the title, outcome, step count, the first violation's text
      and the deadlock's, if any.

    `write_trace` raises `InvalidArgument` naming the path and the OS error when the file
    cannot be written.

Concurrency
    None: pure functions (`write_trace` writes one file).

See also
    `odp_async.report.timeline`; the trace-event format ("Trace Event Format", Google,
    docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
"""

from __future__ import annotations

import json
import os
from typing import Any, Final

from .._user_files import UnreadableFile, open_output
from ..errors import InvalidArgument
from .timeline import Span, Timeline

__all__ = ["render_trace", "write_trace"]

_PID: Final = 1
_US_PER_STEP: Final = 1000
#: Extra threads of a task get tids past every task's: tid = task id + 1 + level * stride.
_LEVEL_STRIDE: Final = 10_000

Json = dict[str, Any]


def _ts(step: int) -> int:
    return step * _US_PER_STEP


def _nest_levels(items: list[tuple[int, int, int]]) -> dict[int, int]:
    """Item key -> level, so that each level's ``[start, end)`` ranges nest or are apart.

    `items` are ``(start, end, key)``.  Greedy, in order of start (longest first on ties):
    an item goes to the first level where, once the ranges ended by its start are popped,
    the innermost open range contains it.
    """
    levels: list[list[tuple[int, int]]] = []  # per level: the stack of open ranges
    placed: dict[int, int] = {}
    for start, end, key in sorted(items, key=lambda t: (t[0], -t[1], t[2])):
        for n, stack in enumerate(levels):
            while stack and stack[-1][1] <= start:
                stack.pop()
            if not stack or stack[-1][1] >= end:
                stack.append((start, end))
                placed[key] = n
                break
        else:
            levels.append([(start, end)])
            placed[key] = len(levels) - 1
    return placed


def _span_args(span: Span) -> Json:
    args: Json = {"detail": span.detail, "steps": f"{span.start}..{span.end}"}
    if span.mode:
        args["mode"] = span.mode
    if span.end_detail:
        args["end"] = span.end_detail
    if span.is_open:
        args["open"] = "never closed: cut at the last step"
    return args


def render_trace(timeline: Timeline) -> Json:
    """`timeline` as a trace-event dict (see the module docstring for the mapping)."""
    tid_of = {lane.task_id: lane.task_id + 1 for lane in timeline.lanes}
    title_of = {lane.task_id: lane.title for lane in timeline.lanes}

    # Complete events per lane, before their tid is known: (start, end, key) ranges.
    complete: list[tuple[int, Json]] = []  # (lane task id, event without tid)
    for row in timeline.rows:
        if row.lane is None:
            continue
        name = {"park": "wait ", "sleep": "sleep "}.get(row.action, "") + (
            row.text if row.action != "end" else "(ends)"
        )
        args: Json = {"step": row.step, "action": row.action}
        if row.notes:
            args["locks"] = [f"{event} {what}" for event, what in row.notes]
        complete.append(
            (
                row.lane,
                {
                    "name": name,
                    "cat": "step",
                    "ph": "X",
                    "ts": _ts(row.step),
                    "dur": _US_PER_STEP,
                    "pid": _PID,
                    "args": args,
                },
            )
        )
    for span in timeline.spans:
        name = f"{span.name} ({span.mode})" if span.mode else span.name
        complete.append(
            (
                span.lane,
                {
                    "name": name,
                    "cat": span.category,
                    "ph": "X",
                    "ts": _ts(span.start),
                    "dur": (span.end - span.start + 1) * _US_PER_STEP,
                    "pid": _PID,
                    "args": _span_args(span),
                },
            )
        )

    events: list[Json] = []
    extra_threads: dict[int, set[int]] = {}
    for lane in timeline.lanes:
        mine = [(k, ev) for k, (tid, ev) in enumerate(complete) if tid == lane.task_id]
        levels = _nest_levels([(ev["ts"], ev["ts"] + ev["dur"], k) for k, ev in mine])
        for k, ev in mine:
            level = levels[k]
            if level:
                extra_threads.setdefault(lane.task_id, set()).add(level)
            events.append({**ev, "tid": tid_of[lane.task_id] + level * _LEVEL_STRIDE})

    for inst in timeline.instants:
        tid = tid_of[inst.lane] if inst.lane is not None else 0
        args = {"detail": inst.detail, "key": inst.name, "step": inst.step}
        if inst.address is not None:
            args["address"] = f"{inst.address:#x}"
        events.append(
            {
                "name": f"{inst.category} {inst.name}",
                "cat": inst.category,
                "ph": "i",
                "s": "t" if inst.lane is not None else "p",
                "ts": _ts(inst.step) + _US_PER_STEP // 2,
                "pid": _PID,
                "tid": tid,
                "args": args,
            }
        )
    for n, mark in enumerate(timeline.violations):
        events.append(
            {
                "name": f"violation: {mark.kind}",
                "cat": "violation",
                "ph": "i",
                "s": "g",
                "ts": _ts(mark.step) + _US_PER_STEP // 2,
                "pid": _PID,
                "tid": tid_of[mark.lane] if mark.lane is not None else 0,
                "args": {
                    "text": mark.text,
                    "kind": mark.kind,
                    "step": mark.step,
                    "tasks": list(mark.tasks),
                    "first": n == 0,
                },
            }
        )
    events.sort(key=lambda e: (e["ts"], -e.get("dur", 0), e["tid"], e["cat"], e["name"]))

    meta: list[Json] = [
        {
            "name": "process_name",
            "ph": "M",
            "ts": 0,
            "pid": _PID,
            "tid": 0,
            "args": {"name": f"{timeline.title} ({timeline.outcome})"},
        }
    ]
    for lane in timeline.lanes:
        base = tid_of[lane.task_id]
        threads = [(base, lane.title, 0)]
        for level in sorted(extra_threads.get(lane.task_id, ())):
            threads.append((base + level * _LEVEL_STRIDE, f"{lane.title} ({level + 1})", level))
        for tid, name, level in threads:
            meta.append(
                {
                    "name": "thread_name",
                    "ph": "M",
                    "ts": 0,
                    "pid": _PID,
                    "tid": tid,
                    "args": {"name": name},
                }
            )
            meta.append(
                {
                    "name": "thread_sort_index",
                    "ph": "M",
                    "ts": 0,
                    "pid": _PID,
                    "tid": tid,
                    "args": {"sort_index": base * 100 + level},
                }
            )

    first = timeline.violation
    return {
        "traceEvents": [*meta, *events],
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "odp_async.report",
            "title": timeline.title,
            "outcome": timeline.outcome,
            "steps": timeline.steps,
            "time_unit": "1 step = 1 ms",
            "tasks": [title_of[lane.task_id] for lane in timeline.lanes],
            "violation": first.text if first is not None else None,
            "deadlock": timeline.deadlock,
        },
    }


def write_trace(timeline: Timeline, path: str | os.PathLike[str]) -> None:
    """Write `render_trace(timeline)` to `path` as JSON (UTF-8).

    Raises: `InvalidArgument` naming `path` and the OS error if it cannot be written.
    """
    text = json.dumps(render_trace(timeline), indent=1, ensure_ascii=False)
    try:
        with open_output(path) as f:
            f.write(text)
    except UnreadableFile as err:
        raise InvalidArgument(
            f"cannot write the trace to {os.fspath(path)!r}: {err.reason}"
        ) from None
    except OSError as err:
        raise InvalidArgument(
            f"cannot write the trace to {os.fspath(path)!r}: {err.strerror or err}"
        ) from None
