from __future__ import annotations

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore.target import Execution
from odp_async.report import Timeline, render_text


def _table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("step"))
    return lines[start:]


def test_a_column_per_actor(race: Timeline) -> None:
    head = _table(render_text(race, width=120))[0].split()
    assert head == ["step", "main", "madvise", "register", "fault", "dma"]


def test_the_violation_row_is_highlighted(race: Timeline) -> None:
    table = _table(render_text(race, width=120))
    marked = [line for line in table if line.startswith(">>")]
    assert marked[0].split()[:2] == [">>", "39"]
    assert any("stale-translation" in line for line in marked)
    assert any(
        line.startswith(">> stale-translation at 0x14000 (step 39, fault)") for line in table
    )
    assert "!! stale-transl" in "\n".join(table)


def _column(table: list[str], step: int, task: str) -> str:
    """The cell of `task` on the row of `step`."""
    head = table[0]
    start = head.index(task)
    ends = [head.index(t) for t in ("main", "madvise", "register", "fault", "dma")]
    end = min([e for e in ends if e > start], default=len(head) + 100)
    row = next(
        line for line in table[2:] if line[:8].split() in (([str(step)]), [">>", str(step)])
    )
    return row[start:end]


def test_lock_holds_and_the_invalidation_window_are_marked(race: Timeline) -> None:
    text = render_text(race, width=120)
    assert "m = RWLock 'mmap_sem'" in text
    table = _table(text)
    # madvise holds mmap_sem for read inside the invalidation window from 26 to 42.
    for step in (26, 30, 35, 42):
        assert _column(table, step, "madvise").startswith("|m"), step
    assert not _column(table, 43, "madvise").strip()
    assert "+inv0" in text
    assert "-inv0" in text
    # main takes mmap_sem for write at step 2; the fault path holds B.umem_mutex at 38.
    assert _column(table, 2, "main").startswith("M ")
    assert _column(table, 38, "fault").startswith(":B")


def test_the_running_task_shows_what_it_does(race: Timeline) -> None:
    table = _table(render_text(race, width=200))
    assert _column(table, 33, "fault").strip() == "fault(B, 0x14000)"
    assert _column(table, 24, "main").strip().endswith("wait its task group's children")
    assert _column(table, 46, "main").strip() == "(ends)"


def test_deterministic(race_execution: Execution, race: Timeline) -> None:
    again = Timeline.from_execution(race_execution, title="registration-race/odp2014")
    assert again == race
    assert render_text(race) == render_text(again) == render_text(race)


def test_columns_are_cut_to_the_width(race: Timeline) -> None:
    table = _table(render_text(race, width=100))
    assert max(len(line) for line in table if not line.startswith(">> ")) <= 100
    assert "…" in "\n".join(table)


def test_a_general_program_with_a_deadlock(lock_order: Timeline) -> None:
    text = render_text(lock_order, width=100)
    assert _table(text)[0].split() == ["step", "main", "AB", "BA"]
    assert ">>   7" in text
    assert "AB waits for Mutex 'b' held by BA" in text
    assert "wait b [Mutex]" in text


def test_a_bad_width_is_refused(race: Timeline) -> None:
    with pytest.raises(InvalidArgument, match="width"):
        render_text(race, width=10)


def test_a_long_task_name_keeps_its_end() -> None:
    # trial 40b, f5: two lanes "rw_downgrade_window.<locals>.updater" and
    # "...other_writer" both showed as "rw_downgrade_window.…"
    from odp_async import checkpoint, task_group
    from odp_async._runtime.choosers import RandomChooser
    from odp_async.explore.target import Target
    from odp_async.scenarios import Scenario

    async def a_program_with_long_task_names() -> None:
        async def updater() -> None:
            await checkpoint()

        async def other_writer() -> None:
            await checkpoint()

        async with task_group() as tg:
            tg.start_soon(updater)
            tg.start_soon(other_writer)

    scenario = Scenario("long-names", "", a_program_with_long_task_names, (), needs_world=False)
    ex = Target(scenario, None, {}, None).run(RandomChooser(0), max_steps=100, trace=True)
    head = _table(render_text(Timeline.from_execution(ex), width=80))[0]
    titles = head.split()[1:]
    assert titles[1:] == ["…updater", "…other_writer"], head
    assert len(set(titles)) == len(titles) == 3, head


def test_the_legend_names_the_model_s_windows_only_where_they_are_drawn(
    race: Timeline,
) -> None:
    """A timeline of plain code (no invalidation, fault or registration windows) has no
    legend for them (new-user trial: a plain function's text timeline explained the ODP
    marks); the model's race keeps the whole legend."""
    from odp_async import checkpoint, task_group
    from odp_async.explore.target import Target
    from odp_async.sim import RandomChooser

    async def two_bumps() -> None:
        box = {"n": 0}

        async def bump() -> None:
            seen = box["n"]
            await checkpoint()
            box["n"] = seen + 1

        async with task_group() as tg:
            tg.start_soon(bump)
            tg.start_soon(bump)

    execution = Target.resolve(two_bumps).run(RandomChooser(0), max_steps=100, trace=True)
    plain = " ".join(render_text(Timeline.from_execution(execution), width=200).split())
    assert ". blocked, z asleep." in plain
    for mark in ("invalidation window", "fault attempt", "+x / -x"):
        assert mark not in plain
    model = " ".join(render_text(race, width=200).split())
    for mark in (". blocked, z asleep; | invalidation window open", "fault attempt", "+x / -x"):
        assert mark in model
