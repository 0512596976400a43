"""A timeline as plain text: one column per task, one row per step.

Contract
    `render_text(timeline, width=None)` returns the whole picture as one string, about
    `width` columns wide; None means the terminal's width (``shutil.get_terminal_size``,
    80 when there is no terminal).  Apart from that query, the same timeline gives the
    same text (no clock, no colour codes):

    - a header: the run (title, outcome, steps), every violation (the first prefixed
      ``>>``), the deadlock if any, and a legend naming the lock letters and marks;
    - a column per lane, titled with the task's name;
    - a row per step that ran.  The task that ran it shows where it stopped: what it is
      about to do, ``wait <what>`` when it blocked, ``sleep until t=...``, ``(ends)``
      (a primitive shows as ``mmap_sem [RWLock]`` so that a cut keeps its name);
    - each cell starts with the task's marks for that step: a letter per lock it holds
      (lower case: read; upper case: write, a mutex, a slot), ``.`` while it is blocked,
      ``z`` while it sleeps, ``|`` while an invalidation
      window is open, ``:`` during a fault attempt, ``=``/``~``/``#`` during a register,
      deregister or exit window, ``*`` any other window.  Under the row, in the task's
      column: ``+name`` / ``-name`` where a window opens / closes, ``* what`` for an
      instant event, ``!! kind`` for a violation;
    - a violation's step row starts with ``>>``, and its full text follows the row;
    - a run of consecutive steps where one task does the same thing with nothing else
      happening (a setup faulting sixteen pages in) is one row, ``8-23`` with ``(x16)``;
    - places are addresses everywhere (``dma(B, 0x14000)``, never a page number).

    Labels are cut to the column with ``…``; a column's title too long for it keeps the
    last part of a qualified name (``…updater`` for ``deposits.<locals>.updater``); the
    violation and header lines wrap instead.

Concurrency
    None: a pure function.

See also
    `odp_async.report.timeline` (the model), `odp_async.report.trace_json` and
    `odp_async.report.png` (the same timeline for Perfetto and as a picture).
"""

from __future__ import annotations

import shutil
import string
import textwrap
from collections.abc import Iterable
from typing import Final

from ..errors import InvalidArgument
from .timeline import Span, StepRow, Timeline, short_resource

__all__ = ["render_text"]

#: What marks each window category in a cell (locks get letters instead).
_WINDOW_MARKS: Final = {
    "invalidate": "|",
    "fault": ":",
    "register": "=",
    "deregister": "~",
    "exit": "#",
    "wait": ".",
    "sleep": "z",
}
#: Spans whose start and end the step rows already tell.
_QUIET: Final = ("wait", "sleep")
_OTHER_WINDOW: Final = "*"
_MIN_COLUMN: Final = 10
_ELLIPSIS: Final = "…"


def render_text(timeline: Timeline, *, width: int | None = None) -> str:
    """`timeline` as text about `width` columns wide (wider when there are many tasks);
    None: the terminal's width.

    Raises: `InvalidArgument` if `width` is not an int of at least 40.
    """
    if width is None:
        width = max(40, shutil.get_terminal_size((80, 24)).columns)
    if not isinstance(width, int) or isinstance(width, bool) or width < 40:
        raise InvalidArgument(f"render_text() needs an int width >= 40, got {width!r}")
    return _TextRenderer(timeline, width).render()


def _fit(text: str, size: int) -> str:
    """`text` cut (with an ellipsis) or padded to exactly `size` characters."""
    if size <= 0:
        return ""
    if len(text) > size:
        return text[: size - 1] + _ELLIPSIS
    return text.ljust(size)


def _fit_title(title: str, size: int) -> str:
    """A lane's title cut to `size`, keeping what tells a task from its siblings: a
    qualified name's last part (``deposits.<locals>.updater`` as ``…updater``)."""
    if len(title) <= size or "." not in title:
        return title
    return _fit(_ELLIPSIS + title.rsplit(".", 1)[1], size).rstrip()


def _lock_keys(spans: Iterable[Span]) -> dict[str, str]:
    """Lock detail -> its letter: the first free letter of its name, else any free one
    (``&`` past 26 locks).  Locks are taken in order of first acquisition."""
    keys: dict[str, str] = {}
    for span in spans:
        if not span.is_lock or span.detail in keys:
            continue
        taken = set(keys.values())
        own = [c for c in span.name.lower() if c in string.ascii_lowercase]
        free = [c for c in [*own, *string.ascii_lowercase] if c not in taken]
        keys[span.detail] = free[0] if free else "&"
    return keys


