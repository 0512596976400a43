"""A timeline as a PNG picture: one swimlane per task, steps across, spans as coloured bars.

Contract
    `render_png(timeline, path, width_px=1400)` draws the timeline with matplotlib's Agg
    canvas and writes a PNG of exactly `width_px` pixels across (the height grows with the
    number of tasks), and returns ``(width, height)`` in pixels as written.

    - y: one lane per task, in task-id order from the top, named on the axis; x: steps
      (step ``s`` is the cell ``[s, s + 1)``).
    - In each lane: window bars on top (invalidation windows orange, fault attempts green,
      register / deregister / exit windows purple and greys), lock holds below them (dark
      blue: write or exclusive, light blue: read, labelled with the lock when wide
      enough); bars never overlap, each takes a row of its own when needed.  A span never
      closed is hatched.  Along the bottom of the lane a dark tick marks each step the task
      ran.
    - Instants are markers (install, zap, DMA, warning, ...); each violation is a red
      vertical line at its step, with its kind written at the top and a red cross on its
      task's lane; the first violation's text is under the title.
    - The title names the run (`Timeline.title`), its outcome and its length; a legend
      under the plot lists what is drawn.

    matplotlib is imported only when `render_png` runs; no pyplot state is created or
    touched (a `Figure` on its own `FigureCanvasAgg`).  A path that cannot be written
    raises `InvalidArgument` naming it and the OS error.

Concurrency
    None: a pure function apart from writing one file.

See also
    `odp_async.report.timeline`, `odp_async.report.text` (the same, as text).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ..errors import InvalidArgument
from .timeline import Span, Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["render_png"]

_DPI: Final = 100
_LANE_PX: Final = 78
_TOP_PX: Final = 92  # the title, the violation text and the violation labels
_BOTTOM_PX: Final = 120  # the step axis and the legend
_LEFT_PX: Final = 150  # task names
_RIGHT_PX: Final = 30

_COLOURS: Final = {
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
_CATEGORY_LABELS: Final = {
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
# Instant kind -> (marker, colour).
_MARKERS: Final = {
    "install": ("^", "#006d2c"),
    "zap": ("v", "#a50f15"),
    "dma": ("o", "#08306b"),
    "warning": ("D", "#fec44f"),
    "mm-release": ("s", "#525252"),
}
_OTHER_MARKER: Final = ("P", "#525252")
_VIOLATION: Final = "#d7301f"
_RUN_TICK: Final = "#636363"

# Inside a lane of height 1 centred on its index: spans in [-0.42, 0.26), run ticks below.
_SPAN_TOP: Final = -0.42
_SPAN_HEIGHT: Final = 0.68
_TICK_TOP: Final = 0.31
_TICK_HEIGHT: Final = 0.08


def _colour_key(span: Span) -> str:
    if span.is_lock:
        return "lock-read" if span.mode == "read" else "lock-write"
    return span.category if span.category in _COLOURS else "other"


def _pack(spans: Sequence[Span]) -> list[int]:
    """A row per span so that spans in one row do not overlap (first fit, by start)."""
    order = sorted(range(len(spans)), key=lambda k: (spans[k].start, -spans[k].end, k))
    row_end: list[int] = []  # per row: the first free step
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


def _fit_label(text: str, bar_px: float, fontsize: float) -> str:
    """`text`, cut with an ellipsis to fit a bar `bar_px` wide; "" when 4 chars do not."""
    fits = int((bar_px - 8) / (fontsize * 0.85))
    if fits >= len(text):
        return text
    return text[: fits - 1] + "…" if fits >= 4 else ""


def render_png(
    timeline: Timeline, path: str | os.PathLike[str], *, width_px: int = 1400
) -> tuple[int, int]:
    """Draw `timeline` into a PNG at `path`, `width_px` wide; return ``(width, height)``.

    Raises: `InvalidArgument` for a `width_px` outside 400..20000, or naming `path` and
    the OS error when it cannot be written.
    """
    if (
        not isinstance(width_px, int)
        or isinstance(width_px, bool)
        or not (400 <= width_px <= 20000)
    ):
        raise InvalidArgument(
            f"render_png() needs an int width_px in 400..20000, got {width_px!r}"
        )
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"render_png() draws with matplotlib, which is not importable ({err}); "
            "install it with `pip install matplotlib`"
        ) from err

    n = max(1, len(timeline.lanes))
    height_px = _TOP_PX + _BOTTOM_PX + n * _LANE_PX
    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=_LEFT_PX / width_px,
        right=1 - _RIGHT_PX / width_px,
        top=1 - _TOP_PX / height_px,
        bottom=_BOTTOM_PX / height_px,
    )
    ax = fig.add_subplot(1, 1, 1)
    _draw(
        ax,
        timeline,
        plot_width_px=width_px - _LEFT_PX - _RIGHT_PX,
        plot_height_px=height_px - _TOP_PX - _BOTTOM_PX,
    )

    title = f"{timeline.title}: {timeline.outcome}, {timeline.steps} steps"
    fig.suptitle(title, x=0.5, y=1 - 10 / height_px, va="top", fontsize=13, weight="bold")
    first = timeline.violation
    if first is not None:
        limit = max(40, width_px // 7)
        text = first.text if len(first.text) <= limit else first.text[: limit - 1] + "…"
        fig.text(
            0.5, 1 - 36 / height_px, text, ha="center", va="top", fontsize=9, color=_VIOLATION
        )
    elif timeline.deadlock is not None:
        fig.text(
            0.5,
            1 - 36 / height_px,
            f"deadlock: {timeline.deadlock}"[: width_px // 7],
            ha="center",
            va="top",
            fontsize=9,
            color=_VIOLATION,
        )

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    size = canvas.get_width_height()
    try:
        with open(path, "wb") as f:
            f.write(buf.getvalue())
    except OSError as err:
        raise InvalidArgument(
            f"cannot write the PNG to {os.fspath(path)!r}: {err.strerror or err}"
        ) from None
    return int(size[0]), int(size[1])


def _draw(ax: Axes, timeline: Timeline, *, plot_width_px: int, plot_height_px: int) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    lanes = timeline.lanes
    index = {lane.task_id: i for i, lane in enumerate(lanes)}
    last = max(1, timeline.steps)
    px_per_step = plot_width_px / (last + 1)
    used: dict[str, None] = {}

    for i, lane in enumerate(lanes):
        mine = [s for s in timeline.spans if s.lane == lane.task_id]
        windows = [s for s in mine if not s.is_lock]
        locks = [s for s in mine if s.is_lock]
        w_rows, l_rows = _pack(windows), _pack(locks)
        n_w = max(w_rows, default=-1) + 1
        n_rows = max(1, n_w + max(l_rows, default=-1) + 1)
        h = _SPAN_HEIGHT / n_rows
        placed = [*zip(windows, w_rows, strict=True)]
        placed += [(s, n_w + r) for s, r in zip(locks, l_rows, strict=True)]
        for span, row in placed:
            key = _colour_key(span)
            used[key] = None
            y = i + _SPAN_TOP + row * h
            width = span.end - span.start + 1
            ax.broken_barh(
                [(span.start, width)],
                (y + h * 0.06, h * 0.88),
                facecolors=_COLOURS[key],
                edgecolors="white" if not span.is_open else "#303030",
                linewidth=0.6,
                hatch="///" if span.is_open else None,
            )
            fontsize = min(8.0, max(5.5, h * _LANE_PX * 0.55))
            label = _fit_label(span.name, width * px_per_step, fontsize)
            if label:
                ax.text(
                    span.start + width / 2,
                    y + h / 2,
                    label,
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if key in ("lock-write", "deregister", "exit") else "black",
                    clip_on=True,
                )
        ran = [(row.step, 1) for row in timeline.rows if row.lane == lane.task_id]
        if ran:
            ax.broken_barh(ran, (i + _TICK_TOP, _TICK_HEIGHT), facecolors=_RUN_TICK)
        if i:
            ax.axhline(i - 0.5, color="#d0d0d0", linewidth=0.8)

    seen_kinds: dict[str, None] = {}
    for kind in dict.fromkeys(inst.category for inst in timeline.instants):
        marker, colour = _MARKERS.get(kind, _OTHER_MARKER)
        pts = [
            inst for inst in timeline.instants if inst.category == kind and inst.lane is not None
        ]
        if not pts:
            continue
        seen_kinds[kind] = None
        ax.scatter(
            [p.step + 0.5 for p in pts],
            [index[p.lane] - 0.06 for p in pts if p.lane is not None],
            marker=marker,
            s=46,
            color=colour,
            edgecolors="black",
            linewidths=0.5,
            zorder=4,
        )

    by_step: dict[int, list[str]] = {}
    for mark in timeline.violations:
        by_step.setdefault(mark.step, []).append(mark.kind)
    for n, (step, kinds) in enumerate(sorted(by_step.items())):
        x = step + 0.5
        ax.axvline(
            x,
            color=_VIOLATION,
            linewidth=2.2 if n == 0 else 1.4,
            zorder=5,
            linestyle="-" if n == 0 else "--",
        )
        names = list(dict.fromkeys(kinds))
        text = ", ".join(f"{k} x{kinds.count(k)}" if kinds.count(k) > 1 else k for k in names)
        ax.annotate(
            f"{text} (step {step})",
            xy=(x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 4 + 12 * (n % 2)),  # staggered: neighbours do not overlap
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8.5,
            color=_VIOLATION,
            weight="bold",
            annotation_clip=False,
        )
    crosses = [
        (m.step + 0.5, index[m.lane] + 0.2) for m in timeline.violations if m.lane is not None
    ]
    if crosses:
        ax.scatter(
            [c[0] for c in crosses],
            [c[1] for c in crosses],
            marker="X",
            s=110,
            color=_VIOLATION,
            edgecolors="white",
            linewidths=0.8,
            zorder=6,
        )

    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(0.5, last + 1.5)
    ax.set_yticks(range(len(lanes)), [lane.title for lane in lanes], fontsize=10)
    ax.set_xlabel("step", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#ececec", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    handles: list[Patch | Line2D] = [
        Patch(facecolor=_COLOURS[k], label=_CATEGORY_LABELS[k]) for k in _COLOURS if k in used
    ]
    handles.append(Patch(facecolor=_RUN_TICK, label="task ran this step"))
    for kind in seen_kinds:
        marker, colour = _MARKERS.get(kind, _OTHER_MARKER)
        handles.append(
            Line2D(
                [],
                [],
                linestyle="",
                marker=marker,
                color=colour,
                markeredgecolor="black",
                label=kind,
            )
        )
    if timeline.violations:
        handles.append(
            Line2D([], [], color=_VIOLATION, linewidth=2.2, marker="X", label="violation")
        )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -46 / plot_height_px),
        ncol=min(6, len(handles)),
        fontsize=8.5,
        frameon=False,
    )
