"""The one-preemption sweep: its base run, its order, its classes of identical tasks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore.sweep import SweepChooser
from odp_async.explore.target import Target
from odp_async.scenarios import Verdict


def _run(name: str, chooser: SweepChooser) -> bool:
    return Target.resolve(name).run(chooser, max_steps=50_000).is_failure


def test_ordinals_walk_the_base_run_front_to_back() -> None:
    base = SweepChooser(None)
    assert not _run("classic:twostage_10", base)
    assert base.preempted_at is None
    total = base.total
    assert total > 0
    places = []
    for j in range(total):
        chooser = SweepChooser(j)
        _run("classic:twostage_10", chooser)
        assert chooser.preempted_at is not None
        places.append(chooser.preempted_at)
    assert places == sorted(places)  # the preemption moves forward, never back
    assert places[-1] == base.opportunities - 1
    past = SweepChooser(total)  # past the end: the base run again, no preemption
    _run("classic:twostage_10", past)
    assert past.preempted_at is None
    assert past.total == total


def test_identical_fresh_tasks_are_one_alternative() -> None:
    # 100 writers started at scheduling points, then the reader: the writers not yet
    # run are one alternative, so the sweep is about 5 per writer, not 100
    target = Target.resolve("classic:twostage_100")
    base = SweepChooser(None)
    target.run(base, max_steps=50_000)
    assert base.total < 5 * 100
    hit = target.run(SweepChooser(103), max_steps=50_000)
    assert hit.verdict is Verdict.FOUND
    assert not any(
        target.run(SweepChooser(j), max_steps=50_000).is_failure for j in range(100, 103)
    )


@pytest.mark.parametrize("bad", [-1, True, "3", 1.0])
def test_a_bad_ordinal_is_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="ordinal must be None or an int >= 0"):
        SweepChooser(bad)  # type: ignore[arg-type]


TWINS = """
from odp_async import checkpoint, task_group


async def twins() -> None:
    async def worker() -> None:
        await checkpoint()  # no label: a started task looks like a fresh one by its label
        await checkpoint()

    async with task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
"""


def test_a_started_task_is_not_in_the_class_of_fresh_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first worker, paused at an unlabelled checkpoint, may be preempted for its
    # twin, which has not started: two different alternatives, not one class
    (tmp_path / "sweep_twins.py").write_text(textwrap.dedent(TWINS))
    monkeypatch.syspath_prepend(str(tmp_path))
    target = Target.resolve("sweep_twins:twins")
    base = SweepChooser(None)
    target.run(base, max_steps=1000)
    assert base.opportunities == 2
    assert base.total == 2
    first = SweepChooser(0)
    execution = target.run(first, max_steps=1000)
    assert first.preempted_at == 0
    assert execution.sim.schedule[:2] == (0, 1)  # the older worker starts, then its twin
