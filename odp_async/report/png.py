"""A timeline as a PNG picture (matplotlib, from the optional ``plot`` extra).

Contract
    `render_png(timeline, path, width_px=1400)` draws the `layout` of `timeline` (the same
    picture as `odp_async.report.svg`) with matplotlib's Agg canvas and writes a PNG of
    exactly `width_px` pixels across (the height follows from the content), and returns
    ``(width, height)`` in pixels as written.  See `odp_async.report.layout` for what is
    drawn (verdict title, labelled bars, key, legend, cycle arrows).

    `write_picture(timeline, path, width_px=1400, fmt=None)` writes a PNG or an SVG, by
    `fmt` (``"png"``/``"svg"``) or else by the path's extension (``.svg`` is SVG, anything
    else PNG).  SVG needs no plotting library.

    matplotlib is imported only when a PNG is drawn; no pyplot state is created or touched
    (a `Figure` on its own `FigureCanvasAgg`).  Without matplotlib, `render_png` raises
    `PlotExtraMissing` (an `InvalidArgument` and an `ImportError`) whose one-line message
    names the extra to install: ``pip install 'odp_async[plot]'``.  A path that cannot be
    written raises `InvalidArgument` naming it and the OS error.

Concurrency
    None: a pure function apart from writing one file.

See also
    `odp_async.report.layout`, `odp_async.report.svg`, `odp_async.report.text`.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any, Final

from .._user_files import UnreadableFile, open_output_bytes
from ..errors import InvalidArgument
from .layout import CHAR_EM, Drawing, layout
from .svg import write_svg
from .timeline import Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PlotExtraMissing", "draw_figure", "render_png", "write_picture"]

_DPI: Final = 100
_PT_PER_PX: Final = 72 / _DPI
_MONO: Final = "DejaVu Sans Mono"
_MARKER_SHAPES: Final = {
    "triangle-up": "^",
    "triangle-down": "v",
    "circle": "o",
    "diamond": "D",
    "square": "s",
    "plus": "P",
    "x": "X",
}


class PlotExtraMissing(InvalidArgument, ImportError):
    """PNG drawing needs matplotlib, from the ``plot`` extra, and it is not installed."""


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotExtraMissing(
            "drawing a PNG needs matplotlib, which is not installed: "
            "pip install 'odp_async[plot]' (or write an .svg, which needs nothing)"
        ) from None
    return Figure, FigureCanvasAgg


def draw_figure(drawing: Drawing) -> Any:
    """A matplotlib `Figure` (on its own Agg canvas) showing `drawing`, one data unit per
    pixel, y downwards.  Raises `PlotExtraMissing` without matplotlib."""
    figure_cls, canvas_cls = _matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Rectangle

    d = drawing
    fig = figure_cls(figsize=(d.width / _DPI, d.height / _DPI), dpi=_DPI)
    canvas_cls(fig)
    ax: Axes = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, d.width)
    ax.set_ylim(d.height, 0)
    ax.set_axis_off()
    for line in d.lines:
        if line.role in ("grid", "rule", "axis"):
            ax.add_line(
                Line2D(
                    [line.x1, line.x2],
                    [line.y1, line.y2],
                    color=line.colour,
                    linewidth=line.width * _PT_PER_PX * 1.4,
                    zorder=1,
                )
            )
    for r in d.rects:
        ax.add_patch(
            Rectangle(
                (r.x, r.y),
                max(r.w, 0.5),
                r.h,
                facecolor=r.fill,
                edgecolor=r.stroke if r.stroke != "none" else "none",
                linewidth=0.5,
                hatch="///" if r.hatch else None,
                zorder=2,
            )
        )
    for line in d.lines:
        if line.role in ("grid", "rule", "axis"):
            continue
        lw = line.width * _PT_PER_PX * 1.4
        if line.arrow:
            ax.add_patch(
                FancyArrowPatch(
                    (line.x1, line.y1),
                    (line.x2, line.y2),
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color=line.colour,
                    linewidth=lw,
                    zorder=5,
                    shrinkA=0,
                    shrinkB=0,
                )
            )
        else:
            ax.add_line(
                Line2D(
                    [line.x1, line.x2],
                    [line.y1, line.y2],
                    color=line.colour,
                    linewidth=lw,
                    linestyle="--" if line.dashed else "-",
                    zorder=5,
                )
            )
    for m in d.markers:
        ax.plot(
            [m.x],
            [m.y],
            marker=_MARKER_SHAPES.get(m.shape, "P"),
            color=m.colour,
            markeredgecolor="black" if m.shape not in ("x", "plus") else m.colour,
            markeredgewidth=0.5,
            markersize=m.size * _PT_PER_PX * 1.1,
            linestyle="",
            zorder=6,
        )
    for t in d.texts:
        ax.text(
            t.x,
            t.y,
            t.text,
            fontsize=t.size * _PT_PER_PX,
            fontfamily=_MONO,
            ha={"start": "left", "middle": "center", "end": "right"}[t.anchor],
            va="baseline",
            color=t.colour,
            weight="bold" if t.bold else "normal",
            zorder=7,
            clip_on=False,
        )
    return fig


def render_png(
    timeline: Timeline, path: str | os.PathLike[str], *, width_px: int = 1400
) -> tuple[int, int]:
    """Draw `timeline` into a PNG at `path`, `width_px` wide; return ``(width, height)``.

    Raises: `InvalidArgument` for a `width_px` outside 400..20000, or naming `path` and
    the OS error when it cannot be written; `PlotExtraMissing` without matplotlib.
    """
    drawing = layout(timeline, width_px)
    fig = draw_figure(drawing)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    width, height = fig.canvas.get_width_height()
    try:
        with open_output_bytes(path) as f:
            f.write(buf.getvalue())
    except UnreadableFile as err:
        raise InvalidArgument(
            f"cannot write the PNG to {os.fspath(path)!r}: {err.reason}"
        ) from None
    except OSError as err:
        raise InvalidArgument(
            f"cannot write the PNG to {os.fspath(path)!r}: {err.strerror or err}"
        ) from None
    return int(width), int(height)


def write_picture(
    timeline: Timeline,
    path: str | os.PathLike[str],
    *,
    width_px: int = 1400,
    fmt: str | None = None,
) -> tuple[int, int]:
    """Write `timeline` as ``fmt`` (``"png"`` or ``"svg"``; default: by `path`'s
    extension, ``.svg`` for SVG, ``.png`` or none for PNG); return ``(width, height)``
    in px.

    Raises: `InvalidArgument` for an unknown `fmt`, a path whose extension is neither
    (``x.jpg``: no other format is written, and PNG bytes under another name would
    mislead) when `fmt` is not given, a bad width or an unwritable path;
    `PlotExtraMissing` for a PNG without matplotlib.
    """
    if fmt is None:
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        if suffix not in ("", ".png", ".svg"):
            raise InvalidArgument(
                f"a timeline picture is written as .png or .svg, got {os.fspath(path)!r} "
                "(or give fmt='png' or fmt='svg')"
            )
        fmt = "svg" if suffix == ".svg" else "png"
    if fmt == "svg":
        return write_svg(timeline, path, width_px=width_px)
    if fmt == "png":
        return render_png(timeline, path, width_px=width_px)
    raise InvalidArgument(f"a timeline picture is 'png' or 'svg', got {fmt!r}")


assert CHAR_EM > 0.6  # layout plans for DejaVu Sans Mono's 0.602 em advance
