"""`SimRuntime.keeps_notes`: a run that records no notes (no footprints, no trace) builds
none of what the primitives' hot paths would note.

An `RWLock` read hold notes a read of the lock and the reader's own field, and a wake
with nobody parked a read of its queue: in a plain run (the explorer's random schedules)
nothing records them, so nothing is built; in a run that keeps footprints or a trace the
same notes are there as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async import sync
from odp_async._runtime import sim
from odp_async._runtime.footprint import FieldOf, ReadOf
from odp_async.sync import RWLock, WaitQueue
from tests.test_sync_mutation_kills import _FootprintRecorder as _Recorder


async def readers() -> list[bool]:
    """Two tasks take and give back a read hold; an empty wake; what `keeps_notes` said."""
    lock = RWLock("l")
    queue = WaitQueue("q")
    seen: list[bool] = []

    async def reader() -> None:
        seen.append(rt.current_runtime().keeps_notes)  # type: ignore[attr-defined]
        async with lock.read_locked():
            await rt.checkpoint("held")
        queue.wake_all()
        queue.wake_one()
        await rt.checkpoint("after")  # (the recorder reads a step's footprint at the next)

    async with rt.task_group() as g:
        g.start_soon(reader)
        g.start_soon(reader)
    return seen


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every `ReadOf` and `FieldOf` `odp_async.sync` builds, counted."""
    made: list[object] = []

    def read_of(resource: object) -> ReadOf:
        made.append(resource)
        return ReadOf(resource)

    def field_of(owner: object, part: Any) -> FieldOf:
        made.append(owner)
        return FieldOf(owner, part)

    monkeypatch.setattr(sync, "ReadOf", read_of)
    monkeypatch.setattr(sync, "FieldOf", field_of)
    return made


def test_a_plain_run_builds_no_notes(built: list[object]) -> None:
    for seed in range(3):
        r = sim.run(readers, seed=seed)
        assert r.unwrap() == [False, False]
    assert built == []


def test_a_traced_run_keeps_the_notes(built: list[object]) -> None:
    r = sim.run(readers, seed=0, trace=True)
    assert r.unwrap() == [True, True]
    assert built  # the read holds and the empty wakes were noted
    assert r.trace is not None
    notes = [label for (_, _, op, label) in r.trace if op == sim.NOTE]
    assert notes.count(("acquire-read", "RWLock 'l'")) == 2
    assert notes.count(("release", "RWLock 'l'")) == 2


def test_a_footprint_run_keeps_the_notes(built: list[object]) -> None:
    recorder = _Recorder()
    r = sim.run(readers, chooser=recorder)
    assert r.unwrap() == [True, True]
    writes: set[object] = set()
    for fp in recorder.footprints:
        if fp is not None:
            writes |= fp.writes
    reads = {w.read_of for w in writes if isinstance(w, ReadOf)}
    assert any(isinstance(x, RWLock) for x in reads)  # the read holds read the lock
    assert any(isinstance(x, WaitQueue) and x.name == "q" for x in reads)  # the empty wakes
    fields = [w for w in writes if isinstance(w, FieldOf) and isinstance(w.owner, RWLock)]
    assert {f.part[0] for f in fields} == {"reader"}  # each reader's own field
    assert len({f.part for f in fields}) == 2
