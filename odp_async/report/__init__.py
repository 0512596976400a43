"""Timelines a person can read, for one recorded run: text, trace-event JSON, SVG, PNG,
and a step-through HTML report.

Contract
    `Timeline.from_execution(ex)` builds a frozen model of an `Execution` run with
    ``trace=True`` (lanes, spans, instants, violations, step rows, a deadlock's cycle);
    `render_text`, `render_trace` / `write_trace` (Chrome trace-event JSON for Perfetto),
    `render_svg` / `write_svg`, `render_png` and `write_picture` (PNG or SVG by extension)
    draw it; `render_html` / `write_html` write the step-through report of the execution.
    Importing this package does not import matplotlib (the ``plot`` extra): `render_png`
    does, when called, and raises `PlotExtraMissing` naming the extra without it.

Concurrency
    None: pure functions over immutable data (the writers write one file each).

See also
    `odp_async.report.timeline`, `odp_async.report.text`, `odp_async.report.trace_json`,
    `odp_async.report.png`, `odp_async.explore.target.Execution`.
"""

from __future__ import annotations

from .html import render_html, write_html
from .png import PlotExtraMissing, render_png, write_picture
from .svg import render_svg, write_svg
from .text import render_text
from .timeline import Instant, Lane, Mark, Span, StepRow, Timeline, WaitEdge
from .trace_json import render_trace, write_trace

__all__ = [
    "Instant",
    "Lane",
    "Mark",
    "PlotExtraMissing",
    "Span",
    "StepRow",
    "Timeline",
    "WaitEdge",
    "render_html",
    "render_png",
    "render_svg",
    "render_text",
    "render_trace",
    "write_html",
    "write_picture",
    "write_svg",
    "write_trace",
]
