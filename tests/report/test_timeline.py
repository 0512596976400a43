from __future__ import annotations

import subprocess
import sys

import pytest

import odp_async.report
from odp_async._runtime.sim import CHECKPOINT, NOTE, PARK, SimResult
from odp_async.check import Event, Violation
from odp_async.errors import InvalidArgument
from odp_async.explore.target import Execution, Target
from odp_async.report import Timeline
from odp_async.report.timeline import describe_label, short_resource
from odp_async.sim import RandomChooser


def _execution(
    trace: tuple[tuple[int, int, int, object], ...],
    *,
    steps: int,
    tasks: tuple[tuple[int, str], ...] = ((0, "main"), (1, "worker")),
    events: tuple[Event, ...] = (),
    violations: tuple[Violation, ...] = (),
) -> Execution:
    sim = SimResult("ok", None, None, None, steps, (), 0.0, trace, tasks)
    return Execution(violations, sim, events)


def test_public_api() -> None:
    assert set(odp_async.report.__all__) >= {
        "Timeline",
        "render_text",
        "render_trace",
        "write_trace",
        "render_png",
    }


def test_importing_the_package_does_not_import_matplotlib() -> None:
    code = "import sys, odp_async.report; assert 'matplotlib' not in sys.modules, 'loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_lanes_are_the_tasks_in_id_order(race: Timeline) -> None:
    assert [(lane.task_id, lane.title) for lane in race.lanes] == [
        (0, "main"),
        (1, "madvise"),
        (2, "register"),
        (3, "fault"),
        (4, "dma"),
    ]


def test_duplicate_task_names_get_the_task_id() -> None:
    ex = Target.resolve("classic:locked-counter-3").run(
        RandomChooser(1), max_steps=10_000, trace=True
    )
    titles = [lane.title for lane in Timeline.from_execution(ex).lanes]
    assert titles == ["main", "worker#1", "worker#2", "worker#3"]


def test_spans_of_the_registration_race(race: Timeline) -> None:
    by = {(s.lane, s.category, s.name, s.mode): s for s in race.spans}
    inv = by[(1, "invalidate", "inv0", "")]
    assert (inv.start, inv.end, inv.is_open) == (26, 42, False)
    mmap = by[(1, "lock", "mmap_sem", "read")]
    assert (mmap.start, mmap.end) == (26, 42)
    fault = by[(3, "fault", "fault B 0x14000", "")]
    assert (fault.start, fault.end) == (34, 39)
    assert fault.end_detail.endswith("resolved")
    assert by[(2, "register", "B", "")].start == 29
    assert by[(0, "wait", "its task group's children", "")].end == 45  # main runs at 46


def test_a_downgraded_write_hold_becomes_a_read_hold(race: Timeline) -> None:
    umem = [s for s in race.spans if s.lane == 0 and s.name == "umem_rwsem"]
    assert [(s.mode, s.start, s.end) for s in umem] == [("write", 5, 5), ("read", 5, 7)]


def test_the_violation_is_the_first_and_sits_on_its_task(race: Timeline) -> None:
    v = race.violation
    assert v is not None
    assert (v.step, v.lane, v.kind) == (39, 3, "stale-translation")
    assert "B installed 0x14000" in v.text
    assert [m.kind for m in race.violations] == [
        "stale-translation",
        "stale-translation",
        "stale-dma",
    ]


def test_rows_cover_every_step_and_name_who_finished(race: Timeline) -> None:
    assert [row.step for row in race.rows] == list(range(1, 47))
    ends = {row.step: row.lane for row in race.rows if row.action == "end"}
    assert ends == {31: 2, 39: 3, 42: 1, 45: 4, 46: 0}
    row = race.rows[32]
    assert (row.step, row.lane, row.action, row.text) == (33, 3, "checkpoint", "fault(B, 0x14000)")
    assert race.rows[23].action == "park"