def _label(text: str) -> str:
    """``RWLock 'mmap_sem'`` as ``mmap_sem [RWLock]``: the name survives a cut column."""
    identity, name = short_resource(text)
    if identity == text and name == text:
        return text
    kind = identity.split(" ", 1)[0]
    return f"{name} [{kind}]{text[len(identity) :]}"


class _TextRenderer:
    def __init__(self, timeline: Timeline, width: int) -> None:
        self.tl = timeline
        self.width = width
        self.keys = _lock_keys(timeline.spans)
        self.lanes = timeline.lanes
        self.index = {lane.task_id: i for i, lane in enumerate(self.lanes)}
        n = max(1, len(self.lanes))
        self.step_w = max(4, 2 * len(str(timeline.steps)) + 1)
        self.col_w = max(_MIN_COLUMN, (width - 2 - self.step_w) // n - 2)
        # Marks per (step, lane index): computed once, read for every row.
        self.marks: dict[tuple[int, int], str] = {}
        self.window_marks: dict[tuple[int, int], str] = {}
        self._collect_marks()
        longest = [0] * len(self.lanes)
        for (_, i), marks in self.marks.items():
            longest[i] = max(longest[i], len(marks))
        self.gutter = [min(m + 1 if m else 0, self.col_w // 2) for m in longest]

    def _collect_marks(self) -> None:
        per_cell: dict[tuple[int, int], list[tuple[int, str]]] = {}
        order = {mark: i for i, mark in enumerate(_WINDOW_MARKS.values())}
        letter_rank = {detail: 100 + i for i, detail in enumerate(self.keys)}
        for span in self.tl.spans:
            i = self.index[span.lane]
            if span.is_lock:
                letter = self.keys[span.detail]
                mark = letter if span.mode == "read" else letter.upper()
                rank = letter_rank[span.detail]
            else:
                mark = _WINDOW_MARKS.get(span.category, _OTHER_WINDOW)
                rank = order.get(mark, len(order))
            for step in range(span.start, span.end + 1):
                per_cell.setdefault((step, i), []).append((rank, mark))
        for cell, found in per_cell.items():
            found.sort()
            marks = "".join(dict.fromkeys(m for _, m in found))
            self.marks[cell] = marks
            windows = "".join(m for m in marks if not m.isalpha() and m != "&")
            if windows:
                self.window_marks[cell] = windows

    # --- the header -----------------------------------------------------------------

    def _wrap(self, text: str, first: str, rest: str) -> list[str]:
        return textwrap.wrap(
            text,
            width=max(20, self.width),
            initial_indent=first,
            subsequent_indent=rest,
            break_long_words=True,
            break_on_hyphens=False,
        ) or [first.rstrip()]

    def header(self) -> list[str]:
        tl = self.tl
        nv = len(tl.violations)
        summary = (
            f"timeline {tl.title}: {tl.verdict} ({nv} violation{'s' if nv != 1 else ''}; "
            f"{tl.steps} steps, {len(tl.lanes)} tasks; the program's outcome: {tl.outcome})"
        )
        lines = self._wrap(summary, "", "    ")
        for n, mark in enumerate(tl.violations):
            lines += self._wrap(mark.text, ">> " if n == 0 else " > ", "   ")
        if tl.deadlock is not None and not any(m.kind == "deadlock" for m in tl.violations):
            lines += self._wrap(f"deadlock: {tl.deadlock}", "   ", "   ")
        if self.keys:
            named = "; ".join(f"{k} = {detail}" for detail, k in self.keys.items())
            lines += self._wrap(f"locks: {named}", "   ", "     ")
        drawn = set("".join(self.window_marks.values())) - {".", "z"}
        windows = (  # the model's windows, only when the timeline has any (not plain code)
            "; | invalidation window open; : fault attempt; = register, ~ deregister, "
            "# exit window; * other window"
            if drawn
            else ""
        )
        legend = (
            "marks: a letter per lock held (lower case: read; upper case: write or "
            f"exclusive); . blocked, z asleep{windows}.  The task that ran a "
            "step shows what it does next, 'wait X' if it blocked on X, '(ends)' if it finished; "
            f"under it {'+x / -x: window x opens / closes, ' if drawn else ''}* an event, "
            "!! a violation"
        )
        lines += self._wrap(legend, "   ", "     ")
        return lines

    # --- the table ------------------------------------------------------------------

    def _line(self, prefix: str, step: str, cells: list[str]) -> str:
        body = "  ".join(_fit(c, self.col_w) for c in cells)
        return f"{prefix:2}{step:>{self.step_w}}  {body}".rstrip()

    def _cell(self, i: int, marks: str, text: str) -> str:
        g = self.gutter[i]
        if g == 0:
            return text
        return _fit(marks, g - 1) + " " + text

    def table_head(self) -> list[str]:
        titles = [_fit_title(lane.title, self.col_w) for lane in self.lanes]
        rule = ["-" * self.col_w for _ in self.lanes]
        return [self._line("", "step", titles), self._line("", "-" * self.step_w, rule)]

    def _what(self, row: StepRow) -> str:
        if row.action == "park":
            return f"wait {_label(row.text)}"
        if row.action == "sleep":
            return f"sleep {row.text}"
        if row.action == "end":
            return "(ends)"
        return _label(row.text)

    def _below(self, step: int) -> dict[int, list[str]]:
        """What happened during `step`, per lane index, in the order it is shown."""
        items: dict[int, list[str]] = {}
        for span in self.tl.spans:
            if span.is_lock or span.category in _QUIET:
                continue
            i = self.index[span.lane]
            if span.start == step:
                items.setdefault(i, []).append(f"+{span.detail or span.name}")
            if span.end == step and not span.is_open:
                closing = span.end_detail if span.end_detail != span.detail else span.name
                items.setdefault(i, []).append(f"-{closing}")
        for inst in self.tl.instants:
            if inst.step == step:
                i = self.index.get(inst.lane, 0) if inst.lane is not None else 0
                items.setdefault(i, []).append(f"* {inst.category} {inst.detail}")
        for mark in self.tl.violations:
            if mark.step == step:
                i = self.index.get(mark.lane, 0) if mark.lane is not None else 0
                items.setdefault(i, []).append(f"!! {mark.kind}")
        return items

    def rows(self) -> list[str]:
        tl = self.tl
        by_step = {row.step: row for row in tl.rows}
        steps = sorted(
            {
                *by_step,
                *(s.start for s in tl.spans),
                *(s.end for s in tl.spans if not s.is_open),
                *(i.step for i in tl.instants),
                *(m.step for m in tl.violations),
            }
        )
        bad = {m.step for m in tl.violations}
        lines: list[str] = []
        n = len(self.lanes)
        k = 0
        while k < len(steps):
            step = steps[k]
            row = by_step.get(step)
            below = self._below(step)
            # fold a run of identical quiet steps of one task into one row
            run_end = k
            if row is not None and not below and step not in bad:
                sig = self._signature(step, row)
                while run_end + 1 < len(steps):
                    nxt = steps[run_end + 1]
                    nrow = by_step.get(nxt)
                    if (
                        nxt != steps[run_end] + 1
                        or nrow is None
                        or nxt in bad
                        or self._below(nxt)
                        or self._signature(nxt, nrow) != sig
                    ):
                        break
                    run_end += 1
            count = run_end - k + 1
            cells = []
            for i in range(n):
                ran = row is not None and row.lane is not None and self.index[row.lane] == i
                text = self._what(row) if ran and row is not None else ""
                if ran and count > 1:
                    text = f"(x{count}) {text}"
                cells.append(self._cell(i, self.marks.get((step, i), ""), text))
            if row is not None and row.lane is None:
                cells.append(f"(a task {self._what(row)})")  # unknown lane: after the columns
            prefix = ">>" if step in bad else ""
            label = str(step) if count == 1 else f"{step}-{steps[run_end]}"
            lines.append(self._line(prefix, label, cells))
            depth = max((len(v) for v in below.values()), default=0)
            for d in range(depth):
                sub = []
                for i in range(n):
                    items = below.get(i, [])
                    text = items[d] if d < len(items) else ""
                    sub.append(self._cell(i, self.window_marks.get((step, i), ""), text))
                lines.append(self._line("", "", sub))
            for mark in tl.violations:
                if mark.step == step:
                    lines += self._wrap(mark.text, ">> ", "   ")
            k = run_end + 1
        return lines

    def _signature(self, step: int, row: StepRow) -> tuple[object, ...]:
        """What a step looks like, apart from its number: who ran, what it does, marks."""
        marks = tuple(self.marks.get((step, i), "") for i in range(len(self.lanes)))
        return (row.lane, row.action, row.text, row.notes, marks)

    def render(self) -> str:
        lines = [*self.header(), "", *self.table_head(), *self.rows()]
        return "\n".join(lines) + "\n"
