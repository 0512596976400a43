"""A timeline laid out as a picture: rectangles, texts, lines and markers in pixels.

Contract
    `layout(timeline, width_px)` returns a frozen `Drawing` that the SVG and PNG writers
    draw as they are (so both show the same picture, and nothing here imports a plotting
    library).  Pixels: x to the right, y downwards, origin at the top left.

    - The title states the verdict: ``"<title>: stale-translation, stale-dma (44 steps,
      5 tasks)"`` or ``"...: clean (...)"``; under it the first violation's text (or the
      deadlock), wrapped to the width, never cut.
    - A swimlane per task (named on the left), steps across (step ``s`` is the cell
      ``[s, s + 1)``).  Back-to-back repeats are folded (`fold_spans`).  In a lane, window
      bars (invalidation, fault, register, ...) then lock holds, each in a row of its own
      where they overlap.  Every bar is labelled: its full name when it fits, else a short
      key (``m``, ``m2``...) that the key under the legend spells out.  A span still open
      when the run stopped is hatched.  A tick under the bars marks each step the task ran.
    - Instants are markers; a violation is a red vertical line labelled with its kind
      above the lanes (labels kept inside the frame); a deadlock's wait-for cycle is
      arrows from each waiter's lane to the holder's, at the end of the run, labelled with
      what is waited for.
    - The legend names every colour, the hatching, the tick, each marker, the violation
      line and the wait-for arrow; the key names every short label.

    Text widths are computed for a monospace face (`CHAR_EM` em per character), which
    the writers use, so that every text is placed inside the frame by construction.

Concurrency
    None: a pure function.

See also
    `odp_async.report.svg`, `odp_async.report.png` (the writers),
    `odp_async.report.timeline` (the model).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Final

import attrs

from ..errors import InvalidArgument
from .timeline import Span, Timeline

__all__ = [
    "CHAR_EM",
    "COLOURS",
    "CATEGORY_LABELS",
    "Drawing",
    "Line",
    "Marker",
    "Rect",
    "Text",
    "layout",
    "text_width",
]

#: Advance of one character of the monospace face, in em (DejaVu Sans Mono: 0.602).
CHAR_EM: Final = 0.61

COLOURS: Final = {
    "wait": "#fcbba1",
    "sleep": "#fee391",
    "lock-read": "#9ecae1",
    "lock-write": "#2171b5",
    "invalidate": "#fd8d3c",
    "fault": "#41ab5d",
    "register": "#9e9ac8",
    "deregister": "#6a51a3",
    "exit": "#737373",
    "other": "#d9d9d9",
}
CATEGORY_LABELS: Final = {
    "wait": "blocked (waiting)",
    "sleep": "asleep",
    "lock-read": "lock held (read)",
    "lock-write": "lock held (write / exclusive)",
    "invalidate": "invalidation window",
    "fault": "fault attempt",
    "register": "register window",
    "deregister": "deregister window",
    "exit": "exit window",
    "other": "other window",
}
_DARK: Final = ("lock-write", "deregister", "exit")
# Instant kind -> (marker shape, colour).
MARKERS: Final = {
    "install": ("triangle-up", "#006d2c"),
    "zap": ("triangle-down", "#a50f15"),
    "dma": ("circle", "#08306b"),
    "warning": ("diamond", "#fec44f"),
    "mm-release": ("square", "#525252"),
}
OTHER_MARKER: Final = ("plus", "#525252")
VIOLATION: Final = "#d7301f"
ARROW: Final = "#7a0177"
RUN_TICK: Final = "#636363"
GRID: Final = "#ececec"
LANE_RULE: Final = "#d0d0d0"

_PAD: Final = 12
_ROW: Final = 18  # px per bar row
_BAR_FONT: Final = 11.0
_MIN_BAR_FONT: Final = 8.0
_LABEL_FONT: Final = 12.0
_TITLE_FONT: Final = 15.0
_SMALL_FONT: Final = 11.0
_TICK_H: Final = 5
_LANE_GAP: Final = 8


def text_width(text: str, size: float) -> float:
    """The width in px of `text` at `size` px in the monospace face (an upper bound:
    a rasteriser that hints the face rounds each advance up to a whole pixel)."""
    return len(text) * max(size * CHAR_EM, math.ceil(size * 0.602 - 0.05))


@attrs.frozen
class Rect:
    """A filled rectangle (a bar, a run tick, a legend swatch), top-left at (x, y)."""

    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str = "none"
    hatch: bool = False
    #: A tooltip (SVG ``<title>``): the full text of what the bar is.
    tip: str = ""
    #: What it is, for writers and tests: "span", "tick", "swatch", "frame".
    role: str = ""


@attrs.frozen
class Text:
    """A line of text in the monospace face; `size` in px, `y` its baseline."""

    x: float
    y: float  # the baseline
    text: str
    size: float
    anchor: str = "start"  # "start", "middle", "end"
    colour: str = "#000000"
    bold: bool = False
    role: str = ""  # "title", "subtitle", "lane", "bar", "violation", "legend", "key", ...

    @property
    def extent(self) -> tuple[float, float]:
        """``(left, right)`` in px."""
        w = text_width(self.text, self.size)
        left = {"start": self.x, "middle": self.x - w / 2, "end": self.x - w}[self.anchor]
        return left, left + w


@attrs.frozen
class Line:
    """A straight line, dashed or with an arrowhead at its end."""

    x1: float
    y1: float
    x2: float
    y2: float
    colour: str
    width: float = 1.0
    dashed: bool = False
    arrow: bool = False  # an arrowhead at (x2, y2)
    role: str = ""


@attrs.frozen
class Marker:
    """A point marker (an instant event, a violation's cross), centred at (x, y)."""

    x: float
    y: float
    shape: str  # "triangle-up", "triangle-down", "circle", "diamond", "square", "plus", "x"
    colour: str
    size: float = 9.0
    tip: str = ""


@attrs.frozen
class Drawing:
    """A picture in pixels; the writers draw the items in this order."""

    width: int
    height: int
    title: str
    rects: tuple[Rect, ...]
    lines: tuple[Line, ...]
    markers: tuple[Marker, ...]
    texts: tuple[Text, ...]
    #: Where the steps are: x of step ``s``'s cell is ``x0 + (s - first) * px_per_step``.
    x0: float
    px_per_step: float
    first_step: int
    #: The lanes' top and bottom (px), for a cursor drawn over them.
    plot_top: float
    plot_bottom: float

    def step_x(self, step: float) -> float:
        return self.x0 + (step - self.first_step) * self.px_per_step


def _colour_key(span: Span) -> str:
    if span.is_lock:
        return "lock-read" if span.mode == "read" else "lock-write"
    return span.category if span.category in COLOURS else "other"


def _pack(spans: Sequence[Span]) -> list[int]:
    """A row per span so that spans in one row do not overlap (first fit, by start)."""
    order = sorted(range(len(spans)), key=lambda k: (spans[k].start, -spans[k].end, k))
    row_end: list[int] = []
    rows = [0] * len(spans)
    for k in order:
        span = spans[k]
        for n, free in enumerate(row_end):
            if free <= span.start:
                row_end[n] = span.end + 1
                rows[k] = n
                break
        else:
            row_end.append(span.end + 1)
            rows[k] = len(row_end) - 1
    return rows


def _short_keys(spans: Sequence[Span]) -> dict[str, str]:
    """A short key per distinct bar name: its first letters, made unique with a digit."""
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for span in spans:
        if span.name in keys:
            continue
        base_name = span.name.split(" x")[0]
        letters = "".join(c for c in base_name.lower() if c.isalnum())[:1] or "s"
        key, n = letters, 2
        while key in taken:
            key, n = f"{letters}{n}", n + 1
        taken.add(key)
        keys[span.name] = key
    return keys


class _Flow:
    """Lays out items left to right, wrapping at the right margin."""

    def __init__(self, left: float, right: float, top: float, line_h: float) -> None:
        self.left, self.right, self.line_h = left, right, line_h
        self.x, self.y = left, top

    def place(self, width: float) -> tuple[float, float]:
        if self.x > self.left and self.x + width > self.right:
            self.x, self.y = self.left, self.y + self.line_h
        at = (self.x, self.y)
        self.x += width + 18
        return at

    @property
    def bottom(self) -> float:
        return self.y + self.line_h


def _wrap(text: str, width_px: float, size: float) -> list[str]:
    chars = max(20, int(width_px / text_width("x", size)))
    return textwrap.wrap(text, chars, break_long_words=True, break_on_hyphens=False) or [""]


def layout(timeline: Timeline, width_px: int = 1400) -> Drawing:
    """Lay `timeline` out `width_px` wide (the height follows from the content).

    Raises: `InvalidArgument` for a `width_px` that is not an int in 400..20000.
    """
    if (
        not isinstance(width_px, int)
        or isinstance(width_px, bool)
        or not (400 <= width_px <= 20000)
    ):
        raise InvalidArgument(
            f"a timeline picture needs an int width_px in 400..20000, got {width_px!r}"
        )
    tl = timeline.folded()
    W = width_px
    rects: list[Rect] = []
    lines: list[Line] = []
    markers: list[Marker] = []
    texts: list[Text] = []

    # --- title and subtitle -------------------------------------------------------------
    y = _PAD + _TITLE_FONT
    n = len(tl.lanes)
    title = f"{tl.title}: {tl.verdict} ({tl.steps} steps, {n} task{'s' if n != 1 else ''})"
    for part in _wrap(title, W - 2 * _PAD, _TITLE_FONT):
        texts.append(Text(W / 2, y, part, _TITLE_FONT, "middle", bold=True, role="title"))
        y += _TITLE_FONT + 4
    first = tl.violation
    sub = (
        first.text
        if first is not None
        else (f"deadlock: {tl.deadlock}" if tl.deadlock is not None else "")
    )
    if sub:
        for part in _wrap(sub, W - 2 * _PAD, _SMALL_FONT):
            y += 2
            texts.append(
                Text(
                    W / 2,
                    y + _SMALL_FONT - 4,
                    part,
                    _SMALL_FONT,
                    "middle",
                    VIOLATION,
                    role="subtitle",
                )
            )
            y += _SMALL_FONT + 3

    # --- violation labels above the lanes ------------------------------------------------
    by_step: dict[int, list[str]] = {}
    for mark in tl.violations:
        by_step.setdefault(mark.step, []).append(mark.kind)
    n_label_rows = min(2, len(by_step))
    y += 8
    labels_top = y
    y += n_label_rows * (_SMALL_FONT + 4) + 4
    plot_top = y

    # --- the lanes: geometry ------------------------------------------------------------
    lane_w = max([text_width(lane.title, _LABEL_FONT) for lane in tl.lanes] + [40.0])
    x0 = _PAD + lane_w + 10
    steps = max(1, tl.steps)
    # arrows of a deadlock cycle need room right of the last step
    # (the labels go right of the arrows; the full cycle is in the subtitle too)
    longest = max((text_width(e.resource, 10.0) for e in tl.cycle), default=0.0)
    arrow_room = 20.0 * len(tl.cycle) + (min(longest, W / 5) + 24 if tl.cycle else 0.0)
    right = W - _PAD - 6 - arrow_room
    px = max(0.5, (right - x0) / steps)
    first_step = 1

    def sx(step: float) -> float:
        return x0 + (step - first_step) * px

    keys = _short_keys(tl.spans)
    used: dict[str, None] = {}
    hatched = False
    lane_mid: dict[int, float] = {}
    lane_top: dict[int, float] = {}
    for i, lane in enumerate(tl.lanes):
        mine = [s for s in tl.spans if s.lane == lane.task_id]
        windows = [s for s in mine if not s.is_lock]
        locks = [s for s in mine if s.is_lock]
        w_rows, l_rows = _pack(windows), _pack(locks)
        n_w = max(w_rows, default=-1) + 1
        n_rows = max(1, n_w + max(l_rows, default=-1) + 1)
        top = y
        height = n_rows * _ROW + _TICK_H + 4
        lane_top[lane.task_id] = top
        lane_mid[lane.task_id] = top + height / 2
        if i:
            lines.append(
                Line(
                    _PAD,
                    top - _LANE_GAP / 2,
                    W - _PAD,
                    top - _LANE_GAP / 2,
                    LANE_RULE,
                    0.8,
                    role="rule",
                )
            )
        texts.append(
            Text(x0 - 8, top + height / 2 + 4, lane.title, _LABEL_FONT, "end", role="lane")
        )
        placed = [*zip(windows, w_rows, strict=True)]
        placed += [(s, n_w + r) for s, r in zip(locks, l_rows, strict=True)]
        for span, row in placed:
            key = _colour_key(span)
            used[key] = None
            hatched = hatched or span.is_open
            bx, bw = sx(span.start), (span.end - span.start + 1) * px
            by = top + row * _ROW + 1
            tip = span.detail or span.name
            if span.end_detail and span.end_detail != span.detail:
                tip += f" ({span.end_detail})"
            rects.append(
                Rect(
                    bx,
                    by,
                    bw,
                    _ROW - 2,
                    COLOURS[key],
                    "#303030" if span.is_open else "#ffffff",
                    span.is_open,
                    f"steps {span.start}-{span.end}: {tip}",
                    "span",
                )
            )
            label, size = span.name, _BAR_FONT
            if text_width(label, size) > bw - 4:
                label = keys[span.name]
                while size > _MIN_BAR_FONT and text_width(label, size) > bw - 2:
                    size -= 0.5
            cx = bx + bw / 2
            half = text_width(label, size) / 2
            cx = min(max(cx, x0 + half), W - _PAD - half)
            colour = "#ffffff" if key in _DARK and text_width(label, size) <= bw else "#000000"
            if span.is_open:  # the hatching under a label would make it hard to read
                tw = text_width(label, size)
                bg = "#ffffff" if colour == "#000000" else "#303030"
                rects.append(Rect(cx - tw / 2 - 2, by + 2, tw + 4, _ROW - 6, bg, role="label"))
            texts.append(
                Text(cx, by + _ROW / 2 + size * 0.35, label, size, "middle", colour, role="bar")
            )
        ran = [row.step for row in tl.rows if row.lane == lane.task_id]
        # one tick per run of consecutive steps (a long run stays a small picture)
        runs: list[list[int]] = []
        for step in ran:
            if runs and runs[-1][1] == step - 1:
                runs[-1][1] = step
            else:
                runs.append([step, step])
        gap = 0.5 if px >= 3 else 0.0
        for lo, hi in runs:
            rects.append(
                Rect(
                    sx(lo),
                    top + n_rows * _ROW + 2,
                    max((hi - lo + 1) * px - gap, 0.5),
                    _TICK_H,
                    RUN_TICK,
                    tip=f"ran steps {lo}-{hi}" if hi > lo else f"ran step {lo}",
                    role="tick",
                )
            )
        y = top + height + _LANE_GAP
    plot_bottom = y - _LANE_GAP / 2

    # step grid and axis
    tick_every = max(1, _nice_step(steps, (right - x0) / 45))
    axis_y = plot_bottom + 4
    lines.append(Line(x0, axis_y, sx(steps + 1), axis_y, "#606060", 1.0, role="axis"))
    for s in range(first_step, steps + 1):
        if s % tick_every == 0 or s == first_step:
            xs = sx(s + 0.5)
            lines.append(Line(xs, plot_top, xs, axis_y, GRID, 0.6, role="grid"))
            label = str(s)
            half = text_width(label, 10) / 2
            texts.append(
                Text(
                    min(max(xs, half + _PAD), W - _PAD - half),
                    axis_y + 14,
                    label,
                    10,
                    "middle",
                    "#404040",
                    role="axis",
                )
            )
    texts.append(Text(x0 - 8, axis_y + 14, "step", 10, "end", "#404040", role="axis"))
    y = axis_y + 24

    # --- instants and violations ------------------------------------------------------------
    kinds_seen: dict[str, None] = {}
    for inst in tl.instants:
        if inst.lane is None:
            continue
        shape, colour = MARKERS.get(inst.category, OTHER_MARKER)
        kinds_seen[inst.category] = None
        markers.append(
            Marker(
                sx(inst.step + 0.5),
                lane_top[inst.lane] + _ROW / 2,
                shape,
                colour,
                tip=f"step {inst.step}: {inst.detail}",
            )
        )
    for n_v, (step, kinds) in enumerate(sorted(by_step.items())):
        xs = sx(step + 0.5)
        lines.append(
            Line(
                xs,
                labels_top + (n_v % 2) * (_SMALL_FONT + 4) + _SMALL_FONT + 1,
                xs,
                plot_bottom,
                VIOLATION,
                2.2 if n_v == 0 else 1.4,
                dashed=n_v > 0,
                role="violation",
            )
        )
        names = list(dict.fromkeys(kinds))
        label = ", ".join(f"{k} x{kinds.count(k)}" if kinds.count(k) > 1 else k for k in names)
        label = f"{label} (step {step})"
        half = text_width(label, _SMALL_FONT) / 2
        cx = min(max(xs, _PAD + half), W - _PAD - half)
        ty = labels_top + (n_v % 2) * (_SMALL_FONT + 4) + _SMALL_FONT - 2
        texts.append(Text(cx, ty, label, _SMALL_FONT, "middle", VIOLATION, True, role="violation"))
    for mark in tl.violations:
        if mark.lane is not None:
            markers.append(
                Marker(
                    sx(mark.step + 0.5), lane_mid[mark.lane] + 6, "x", VIOLATION, 12, tip=mark.text
                )
            )

    # --- the deadlock's wait-for cycle: waiter -> holder ----------------------------------
    for k, edge in enumerate(tl.cycle):
        if edge.waiter not in lane_mid or edge.holder not in lane_mid:
            continue
        end_x = sx(steps + 1)
        xa = end_x + 12 + 20 * k
        dy = (k - (len(tl.cycle) - 1) / 2) * 7
        y1, y2 = lane_mid[edge.waiter] + dy, lane_mid[edge.holder] + dy
        lines.append(Line(end_x, y1, xa, y1, ARROW, 1.6, role="cycle"))
        lines.append(Line(xa, y1, xa, y2, ARROW, 1.6, role="cycle"))
        lines.append(Line(xa, y2, end_x + 2, y2, ARROW, 1.6, arrow=True, role="cycle"))
        # the label: right of every arrow, level with the waiter's outgoing segment
        label, size = edge.resource, 10.0
        lx = end_x + 12 + 20 * len(tl.cycle)
        room = W - _PAD - lx
        if text_width(label, size) > room:
            keep = max(1, int(room / text_width("x", size)) - 1)
            label = label[:keep] + "…"
        texts.append(Text(lx, y1 + 4, label, size, "start", ARROW, role="cycle"))

    # --- legend ---------------------------------------------------------------------------
    y += 6
    flow = _Flow(_PAD, W - _PAD, y, 20)

    def entry(
        swatch: str, text: str, *, hatch: bool = False, shape: str = "", line: str = ""
    ) -> None:
        w = 22 + text_width(text, _SMALL_FONT)
        ex, ey = flow.place(w)
        if shape:
            markers.append(Marker(ex + 8, ey + 8, shape, swatch))
        elif line:
            lines.append(
                Line(
                    ex, ey + 8, ex + 16, ey + 8, swatch, 2.0, arrow=line == "arrow", role="legend"
                )
            )
        else:
            rects.append(
                Rect(
                    ex,
                    ey + 2,
                    16,
                    12,
                    swatch,
                    "#303030" if hatch else "none",
                    hatch,
                    role="swatch",
                )
            )
        texts.append(Text(ex + 22, ey + 12, text, _SMALL_FONT, role="legend"))

    for key in COLOURS:
        if key in used:
            entry(COLOURS[key], CATEGORY_LABELS[key])
    if hatched:
        entry("#ffffff", "hatched: still open when the run stopped", hatch=True)
    entry(RUN_TICK, "tick: the task ran this step")
    for kind in kinds_seen:
        shape, colour = MARKERS.get(kind, OTHER_MARKER)
        entry(colour, kind, shape=shape)
    if tl.violations:
        entry(VIOLATION, "violation", line="line")
    if tl.cycle:
        entry(ARROW, "waits for (waiter -> holder)", line="arrow")
    y = flow.bottom + 4

    # --- key: the short labels ---------------------------------------------------------
    shown = {t.text for t in texts if t.role == "bar"}
    spelled = [(short, name) for name, short in keys.items() if short in shown and short != name]
    if spelled:
        texts.append(Text(_PAD, y + 12, "key:", _SMALL_FONT, bold=True, role="key"))
        flow = _Flow(_PAD + text_width("key: ", _SMALL_FONT) + 4, W - _PAD, y, 18)
        full = {s.name: s.detail or s.name for s in tl.spans}
        for short, name in spelled:
            item = f"{short} = {full.get(name, name)}"
            limit = W - 2 * _PAD - 60
            if text_width(item, _SMALL_FONT) > limit:
                item = item[: int(limit / (_SMALL_FONT * CHAR_EM)) - 1] + "…"
            ex, ey = flow.place(text_width(item, _SMALL_FONT))
            texts.append(Text(ex, ey + 12, item, _SMALL_FONT, role="key"))
        y = flow.bottom + 4
    height = int(y + _PAD)
    return Drawing(
        W,
        height,
        title,
        tuple(rects),
        tuple(lines),
        tuple(markers),
        tuple(texts),
        x0,
        px,
        first_step,
        plot_top,
        plot_bottom,
    )


def _nice_step(steps: int, max_ticks: float) -> int:
    for every in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if steps / every <= max(1.0, max_ticks):
            return every
    return max(1, steps // 10)