def test_unclosed_spans_end_at_the_last_step(lock_order: Timeline) -> None:
    held = [s for s in lock_order.spans if s.is_lock]
    assert {(s.lane, s.name) for s in held} == {(1, "a"), (2, "b")}
    assert all(s.is_open and s.end == lock_order.steps == 7 for s in held)
    waits = {s.lane: s for s in lock_order.spans if s.category == "wait"}
    assert (waits[1].name, waits[1].start, waits[1].is_open) == ("b", 7, True)
    assert lock_order.deadlock is not None
    assert lock_order.violation is not None
    assert lock_order.violation.kind == "deadlock"


def test_nested_holds_and_primitive_state_in_labels() -> None:
    slots = "SlotPool 'slots' (1 free)"
    trace = (
        (1, 1, NOTE, ("acquire-read", "RWLock 'r'")),
        (1, 1, NOTE, ("acquire-read", "RWLock 'r'")),
        (1, 1, NOTE, ("acquire", slots)),
        (1, 1, CHECKPOINT, "x"),
        (2, 1, NOTE, ("release", "RWLock 'r'")),
        (2, 1, NOTE, ("release", "SlotPool 'slots' (2 free)")),
        (2, 1, NOTE, ("release", "Mutex 'never taken'")),
        (2, 1, PARK, "RWLock 'r'"),
    )
    tl = Timeline.from_execution(_execution(trace, steps=3))
    locks = sorted((s.name, s.start, s.end, s.is_open) for s in tl.spans if s.is_lock)
    assert locks == [("r", 1, 2, False), ("r", 1, 3, True), ("slots", 1, 2, False)]


def test_who_finished_a_step_without_a_pause() -> None:
    trace = (
        (1, 1, CHECKPOINT, "x"),
        (2, 1, NOTE, ("release", "Mutex 'm'")),  # worker returns in step 2
        (3, 2, CHECKPOINT, "y"),
    )
    tasks = ((0, "main"), (1, "worker"), (2, "other"))
    events = (Event(4, "other", "dma", "T", "DMA read T[0x1000]"),)
    tl = Timeline.from_execution(_execution(trace, steps=6, tasks=tasks, events=events))
    assert [(r.step, r.lane, r.action) for r in tl.rows] == [
        (1, 1, "checkpoint"),
        (2, 1, "end"),  # from its note
        (3, 2, "checkpoint"),
        (4, 2, "end"),  # from its event
        (5, 0, "end"),  # by elimination: main is the only task left
        (6, None, "end"),  # nobody left to name
    ]


def test_window_events_pair_by_key_and_a_lone_end_is_an_instant() -> None:
    trace = ((1, 1, CHECKPOINT, "a"), (2, 1, CHECKPOINT, "b"), (3, 1, CHECKPOINT, "c"))
    events = (
        Event(1, "worker", "fault-begin", "f", "f attempt 1"),
        Event(2, "worker", "fault-end", "f", "f must retry"),
        Event(2, "worker", "fault-begin", "f", "f attempt 2"),
        Event(3, "worker", "invalidate-end", "inv9", "inv9"),
        Event(3, "nobody", "zap", "T", "T[0x1000] zapped", 0x1000),
    )
    tl = Timeline.from_execution(_execution(trace, steps=3, events=events))
    faults = [(s.detail, s.start, s.end, s.is_open) for s in tl.spans if s.category == "fault"]
    assert faults == [("f attempt 1", 1, 2, False), ("f attempt 2", 2, 3, True)]
    assert [(i.category, i.lane) for i in tl.instants] == [("invalidate-end", 1), ("zap", None)]


def test_labels() -> None:
    assert describe_label(("fault", "B", 0x14000)) == "fault(B, 0x14000)"
    assert describe_label(("invalidate", 0, "after start")) == "invalidate(0, after start)"
    assert describe_label(None) == "checkpoint"
    assert short_resource("SlotPool 'p' (0 free)") == ("SlotPool 'p'", "p")
    assert short_resource("its task group's children") == ("its task group's children",) * 2


def test_an_execution_without_a_trace_is_refused() -> None:
    ex = Target.resolve("classic:lock-order").run(RandomChooser(0), max_steps=100)
    with pytest.raises(InvalidArgument, match=r"trace=True"):
        Timeline.from_execution(ex)


def test_the_model_is_frozen(race: Timeline) -> None:
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        race.steps = 0  # type: ignore[misc]
