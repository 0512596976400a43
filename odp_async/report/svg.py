"""A timeline as SVG: the `layout` drawing written as one standalone XML document.

Contract
    `render_svg(timeline, width_px=1400)` returns the SVG text; `write_svg(timeline, path,
    width_px=1400)` writes it and returns ``(width, height)`` in px.  No plotting library
    is needed.  Texts use a monospace face (the widths `layout` planned for), bars carry a
    ``<title>`` with their full text (a tooltip in a browser), hatching is an SVG pattern.
    `drawing_svg(drawing, element_id=...)` gives the ``<svg>`` element alone, for
    embedding (the HTML report does).

    A path that cannot be written raises `InvalidArgument` naming it and the OS error.

Concurrency
    None: a pure function apart from writing one file.

See also
    `odp_async.report.layout`, `odp_async.report.png`, `odp_async.report.html`.
"""

from __future__ import annotations

import os
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from .._user_files import UnreadableFile, open_output
from ..errors import InvalidArgument
from .layout import Drawing, Marker, layout
from .timeline import Timeline

__all__ = ["drawing_svg", "render_svg", "write_svg"]

FONT: Final = "DejaVu Sans Mono, Menlo, Consolas, monospace"
_ANCHOR: Final = {"start": "start", "middle": "middle", "end": "end"}


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _marker(m: Marker) -> str:
    x, y, r = m.x, m.y, m.size / 2
    tip = f"<title>{escape(m.tip)}</title>" if m.tip else ""
    style = f'fill="{m.colour}" stroke="#000000" stroke-width="0.6"'
    if m.shape == "circle":
        body = f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" {style}>{tip}</circle>'
        return body
    if m.shape == "x":
        a, b, c, e = _n(x - r), _n(x + r), _n(y - r), _n(y + r)
        d = f"M{a},{c}L{b},{e}M{a},{e}L{b},{c}"
        return f'<path d="{d}" stroke="{m.colour}" stroke-width="3" fill="none">{tip}</path>'
    if m.shape == "plus":
        d = f"M{_n(x - r)},{_n(y)}L{_n(x + r)},{_n(y)}M{_n(x)},{_n(y - r)}L{_n(x)},{_n(y + r)}"
        return f'<path d="{d}" stroke="{m.colour}" stroke-width="2.5" fill="none">{tip}</path>'
    points = {
        "triangle-up": [(x, y - r), (x + r, y + r), (x - r, y + r)],
        "triangle-down": [(x - r, y - r), (x + r, y - r), (x, y + r)],
        "diamond": [(x, y - r), (x + r, y), (x, y + r), (x - r, y)],
        "square": [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)],
    }[m.shape]
    pts = " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
    return f'<polygon points="{pts}" {style}>{tip}</polygon>'


def drawing_svg(drawing: Drawing, *, element_id: str = "timeline") -> str:
    """The ``<svg>`` element of `drawing` (with its own ``xmlns``)."""
    d = drawing
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id={quoteattr(element_id)} '
        f'width="{d.width}" height="{d.height}" viewBox="0 0 {d.width} {d.height}" '
        f"font-family={quoteattr(FONT)}>",
        f"<title>{escape(d.title)}</title>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" '
        'stroke="#303030" stroke-width="1.2"/></pattern>'
        '<marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="context-stroke"/></marker></defs>',
        f'<rect x="0" y="0" width="{d.width}" height="{d.height}" fill="#ffffff"/>',
    ]
    for line in d.lines:
        if line.role in ("grid", "rule", "axis"):
            out.append(_line(line))
    for r in d.rects:
        tip = f"<title>{escape(r.tip)}</title>" if r.tip else ""
        attrs_ = f'x="{_n(r.x)}" y="{_n(r.y)}" width="{_n(max(r.w, 0.5))}" height="{_n(r.h)}"'
        stroke = f'stroke="{r.stroke}" stroke-width="0.6"' if r.stroke != "none" else ""
        out.append(f'<rect {attrs_} fill="{r.fill}" {stroke} class="{r.role}">{tip}</rect>')
        if r.hatch:
            out.append(f'<rect {attrs_} fill="url(#hatch)" pointer-events="none"/>')
    for line in d.lines:
        if line.role not in ("grid", "rule", "axis"):
            out.append(_line(line))
    out.extend(_marker(m) for m in d.markers)
    for t in d.texts:
        weight = ' font-weight="bold"' if t.bold else ""
        out.append(
            f'<text x="{_n(t.x)}" y="{_n(t.y)}" font-size="{_n(t.size)}" '
            f'text-anchor="{_ANCHOR[t.anchor]}" fill="{t.colour}"{weight} '
            f'class="{t.role}" xml:space="preserve">{escape(t.text)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _line(line: object) -> str:
    from .layout import Line

    assert isinstance(line, Line)
    dash = ' stroke-dasharray="5,3"' if line.dashed else ""
    head = ' marker-end="url(#arrowhead)"' if line.arrow else ""
    return (
        f'<line x1="{_n(line.x1)}" y1="{_n(line.y1)}" x2="{_n(line.x2)}" y2="{_n(line.y2)}" '
        f'stroke="{line.colour}" stroke-width="{_n(line.width)}"{dash}{head} '
        f'class="{line.role}"/>'
    )


def render_svg(timeline: Timeline, *, width_px: int = 1400) -> str:
    """`timeline` as a standalone SVG document, `width_px` wide.

    Raises: `InvalidArgument` for a `width_px` outside 400..20000.
    """
    body = drawing_svg(layout(timeline, width_px))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def write_svg(
    timeline: Timeline, path: str | os.PathLike[str], *, width_px: int = 1400
) -> tuple[int, int]:
    """Write `timeline` as SVG to `path`; return ``(width, height)`` in px.

    Raises: `InvalidArgument` for a bad width, or naming `path` and the OS error.
    """
    drawing = layout(timeline, width_px)
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + drawing_svg(drawing) + "\n"
    try:
        with open_output(path) as f:
            f.write(text)
    except UnreadableFile as err:
        raise InvalidArgument(
            f"cannot write the SVG to {os.fspath(path)!r}: {err.reason}"
        ) from None
    except OSError as err:
        raise InvalidArgument(
            f"cannot write the SVG to {os.fspath(path)!r}: {err.strerror or err}"
        ) from None
    return drawing.width, drawing.height
