from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from odp_async.errors import InvalidArgument
from odp_async.report import Timeline, render_trace, write_trace


def _check_format(trace: dict[str, Any], timeline: Timeline) -> None:
    assert set(trace) == {"traceEvents", "displayTimeUnit", "otherData"}
    assert trace["displayTimeUnit"] == "ms"
    events = trace["traceEvents"]
    assert events
    for ev in events:
        for field in ("name", "ph", "ts", "pid", "tid"):
            assert field in ev, (field, ev)
        assert isinstance(ev["name"], str)
        assert isinstance(ev["ts"], int)
        assert ev["ts"] >= 0
        assert ev["ph"] in {"M", "X", "i"}
        if ev["ph"] == "X":
            assert isinstance(ev["dur"], int)
            assert ev["dur"] >= 0
            assert "cat" in ev
        if ev["ph"] == "i":
            assert ev["s"] in {"t", "p", "g"}
    names = {
        ev["tid"]: ev["args"]["name"]
        for ev in events
        if ev["ph"] == "M" and ev["name"] == "thread_name"
    }
    for lane in timeline.lanes:
        assert names[lane.task_id + 1] == lane.title
    assert any(ev["ph"] == "M" and ev["name"] == "process_name" for ev in events)
    # Every thread used by an event is named.
    used = {ev["tid"] for ev in events if ev["ph"] != "M" and ev.get("s") not in ("g", "p")}
    assert used <= set(names)
    assert json.loads(json.dumps(trace)) == trace


def _check_nesting(trace: dict[str, Any]) -> None:
    """Complete events on one thread nest or are apart (what Perfetto requires)."""
    per_tid: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for ev in trace["traceEvents"]:
        if ev["ph"] == "X":
            per_tid[ev["tid"]].append((ev["ts"], ev["ts"] + ev["dur"]))
    for ranges in per_tid.values():
        stack: list[tuple[int, int]] = []
        for start, end in sorted(ranges, key=lambda r: (r[0], -r[1])):
            while stack and stack[-1][1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1][1], (start, end, stack)
            stack.append((start, end))


def test_registration_race(race: Timeline) -> None:
    trace = render_trace(race)
    _check_format(trace, race)
    _check_nesting(trace)
    events = trace["traceEvents"]
    violations = [ev for ev in events if ev.get("cat") == "violation"]
    assert violations[0]["ph"] == "i"
    assert violations[0]["s"] == "g"
    assert violations[0]["ts"] // 1000 == 39
    assert "stale-translation" in violations[0]["args"]["text"]
    assert trace["otherData"]["violation"].startswith("stale-translation at 0x14000")
    cats = {ev.get("cat") for ev in events}
    assert {"lock", "invalidate", "fault", "register", "step", "install"} <= cats
    inv = next(ev for ev in events if ev.get("cat") == "invalidate")
    assert (inv["ts"], inv["dur"], inv["tid"]) == (26_000, 17_000, 2)


def test_a_deadlock(lock_order: Timeline) -> None:
    trace = render_trace(lock_order)
    _check_format(trace, lock_order)
    _check_nesting(trace)
    assert trace["otherData"]["outcome"] == "deadlock"
    assert "AB waits for" in trace["otherData"]["deadlock"]


def test_write_trace(tmp_path: Path, race: Timeline) -> None:
    path = tmp_path / "race.json"
    write_trace(race, path)
    assert json.loads(path.read_text(encoding="utf-8")) == render_trace(race)
    assert render_trace(race) == render_trace(race)


def test_an_unwritable_path_is_named(tmp_path: Path, race: Timeline) -> None:
    path = tmp_path / "missing" / "race.json"
    with pytest.raises(InvalidArgument, match="missing") as info:
        write_trace(race, path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
