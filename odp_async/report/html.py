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
    invalidations in flight, events).  At a violation's step the sentence of `explain`
    says what broke and which earlier steps caused it (those steps are links).

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
from typing import TYPE_CHECKING, Any, Final

from ..errors import InvalidArgument
from .layout import layout
from .states import explain, step_states
from .svg import drawing_svg
from .timeline import Timeline

if TYPE_CHECKING:
    from ..explore.target import Execution, Target

__all__ = ["render_html", "write_html"]

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#111}
h1{font-size:20px;margin:0 0 4px 0}
.verdict{font-weight:bold}.bad{color:#c0281b}.good{color:#17803d}
#lanes{overflow-x:auto;border:1px solid #ddd;margin:8px 0}
#controls{display:flex;gap:10px;align-items:center;margin:8px 0;flex-wrap:wrap}
#slider{flex:1;min-width:300px}
#stepno{font:bold 16px monospace;min-width:120px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:10px}
section{border:1px solid #ddd;border-radius:6px;padding:8px 10px}
section h2{font-size:14px;margin:0 0 6px 0;color:#444}
table{border-collapse:collapse;font:12px monospace}td,th{padding:2px 6px;text-align:left;
border-bottom:1px solid #eee;vertical-align:top}
.stale{background:#fde0dc}.preempt{color:#b35806;font-weight:bold}
#violation{display:none;border:2px solid #c0281b;background:#fff3f1;padding:8px 10px;
margin:8px 0;border-radius:6px}
#violation a{color:#c0281b;font-weight:bold;cursor:pointer}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 4px;font:12px monospace;background:#f6f6f6}
.muted{color:#777}
"""

_JS: Final = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const S = DATA.states, N = S.length;
const slider = document.getElementById("slider");
slider.min = 1; slider.max = Math.max(1, N); slider.value = 1;
let cur = 1;
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function table(head, rows) {
  const t = el("table"), tr = el("tr");
  head.forEach(h => tr.appendChild(el("th", h)));
  t.appendChild(tr);
  rows.forEach(r => {
    const row = el("tr");
    if (r.cls) row.className = r.cls;
    r.cells.forEach(c => row.appendChild(el("td", c)));
    t.appendChild(row);
  });
  return t;
}
function fill(id, node) {
  const box = document.getElementById(id);
  box.replaceChildren();
  box.appendChild(node);
}
function list(items, empty) {
  if (!items.length) return el("div", empty, "muted");
  const ul = el("ul");
  items.forEach(i => ul.appendChild(el("li", i)));
  return ul;
}
function show(step) {
  if (!N) return;
  cur = Math.min(Math.max(1, step), N);
  slider.value = cur;
  const s = S[cur - 1];
  document.getElementById("stepno").textContent = "step " + cur + " / " + N;
  const ran = document.getElementById("ran");
  ran.replaceChildren();
  ran.appendChild(el("div", s.ran + ": " + s.did));
  ran.appendChild(el("div", s.why, s.preemption ? "preempt" : "muted"));
  fill("tasks", table(["task", "status"], s.tasks.map(t => ({cells: [t.task, t.status]}))));
  fill("locks", s.locks.length ? table(["primitive", "held by", "waiters"],
       s.locks.map(l => ({cells: [l.lock, l.held.join(", ") || "-", l.waiters.join(", ") || "-"]})))
       : el("div", "no lock held, nobody waiting", "muted"));
  fill("invalidations", list(s.invalidations, "none in flight"));
  fill("events", list(s.events.concat(s.violations.map(v => "VIOLATION " + v)), "nothing recorded"));
  const regions = document.getElementById("regions");
  if (s.regions === undefined) {
    regions.replaceChildren(el("div", "a general program: no regions (tasks and primitives above)", "muted"));
  } else {
    const rows = [];
    s.regions.forEach(r => {
      rows.push({cells: [r.name + " " + r.range, "count " + r.count + ", seq " + r.seq, r.state + (r.dying ? ", dying" : ""), ""]});
      r.translations.forEach(t => rows.push({cls: t.ok ? "" : "stale",
        cells: ["  " + t.addr, "-> " + t.frame + (t.rw ? " rw" : " ro"), "pte: " + t.pte, t.ok ? "ok" : "STALE: " + t.problem]}));
    });
    fill("regions", rows.length ? table(["region / address", "count, seq / device", "state / page table", ""], rows)
         : el("div", "no region registered", "muted"));
  }
  const box = document.getElementById("violation");
  const here = DATA.explained.filter(v => v.step === cur);
  box.replaceChildren();
  here.forEach(v => {
    const p = el("p", v.sentence);
    p.className = "sentence";
    if (v.causes.length) {
      p.appendChild(el("span", " Steps: "));
      v.causes.forEach(c => { const a = el("a", c + " "); a.onclick = () => show(c); p.appendChild(a); });
    }
    box.appendChild(p);
  });
  box.style.display = here.length ? "block" : "none";
  const cursor = document.getElementById("cursor");
  if (cursor) {
    const x = DATA.x0 + (cur - DATA.first + 0.5) * DATA.px;
    cursor.setAttribute("x1", x); cursor.setAttribute("x2", x);
  }
}
function nextWhere(pred) {
  for (let k = cur + 1; k <= N; k++) if (pred(S[k - 1])) return k;
  for (let k = 1; k <= cur; k++) if (pred(S[k - 1])) return k;
  return null;
}
slider.addEventListener("input", () => show(Number(slider.value)));
document.getElementById("prev").onclick = () => show(cur - 1);
document.getElementById("next").onclick = () => show(cur + 1);
document.getElementById("toviolation").onclick = () => { const k = nextWhere(s => s.violations.length > 0); if (k) show(k); };
document.getElementById("topreempt").onclick = () => { const k = nextWhere(s => s.preemption); if (k) show(k); };
document.addEventListener("keydown", e => {
  if (e.target && e.target.tagName === "INPUT" && (e.key === "ArrowLeft" || e.key === "ArrowRight")) e.preventDefault();
  if (e.key === "ArrowRight" || e.key === "l") show(cur + 1);
  else if (e.key === "ArrowLeft" || e.key === "h") show(cur - 1);
  else if (e.key === "Home") show(1);
  else if (e.key === "End") show(N);
  else if (e.key === "v") document.getElementById("toviolation").click();
  else if (e.key === "p") document.getElementById("topreempt").click();
  else return;
  e.preventDefault();
});
document.getElementById("lanes").addEventListener("click", e => {
  const svg = document.getElementById("timeline");
  const box = svg.getBoundingClientRect();
  const x = (e.clientX - box.left) * (svg.viewBox.baseVal.width / box.width);
  const step = Math.floor((x - DATA.x0) / DATA.px) + DATA.first;
  if (step >= 1 && step <= N) show(step);
});
show(1);
"""


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
    data: dict[str, Any] = {
        "states": states,
        "explained": explained,
        "x0": drawing.x0,
        "px": drawing.px_per_step,
        "first": drawing.first_step,
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    verdict = timeline.verdict
    cls = "good" if verdict == "clean" else "bad"
    first = timeline.violation
    headline = html.escape(first.text) if first is not None else ""
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}: {e(verdict)}</title>
<style>{_CSS}</style></head>
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
<section><h2>regions: count, seq, translations vs the page table</h2><div id="regions"></div></section>
<section><h2>invalidations in flight</h2><div id="invalidations"></div></section>
<section><h2>tasks</h2><div id="tasks"></div></section>
<section><h2>this step</h2><div id="events"></div></section>
</div>
<script type="application/json" id="data">{payload}</script>
<script>{_JS}</script>
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
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as err:
        raise InvalidArgument(
            f"cannot write the HTML report to {os.fspath(path)!r}: {err.strerror or err}"
        ) from None
