"""The state of a recorded run after each step, for a person stepping through it.

Contract
    `step_states(execution, target=None)` returns one `dict` per step (JSON-ready: str,
    int, bool, lists and dicts only), index ``s - 1`` for step ``s``, saying what holds
    right after step ``s``:

    - ``ran`` / ``did`` / ``why``: the task that ran it, what it does next, and why it
      was the one: ``preemption`` is True when the task that ran the step before could
      have gone on (it stopped at a checkpoint) and another was chosen;
    - ``touched`` (with `target`): the shared resources the step declared it reads and
      writes (its checkpoint's `Footprint`), when it declared them;
    - ``variables`` (with `target`): each live task's variables that hold plain data
      (numbers, strings, and lists / dicts of them; closure cells included: the program's
      shared state), read from its coroutine frame;
    - ``locks``: every primitive held, by whom and how, and who is blocked on it (from
      the sim's lock notes and the tasks parked on each primitive);
    - ``tasks``: each task's status (running, runnable, blocked on X, asleep, finished);
    - ``invalidations``: the invalidation windows open (from the checker's events);
    - ``events``: what happened during the step (installs, zaps, DMA, warnings, windows
      opening and closing) and ``violations``: the violations recorded at it;
    - ``regions`` (world scenarios, when `target` is given): each registered region's
      ``count``, ``seq``, state, protocol-private state (``proto``) and translations,
      each set against the page table (``page_table``: address -> frame; ``protocol``:
      the protocol's own counters, e.g. ``kvm-seq: in_progress=1, seq=0``)
      (``ok`` False when the pte maps another frame, nothing, or with less permission,
      or the frame was freed).  These come from re-running the execution's schedule on a
      fresh world and reading the model at every step boundary (report-side: the model
      is not changed); a re-run that does not reproduce the recorded events raises
      `InvalidArgument`.

    `explain(execution, states)` gives a sentence per violation: what broke and which
    earlier steps caused it (for a stale translation or DMA: where the device installed
    the translation, where the page table stopped mapping the frame, where the frame was
    freed; for a deadlock: the cycle and where each lock was taken).

Concurrency
    None (the re-run is a sim run on this thread).

See also
    `odp_async.report.html` (the consumer), `odp_async.report.timeline`.
"""

from __future__ import annotations

import reprlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._runtime.choosers import Chooser, ReplayChooser
from .._runtime.sim import NOTE
from .._runtime.sim import run as sim_run
from ..errors import InvalidArgument, ReplayMismatch
from ..explore.arguments import show
from ..explore.failures import end_text
from .timeline import Timeline, short_resource

if TYPE_CHECKING:
    from ..explore.target import Execution, Target
    from ..world import World

__all__ = ["Recording", "explain", "record", "step_states"]

_PAGE = 12


class _Snoop:
    """A chooser that reads the world (if any) and the tasks' variables at every step
    boundary, then lets `inner` choose."""

    ask_always = True

    def __init__(self, inner: Chooser, world: World | None) -> None:
        self.inner = inner
        self.world = world
        self.inner_asks = bool(getattr(inner, "ask_always", False))
        self.snapshots: list[list[dict[str, Any]]] = []  # [k]: after step k
        self.runnable: list[list[str]] = []  # [k]: runnable before step k + 1
        self.variables: list[dict[int, dict[str, str]]] = []  # [k]: after step k, by task id
        self.names: dict[int, str] = {}  # task id -> name
        self.labels: list[str] = []  # [k]: what the task chosen for step k + 1 does
        self._tasks: dict[int, Any] = {}  # every task seen runnable, by id

    def new_execution(self) -> None:
        self.inner.new_execution()

    def snapshot(self) -> None:
        if self.world is not None:
            self.snapshots.append(_regions(self.world))
        self.variables.append(_variables(self._tasks.values(), self.names))

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        for task in runnable:
            self._tasks.setdefault(id(task), task)
        self.snapshot()
        self.runnable.append([str(getattr(t, "name", t)) for t in runnable])
        asks = len(runnable) > 1 or self.inner_asks
        i = self.inner.choose(runnable, last) if asks else 0
        if 0 <= i < len(runnable):
            self.labels.append(_label(getattr(runnable[i], "pending", None)))
        return i

    def draw(self, n: int, label: object) -> int:
        return self.inner.draw(n, label)


