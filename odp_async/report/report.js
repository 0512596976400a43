"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const S = DATA.states, N = S.length;
S.forEach(s => DATA.pooled.forEach(k => { if (k in s) s[k] = DATA.pool[s[k]]; }));
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
  if (s.touched) ran.appendChild(el("div", s.touched));
  ran.appendChild(el("div", s.why, s.preemption ? "preempt" : "muted"));
  fill("tasks", table(["task", "status"], s.tasks.map(t => ({cells: [t.task, t.status]}))));
  fill("locks", s.locks.length ? table(["primitive", "held by", "waiters"],
       s.locks.map(l => ({cells: [l.lock, l.held.join(", ") || "-", l.waiters.join(", ") || "-"]})))
       : el("div", "no lock held, nobody waiting", "muted"));
  fill("invalidations", list(s.invalidations, "none in flight"));
  const vars = [];
  Object.entries(s.variables || {}).forEach(([task, vs]) =>
    Object.entries(vs).forEach(([k, v]) => vars.push({cells: [task, k, v]})));
  fill("variables", vars.length ? table(["task", "variable", "value"], vars)
       : el("div", s.variables === undefined ? "recorded with a target only" : "none", "muted"));
  fill("events", list(s.events.concat(s.violations.map(v => "VIOLATION " + v)), "nothing recorded"));
  const regions = document.getElementById("regions");
  if (s.regions === undefined) {
    regions.replaceChildren(el("div", "a general program: no regions (tasks and primitives above)", "muted"));
  } else {
    const rows = [];
    if (s.protocol) rows.push({cells: ["protocol", s.protocol, "", ""]});
    s.regions.forEach(r => {
      rows.push({cells: [r.name + " " + r.range, "count " + r.count + ", seq " + r.seq, r.state + (r.dying ? ", dying" : ""), r.proto]});
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
