"""A step-through HTML report of one recorded run: one self-contained file.

Contract
    `render_html(execution, target=None, title=None)` returns the page;
    `write_html(execution, path, target=None, title=None)` writes it.  `execution` must
    have been run with ``trace=True``; `target` (the `Target` it ran) adds each region's
    count, seq and translations against the page table, read by re-running the schedule
    (see `odp_async.report.states`).

    The page needs no network: no external script, style sheet, font or image.  It shows
    the verdict, the swimlanes as inline SVG (`odp_async.report.layout`) with a cursor on
    the current step, a slider over the steps, and for the current step the state that
    `step_states` gives (who ran and why, locks held and waiters, tasks, regions,
    invalidations in flight, events, and with `target` each task's plain-data
    variables).  At a violation's step the sentence of `explain` says what broke and
    which earlier steps caused it (those steps are links).

    Keys: ``ArrowRight``/``l`` next step, ``ArrowLeft``/``h`` previous, ``Home``/``End``,
    ``v`` the (next) violation, ``p`` the next preemption.  Clicking a lane picks its step.

    Raises: `InvalidArgument` for an execution without a trace, a target that does not
    reproduce it, or (`write_html`) a path that cannot be written, naming it.

Concurrency
    None.

See also
    `odp_async.report.states`, `odp_async.report.svg`.
"""

from __future__ import annotations

import html
import json
import os
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from .._user_files import UnreadableFile, open_output
from ..errors import InvalidArgument
from .layout import layout
from .states import explain, step_states
from .svg import drawing_svg
from .timeline import Timeline

if TYPE_CHECKING:
    from ..explore.target import Execution, Target

__all__ = ["render_html", "write_html"]


#: State parts stored once in the page's pool (a long run repeats them step after step).
_POOLED = ("tasks", "locks", "invalidations", "regions", "page_table", "protocol", "variables")


def _asset(name: str) -> str:
    """The page's own style sheet or script, shipped beside this module."""
    return files(__package__ or "odp_async.report").joinpath(name).read_text("utf-8")


def render_html(
    execution: Execution, *, target: Target | None = None, title: str | None = None
) -> str:
    """The report page for `execution` (see the module); `title` defaults to the
    target's label."""
    if title is None:
        title = target.label if target is not None else "odp_async run"
    timeline = Timeline.from_execution(execution, title=title)
    states = step_states(execution, target)
    explained = explain(execution, states)
    drawing = layout(timeline, 1300)
    svg = drawing_svg(drawing)
    cursor = (
        f'<line id="cursor" x1="0" y1="{drawing.plot_top:.1f}" x2="0" '
        f'y2="{drawing.plot_bottom:.1f}" stroke="#1b7837" stroke-width="3" '
        'stroke-opacity="0.75" pointer-events="none"/>'
    )
    svg = svg[: svg.rindex("</svg>")] + cursor + "</svg>"
    # parts that rarely change are stored once and referenced by index
    pool: list[Any] = []
    seen: dict[str, int] = {}
    for state in states:
        for key in _POOLED:
            if key in state:
                text = json.dumps(state[key], sort_keys=True)
                if text not in seen:
                    seen[text] = len(pool)
                    pool.append(state[key])
                state[key] = seen[text]
    data: dict[str, Any] = {
        "pool": pool,
        "pooled": list(_POOLED),
        "states": states,
        "explained": explained,
        "x0": drawing.x0,
        "px": drawing.px_per_step,
        "first": drawing.first_step,
    }
    # Inside <script> the parser looks for "</script" and, past "<!--", for "<script"
    # (the double-escaped state, where the real "</script>" no longer ends the block):
    # no "<" (nor ">", "&") reaches it; each is a JSON string escape, read back as it was.
    payload = (
        json.dumps(data, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    verdict = timeline.verdict
    cls = "good" if verdict == "clean" else "bad"
    first = timeline.violation
    headline = html.escape(first.text) if first is not None else ""
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}: {e(verdict)}</title>
<style>{_asset("report.css")}</style></head>
<body>
<h1>{e(title)}: <span class="verdict {cls}" id="verdict">{e(verdict)}</span></h1>
<div class="muted">{timeline.steps} steps, {len(timeline.lanes)} tasks; the program's outcome:
{e(timeline.outcome)}. {headline}</div>
<div id="controls">
<button id="prev" title="previous step (ArrowLeft)">&#9664;</button>
<input type="range" id="slider" aria-label="step">
<button id="next" title="next step (ArrowRight)">&#9654;</button>
<span id="stepno"></span>
<button id="toviolation" title="key v">violation (<kbd>v</kbd>)</button>
<button id="topreempt" title="key p">next preemption (<kbd>p</kbd>)</button>
</div>
<div class="muted">Keys: <kbd>&larr;</kbd>/<kbd>&rarr;</kbd> step, <kbd>Home</kbd>/<kbd>End</kbd>,
<kbd>v</kbd> the violation, <kbd>p</kbd> the next preemption; click the lanes to pick a step.</div>
<div id="violation"></div>
<div id="lanes">{svg}</div>
<div class="grid">
<section><h2>who ran, and why</h2><div id="ran"></div></section>
<section><h2>locks held and waiters</h2><div id="locks"></div></section>
<section><h2>regions: count, seq, translations vs the page table</h2>
<div id="regions"></div></section>
<section><h2>invalidations in flight</h2><div id="invalidations"></div></section>
<section><h2>tasks</h2><div id="tasks"></div></section>
<section><h2>the program's variables (plain data in each task's frame)</h2>
<div id="variables"></div></section>
<section><h2>this step</h2><div id="events"></div></section>
</div>
<script type="application/json" id="data">{payload}</script>
<script>{_asset("report.js")}</script>
</body></html>
"""


def write_html(
    execution: Execution,
    path: str | os.PathLike[str],
    *,
    target: Target | None = None,
    title: str | None = None,
) -> None:
    """Write the report of `execution` to `path` (see the module).

    Raises: `InvalidArgument` without a trace, for a `target` that does not reproduce
    the execution, or naming `path` and the OS error when it cannot be written.
    """
    page = render_html(execution, target=target, title=title)
    try:
        with open_output(path) as f:
            f.write(page)
    except UnreadableFile as err:
        raise InvalidArgument(
            f"cannot write the HTML report to {os.fspath(path)!r}: {err.reason}"
        ) from None
    except OSError as err:
        raise InvalidArgument(
            f"cannot write the HTML report to {os.fspath(path)!r}: {err.strerror or err}"
        ) from None