_SIMPLE = (int, float, str, bool, type(None))
_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxtuple = 8


def _plain(value: object, depth: int = 0) -> bool:
    """A value worth showing as the program's state: plain data, a few levels deep."""
    if isinstance(value, _SIMPLE):
        return True
    if depth > 2:
        return False
    if isinstance(value, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return all(_plain(v, depth + 1) for v in value)
    return False


def _variables(tasks: Iterable[Any], names: dict[int, str]) -> dict[int, dict[str, str]]:
    """Each live task's variables (its outermost coroutine frame: locals and the closure
    cells it uses) that hold plain data, as text, by task id (two tasks of one function,
    or of one name, each keep their own); `names` gets each task's name."""
    out: dict[int, dict[str, str]] = {}
    for task in tasks:
        frame = _program_frame(getattr(task, "coro", None))
        if frame is None:
            continue
        shown = _shown(frame)
        if shown:
            tid = int(getattr(task, "id", id(task)))
            names[tid] = str(getattr(task, "name", "?"))
            out[tid] = shown
    return out


def _shown(frame: Any) -> dict[str, str]:
    """`frame`'s variables that hold plain data, as text, by name."""
    return {
        k: _REPR.repr(v)
        for k, v in sorted(frame.f_locals.items())
        if not k.startswith("_") and _plain(v)
    }


def _add_raisers(
    variables: list[dict[int, dict[str, str]]], names: dict[int, str], ends: Iterable[Any]
) -> None:
    """A task that raised has no frame left after the step it raised in, so the panel
    would lose its variables exactly where they explain the failure: read them from the
    program's frame in the exception's traceback, into the state after that step
    (`ends`: the run's `TaskEnd` records; `names` gets each such task's name)."""
    for end in ends:
        error = end.error
        if error is None or not 0 <= end.step < len(variables):
            continue
        tb = error.__traceback__
        while tb is not None and not _is_program(tb.tb_frame):
            tb = tb.tb_next
        if tb is None:
            continue
        shown = _shown(tb.tb_frame)
        if shown:
            variables[end.step].setdefault(end.task_id, shown)
            names.setdefault(end.task_id, end.task)


#: Modules whose coroutines wrap a task's program (the report's and the explorer's
#: entry points, the runtime's task groups): their frames are passed over.
_WRAPPERS = ("odp_async.report.", "odp_async.explore.", "odp_async._runtime.")


def _program_frame(coro: object) -> Any:
    """The first coroutine frame along `coro`'s await chain that is the program's (a
    user function's main task runs inside the report's wrapper), or None."""
    for _ in range(16):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            return None
        if _is_program(frame):
            return frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return None


def _is_program(frame: Any) -> bool:
    module = frame.f_globals.get("__name__")
    return not (isinstance(module, str) and module.startswith(_WRAPPERS))


def _label(pending: object) -> str:
    from .._runtime.footprint import Footprint

    if isinstance(pending, Footprint):
        return pending.label or f"a step touching {pending}"
    return ""


def _fr(frame: tuple[int, int]) -> str:
    return f"frame {frame[0]}.{frame[1]}"


def _regions(world: World) -> list[dict[str, Any]]:
    mm, memory = world.mm, world.memory
    out = []
    for umem in list(world.ctx.umems.values()):
        translations = []
        for vpn, tr in sorted(umem.table.entries.items()):
            pte = mm.page_table.get(vpn)
            pte_frame = pte.frame.id if pte is not None and pte.frame is not None else None
            live = memory.is_live(tr.frame)
            if not live:
                problem = f"{_fr(tr.frame)} has been freed"
            elif pte_frame is None:
                problem = "the page table maps nothing there"
            elif pte_frame != tr.frame:
                problem = f"the page table maps {_fr(pte_frame)}"
            elif tr.writable and pte is not None and not pte.writable:
                problem = "writable, but the pte is read-only"
            else:
                problem = ""
            translations.append(
                {
                    "addr": f"{vpn << _PAGE:#x}",
                    "frame": _fr(tr.frame),
                    "rw": tr.writable,
                    "pte": _fr(pte_frame) if pte_frame is not None else "none",
                    "ok": not problem,
                    "problem": problem,
                }
            )
        out.append(
            {
                "name": umem.name,
                "range": str(umem.range),
                "count": umem.count,
                "seq": umem.seq,
                "state": umem.state.value,
                "dying": umem.dying,
                "proto": repr(umem.proto) if umem.proto is not None else "",
                "translations": translations,
            }
        )
    pages = {}
    for vpn, pte in sorted(mm.page_table.items())[:256]:
        frame = pte.frame.id if pte.frame is not None else None
        pages[f"{vpn << _PAGE:#x}"] = _fr(frame) if frame is not None else "migrating"
    protocol = world.ctx.protocol
    fields = ", ".join(
        f"{k}={v}"
        for k, v in sorted(getattr(protocol, "__dict__", {}).items())
        if not k.startswith("_") and isinstance(v, int | str) and k != "name"
    )
    proto = f"{protocol.name}: {fields}" if fields else protocol.name
    return [{"name": "page table", "pages": pages, "protocol": proto}, *out]


@attrs.frozen
class Recording:
    """What a re-run of an execution read at every step boundary (index ``k``: after
    step ``k``; ``[0]``: before the first step)."""

    #: World scenarios: the page table, the protocol and the regions; else None.
    regions: list[list[dict[str, Any]]] | None
    #: ``runnable[k]``: the tasks the sim could run at step ``k + 1``.
    runnable: list[list[str]]
    #: ``variables[k]``: each task's plain-data variables after step ``k``, by task id.
    variables: list[dict[int, dict[str, str]]]
    #: ``labels[k]``: the declared footprint of step ``k + 1`` ("" if none).
    labels: list[str]
    #: The name of each task of `variables` (by task id).
    names: dict[int, str] = attrs.Factory(dict)


def record(execution: Execution, target: Target) -> Recording:
    """Re-run `execution`'s schedule of `target` and read the state at every step.

    Raises: `InvalidArgument` if the re-run does not reproduce `execution` (another
    target, or code that changed).
    """
    from ..world import World, world_main

    world: World | None = None
    body = target.scenario.body
    if target.scenario.needs_world and target.protocol is not None:
        world = World.build(target.protocol, options=dict(target.options), record_events=False)
        if target.scenario.setup is not None:
            world.run_setup(target.scenario.setup)  # the state its schedules start from
        main = world_main(world, body)
    else:

        async def main() -> Any:
            return await body()

    snoop = _Snoop(ReplayChooser(execution.sim.schedule), world)
    try:
        result = sim_run(
            main,
            chooser=snoop,
            max_steps=max(1, execution.sim.steps),
            trace=False,
            on_stop=snoop.snapshot,
        )
    except ReplayMismatch as err:
        raise InvalidArgument(
            f"re-running {target.label!r} did not reproduce this execution ({err}): is it "
            "the execution's target?"
        ) from None
    if result.steps != execution.sim.steps or result.outcome != execution.sim.outcome:
        raise InvalidArgument(
            f"re-running {target.label!r} did not reproduce this execution "
            f"({result.steps} steps, {result.outcome}; recorded {execution.sim.steps} steps, "
            f"{execution.sim.outcome}): is it the execution's target?"
        )
    n = result.steps + 1
    if len(snoop.variables) < n:
        snoop.snapshot()  # the state after the last step
    _add_raisers(snoop.variables, snoop.names, result.ends)
    regions = None
    if world is not None:
        regions = snoop.snapshots[:n] if len(snoop.snapshots) >= n else snoop.snapshots
    return Recording(regions, snoop.runnable, snoop.variables[:n], snoop.labels, snoop.names)


def step_states(execution: Execution, target: Target | None = None) -> list[dict[str, Any]]:
    """One state per step of `execution` (recorded with ``trace=True``); see the module.

    Raises: `InvalidArgument` without a trace, or when `target` does not reproduce it.
    """
    from ..explore.target import Target

    if target is not None and not isinstance(target, Target):
        raise InvalidArgument(f"target must be a Target or None, got {show(target)}")
    tl = Timeline.from_execution(execution)
    regions: list[list[dict[str, Any]]] | None = None
    runnable: list[list[str]] | None = None
    recording: Recording | None = None
    if target is not None:
        recording = record(execution, target)
        regions, runnable = recording.regions, recording.runnable
    title = {lane.task_id: lane.title for lane in tl.lanes}
    panel_key = _panel_keys(recording.names if recording is not None else {}, tl)
    trace = execution.sim.trace or ()
    notes: dict[int, list[tuple[int, str, str]]] = {}
    for step, tid, op, label in trace:
        if op == NOTE and isinstance(label, tuple) and len(label) == 2:
            notes.setdefault(step, []).append((tid, str(label[0]), str(label[1])))
    rows = {row.step: row for row in tl.rows}
    # How the task that ended in a step ended: "finished", "raised AssertionError: ..."
    ending = {end.step: end_text(end) for end in execution.sim.ends}

    held: dict[str, list[tuple[int, str]]] = {}  # primitive -> (task id, mode)
    status: dict[int, str] = {lane.task_id: "not started" for lane in tl.lanes}
    blocked_on: dict[int, str] = {}
    started: set[int] = set()
    prev_row = None
    states: list[dict[str, Any]] = []
    modes = {"acquire": "exclusive", "acquire-read": "read", "acquire-write": "write"}
    for step in range(1, tl.steps + 1):
        row = rows.get(step)
        for tid, event, resource in notes.get(step, ()):
            name = short_resource(resource)[0]
            holders = held.setdefault(name, [])
            if event in modes:
                holders.append((tid, modes[event]))
            elif event == "release":
                for k in range(len(holders) - 1, -1, -1):
                    if holders[k][0] == tid:
                        del holders[k]
                        break
            elif event == "downgrade":
                for k in range(len(holders) - 1, -1, -1):
                    if holders[k][0] == tid:
                        holders[k] = (tid, "read")
                        break
        why, preemption = "", False
        ran = row.lane if row is not None else None
        if ran is not None:
            started.add(ran)
            blocked_on.pop(ran, None)
            status[ran] = "running"
            if row is not None and row.action == "park":
                blocked_on[ran] = row.text
            options = (
                runnable[step - 1] if runnable is not None and step - 1 < len(runnable) else None
            )
            if prev_row is None or prev_row.lane is None:
                why = "the first step" if prev_row is None else "the previous task finished"
            elif prev_row.lane == ran:
                why = "it went on: no switch"
            elif prev_row.action == "checkpoint":
                preemption = True
                why = (
                    f"preemption: {title.get(prev_row.lane, '?')} could have gone on "
                    f"(it stopped at {prev_row.text}) and {title[ran]} was chosen"
                )
            else:
                what = {"park": "blocked", "sleep": "fell asleep"}.get(prev_row.action, "stopped")
                if prev_row.action == "end":
                    what = ending.get(prev_row.step, "finished")
                why = f"{title.get(prev_row.lane, '?')} {what}, so another task had to run"
            if options is not None and len(options) > 1:
                why += f" (runnable: {', '.join(options)})"
            elif options is not None and len(options) == 1 and not preemption:
                why += " (the only runnable task)"
        tasks = []
        for lane in tl.lanes:
            tid = lane.task_id
            if tid == ran:
                st = "ran this step" + (
                    f", now blocked on {blocked_on[tid]}" if tid in blocked_on else ""
                )
                if row is not None and row.action == "end":
                    st = f"ran this step and {ending.get(step, 'finished')}"
                    status[tid] = "finished"
                elif row is not None and row.action == "sleep":
                    status[tid] = "asleep"
            elif tid in blocked_on:
                st = f"blocked on {blocked_on[tid]}"
            elif status[tid] == "finished":
                st = "finished"
            elif status[tid] == "asleep":
                st = "asleep"
            elif tid in started:
                st = "runnable"
            else:
                st = "not started"
            if tid == ran and status[tid] == "running":
                status[tid] = "runnable"
            tasks.append({"task": lane.title, "status": st})
        locks = []
        for name, holders in held.items():
            waiters = [title[t] for t, on in blocked_on.items() if on.startswith(name)]
            if holders or waiters:
                locks.append(
                    {
                        "lock": name,
                        "held": [f"{title.get(t, t)} ({m})" for t, m in holders],
                        "waiters": waiters,
                    }
                )
        for tid, on in blocked_on.items():
            ident = short_resource(on)[0]
            if ident not in held:
                locks.append({"lock": ident, "held": [], "waiters": [title[tid]]})
        invalidations = [
            s.detail or s.name
            for s in tl.spans
            if s.category == "invalidate" and s.start <= step and (s.end > step or s.is_open)
        ]
        events = [f"{i.category}: {i.detail}" for i in tl.instants if i.step == step]
        for s in tl.spans:
            if s.is_lock or s.category in ("wait", "sleep"):
                continue
            if s.start == step:
                events.append(f"begins: {s.detail or s.name}")
            if s.end == step and not s.is_open:
                events.append(f"ends: {s.end_detail or s.name}")
        state: dict[str, Any] = {
            "step": step,
            "ran": title.get(ran, "?") if ran is not None else "?",
            "did": _did(row, ending),
            "why": why,
            "preemption": preemption,
            "tasks": tasks,
            "locks": locks,
            "invalidations": invalidations,
            "events": events,
            "violations": [m.text for m in tl.violations if m.step == step],
        }
        if recording is not None:
            found = recording.variables
            at = found[min(step, len(found) - 1)] if found else {}
            state["variables"] = {panel_key[tid]: vs for tid, vs in at.items()}
            if step - 1 < len(recording.labels) and recording.labels[step - 1]:
                state["touched"] = recording.labels[step - 1]
        if regions is not None:
            snap = regions[min(step, len(regions) - 1)]
            state["page_table"] = snap[0]["pages"]
            state["protocol"] = snap[0]["protocol"]
            state["regions"] = snap[1:]
        states.append(state)
        prev_row = row
    return states


def _panel_keys(names: dict[int, str], tl: Timeline) -> dict[int, str]:
    """The variables panel's key of each task of `names` (by id): its lane's title (the
    name, with ``#<id>`` when several tasks share it), so no two tasks share a key."""
    lanes = {lane.task_id: lane for lane in tl.lanes}
    counts = Counter(names.values())
    for lane in tl.lanes:
        if lane.task_id not in names:
            counts[lane.name] += 1
    keys: dict[int, str] = {}
    for tid, name in names.items():
        own = lanes.get(tid)
        if own is not None and own.name == name:
            keys[tid] = own.title
        else:
            keys[tid] = name if counts[name] == 1 else f"{name}#{tid}"
    return keys


def _did(row: Any, ending: dict[int, str]) -> str:
    if row is None:
        return ""
    if row.action == "park":
        return f"blocked on {row.text}"
    if row.action == "sleep":
        return f"sleeps {row.text}"
    if row.action == "end":
        return ending.get(row.step, "finished")
    return f"stopped before {row.text}"


def explain(execution: Execution, states: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A sentence per violation of `execution`, naming the earlier steps that caused it;
    ``[{"step": s, "kind": k, "sentence": ..., "causes": [steps]}]``."""
    tl = Timeline.from_execution(execution)
    out = []
    for mark, violation in zip(tl.violations, execution.violations, strict=False):
        causes: list[int] = []
        parts = [f"Step {mark.step}: {mark.kind} — {violation.detail}."]
        addresses = [f"{a:#x}" for a in violation.addresses]
        if mark.kind in ("stale-translation", "stale-dma") and addresses:
            addr = addresses[0]
            installs = [
                i
                for i in tl.instants
                if i.category == "install"
                and i.address is not None
                and f"{i.address:#x}" == addr
                and i.step <= mark.step
            ]
            if installs:
                inst = installs[-1]
                who = tl.lane(inst.lane).title if inst.lane is not None else "a task"
                parts.append(
                    f"The device installed it at step {inst.step} ({who}: {inst.detail})."
                )
                causes.append(inst.step)
            unmapped = _pte_change(states, addr, mark.step)
            if unmapped is not None:
                step, text = unmapped
                parts.append(f"The page table changed at step {step}: {text}.")
                causes.append(step)
            freed = _freed(states, addr, mark.step)
            if freed is not None:
                parts.append(f"The frame was freed at step {freed}.")
                causes.append(freed)
            windows = [
                s
                for s in tl.spans
                if s.category == "invalidate"
                and s.start <= mark.step
                and (s.end >= (causes[0] if causes else mark.step))
            ]
            for w in windows[:2]:
                parts.append(
                    f"Invalidation {w.detail or w.name} ran over steps {w.start}-{w.end}"
                    + (" (still open)" if w.is_open else "")
                    + "."
                )
                causes.append(w.start)
        elif mark.kind == "deadlock" and tl.cycle:
            for edge in tl.cycle:
                took = [
                    s
                    for s in tl.spans
                    if s.is_lock and s.lane == edge.holder and s.name == edge.resource
                ]
                where = f", taken at step {took[-1].start}" if took else ""
                if took:
                    causes.append(took[-1].start)
                parts.append(
                    f"{tl.lane(edge.waiter).title} waits for {edge.resource}, held by "
                    f"{tl.lane(edge.holder).title}{where}."
                )
        elif mark.kind == "unbalanced-notifier":
            ends = [s for s in tl.spans if s.category == "invalidate" and s.end == mark.step]
            regs = [s for s in tl.spans if s.category == "register" and s.start <= mark.step]
            for e in ends[:1]:
                parts.append(f"The end of {e.detail or e.name} began at step {e.start}.")
                causes.append(e.start)
            for r in regs[-1:]:
                parts.append(f"{r.detail or r.name} happened over steps {r.start}-{r.end}.")
                causes.append(r.start)
        out.append(
            {
                "step": mark.step,
                "kind": mark.kind,
                "sentence": " ".join(parts),
                "causes": sorted(set(causes)),
            }
        )
    return out


def _translation(state: dict[str, Any], addr: str) -> dict[str, Any] | None:
    for region in state.get("regions", ()):
        for tr in region["translations"]:
            if tr["addr"] == addr:
                return dict(tr)
    return None


def _pte_change(states: Sequence[dict[str, Any]], addr: str, until: int) -> tuple[int, str] | None:
    """The last step at or before `until` where the page table's entry for `addr`
    changed."""
    found: tuple[int, str] | None = None
    before: str | None = None
    for state in states[:until]:
        pages = state.get("page_table")
        if pages is None:
            continue
        now = pages.get(addr, "none")
        if before is not None and now != before:
            what = "unmapped" if now == "none" else f"remapped to {now}"
            found = (int(state["step"]), f"{addr} was {what} (it mapped {before})")
        before = now
    return found


def _freed(states: Sequence[dict[str, Any]], addr: str, until: int) -> int | None:
    for state in states[:until]:
        tr = _translation(state, addr)
        if tr is not None and "freed" in tr["problem"]:
            return int(state["step"])
    return None
