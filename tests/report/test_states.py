"""Per-step states and explained violations, for every built-in scenario and program."""

from __future__ import annotations

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore.target import Execution, Target
from odp_async.report import Timeline, render_html
from odp_async.report.layout import layout
from odp_async.report.states import explain, step_states
from odp_async.scenarios import BUILTIN, CLASSIC
from odp_async.sim import RandomChooser, ScriptChooser


def _run(target: Target) -> Execution:
    script = target.scenario.script
    chooser = ScriptChooser(script) if script else RandomChooser(1)
    return target.run(chooser, max_steps=20_000, trace=True)


@pytest.mark.parametrize(
    "source",
    [*(f"{name}/odp2014" for name in BUILTIN), *(f"classic:{name}" for name in CLASSIC)],
)
def test_every_builtin_gets_a_report(source: str) -> None:
    name, _, protocol = source.partition("/")
    target = Target.resolve(name, protocol or None)
    ex = _run(target)
    states = step_states(ex, target)
    assert [s["step"] for s in states] == list(range(1, ex.sim.steps + 1))
    assert ("regions" in states[-1]) == target.scenario.needs_world
    sentences = explain(ex, states)
    assert len(sentences) == len(ex.violations)
    for v, said in zip(ex.violations, sentences, strict=True):
        assert said["step"] == v.step
        assert v.kind in said["sentence"]
        assert all(c <= v.step for c in said["causes"])
    for v in ex.violations:
        if v.step <= len(states):
            assert states[v.step - 1]["violations"]
    page = render_html(ex, target=target)
    assert Timeline.from_execution(ex).verdict in page
    drawing = layout(Timeline.from_execution(ex, title=target.label), 600)
    for text in drawing.texts:
        assert text.extent[0] >= 0
        assert text.extent[1] <= drawing.width


def test_a_stale_translation_names_its_causes(race_execution: Execution) -> None:
    target = Target.resolve("registration-race", "odp2014")
    states = step_states(race_execution, target)
    said = explain(race_execution, states)[0]["sentence"]
    assert "installed it at step 39" in said
    assert "0x14000 was unmapped (it mapped frame 4.1)" in said
    assert "freed at step 39" in said
    # the region's translation is shown against the page table
    b = next(r for r in states[39 - 1]["regions"] if r["name"] == "B")
    assert b["translations"][0]["ok"] is False
    assert b["translations"][0]["pte"] == "none"
    before = next(r for r in states[38 - 1]["regions"] if r["name"] == "B")
    assert before["translations"] == []


def test_preemptions_are_told_apart(race_execution: Execution) -> None:
    states = step_states(race_execution)
    preempted = [s["step"] for s in states if s["preemption"]]
    assert preempted[:3] == [28, 37, 38]
    assert "blocked" in states[25 - 1]["why"] or "finished" in states[25 - 1]["why"]
    assert "runnable" not in states[25 - 1]["why"]  # no target: no re-run, no runnable list


def test_a_deadlock_names_the_cycle_and_where_locks_were_taken() -> None:
    target = Target.resolve("fixed-pool-deadlock", "hmm-pool")
    ex = _run(target)
    tl = Timeline.from_execution(ex)
    assert tl.verdict == "deadlock"
    assert len(tl.cycle) >= 2
    said = explain(ex, step_states(ex, target))[-1]["sentence"]
    assert "waits for" in said
    assert "taken at step" in said


def test_another_target_does_not_pass_for_this_run(race_execution: Execution) -> None:
    other = Target.resolve("fault-vs-munmap", "odp2014")
    with pytest.raises(InvalidArgument, match="did not reproduce"):
        step_states(race_execution, other)


def test_a_general_programs_shared_state_is_shown() -> None:
    target = Target.resolve("classic:lost-update")
    ex = target.run(RandomChooser(0), max_steps=1000, trace=True)
    states = step_states(ex, target)
    # both increments read x == 0 before either wrote: the lost update, step by step
    at5 = states[5 - 1]
    assert at5["variables"]["inc1"]["value"] == "0"
    assert at5["variables"]["inc2"]["value"] == "0"
    assert at5["touched"] == "a step touching {r:'x'}"
    assert states[6 - 1]["variables"]["inc1"]["state"] == "{'x': 1}"
    assert "variables" not in step_states(ex)[0]  # without the target: no re-run
