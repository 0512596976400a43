"""`ScriptChooser.finish` and `run_script`: a run that did not follow its script says which
step it missed and why, and is never a pass (``explore --chooser script``'s judge; the CLI
tests, from a user's file, are in tests/test_cli_script.py)."""

from __future__ import annotations

import attrs
import pytest

from odp_async import checkpoint, task_group
from odp_async.errors import InvalidArgument
from odp_async.explore.scripted import run_script
from odp_async.explore.target import Target
from odp_async.scenarios import Scenario, Verdict
from odp_async.sim import ScriptChooser, run
from odp_async.sync import Completion


async def two_steps() -> None:
    async def worker(tag: str) -> None:
        await checkpoint(("worker", tag, "one"))
        await checkpoint(("worker", tag, "two"))

    async with task_group() as tg:
        tg.start_soon(worker, "a", name="a")
        tg.start_soon(worker, "b", name="b")


async def both_wait() -> None:
    never = Completion("never")

    async def waits(tag: str) -> None:
        await checkpoint(f"{tag} before")
        await never.wait()

    async with task_group() as tg:
        tg.start_soon(waits, "a", name="a")
        tg.start_soon(waits, "b", name="b")


async def spins() -> None:
    async def spin() -> None:
        while True:
            await checkpoint("spin")

    async with task_group() as tg:
        tg.start_soon(spin, name="spinner")


def test_a_followed_script_is_done_after_finish() -> None:
    """A last step without until whose task blocked as the run ended (deadlocked): done,
    though no choice came after it to see it block."""
    chooser = ScriptChooser([("b", "before"), ("a", None), ("b", None)])
    result = run(both_wait, chooser=chooser)
    assert result.outcome == "deadlock"
    assert not chooser.is_done
    assert chooser.finish() is None
    assert chooser.is_done


def test_a_task_that_never_ran() -> None:
    chooser = ScriptChooser([("a", None), ("ghost", None)])
    run(two_steps, chooser=chooser)
    assert chooser.finish() == "script step 1 ['ghost'] was not reached: task 'ghost' never ran"


def test_an_until_no_label_holds_lists_the_labels() -> None:
    chooser = ScriptChooser([("b", "one"), ("a", "three")])
    run(two_steps, chooser=chooser)
    assert chooser.finish() == (
        "script step 1 ['a', 'three'] was not reached: task 'a' was never paused at a "
        "checkpoint whose label contains 'three' from that step on (it was paused at: "
        "'worker(a, one)', 'worker(a, two)')"
    )
    # a new run starts afresh
    chooser.new_execution()
    assert chooser.position == 0


def test_a_run_stopped_at_its_step_bound() -> None:
    chooser = ScriptChooser([("spinner", None)])
    result = run(spins, chooser=chooser, max_steps=50)
    assert result.outcome == "step-limit"
    assert chooser.finish(run_over=False) == (
        "script step 0 ['spinner'] was not reached: task 'spinner' was still running when "
        "the run stopped at its step bound"
    )
    chooser = ScriptChooser([("spinner", "spin"), ("ghost", None)])
    run(spins, chooser=chooser, max_steps=50)
    assert chooser.finish(run_over=False) == (
        "script step 1 ['ghost'] was not reached: task 'ghost' never ran before the run "
        "stopped at its step bound"
    )


def test_run_script_never_passes_a_script_it_did_not_follow() -> None:
    """The run ends clean, as expected, but the script's second step never came: no
    match."""
    scenario = Scenario(
        "two-steps",
        "two workers",
        two_steps,
        ("a", "b"),
        needs_world=False,
        script=(("b", "one"), ("a", "three")),
    )
    judged = run_script(Target.resolve(scenario), max_steps=1000)
    assert judged.verdict is Verdict.CLEAN
    assert judged.expected is Verdict.CLEAN
    assert not judged.is_followed
    assert not judged.matches
    assert judged.unfollowed is not None
    assert "['a', 'three']" in judged.unfollowed
    assert judged.token is None
    assert judged.no_token
    fixed = attrs.evolve(scenario, script=(("b", "one"), ("a", "two")))
    judged = run_script(Target.resolve(fixed), max_steps=1000)
    assert judged.is_followed
    assert judged.matches


def test_run_script_refuses_a_scenario_with_no_script() -> None:
    scenario = Scenario("plain", "no script", two_steps, ("a", "b"), needs_world=False)
    with pytest.raises(InvalidArgument, match=r"scenario 'plain' has no script"):
        run_script(Target.resolve(scenario), max_steps=1000)
