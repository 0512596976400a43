"""Replay tokens and shrinking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from odp_async.errors import InvalidArgument, NondeterminismError, ReplayMismatch
from odp_async.explore.shrink import LenientReplay, shrink
from odp_async.explore.target import Target
from odp_async.explore.tokens import decode_token, encode_token, replay_token
from odp_async.scenarios import BUILTIN
from odp_async.sim import RandomChooser, ReplayChooser, ScriptChooser


def failing_run(
    name: str, protocol: str | None, seeds: range = range(500)
) -> tuple[Target, object]:
    target = Target.resolve(name, protocol)
    for seed in seeds:
        execution = target.run(RandomChooser(seed), max_steps=20_000)
        if execution.is_failure:
            return target, execution
    raise AssertionError(f"no failing schedule for {name} in {seeds}")


def test_a_token_round_trips_and_replays_to_the_same_violation() -> None:
    target, execution = failing_run("registration-race", "odp2014")
    token = encode_token(target, execution.sim.schedule, execution, 20_000)
    assert token.startswith("odp2.")
    decoded = decode_token(token)
    assert (decoded.source, decoded.protocol, decoded.schedule) == (
        "registration-race",
        "odp2014",
        execution.sim.schedule,
    )
    again = replay_token(token)
    assert again.failure == execution.failure


def test_a_token_replays_in_a_fresh_process() -> None:
    target, execution = failing_run("stray-end-corruption", "odp2014")
    token = encode_token(target, execution.sim.schedule, execution, 20_000)
    code = textwrap.dedent(
        f"""
        import json
        from odp_async.explore.tokens import replay_token
        v = replay_token({token!r}).failure
        print(json.dumps([v.kind, v.step, list(v.tasks), list(v.addresses)]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONHASHSEED="4321"),
    )
    kind, step, tasks, addresses = json.loads(out.stdout)
    first = execution.failure
    assert first is not None
    assert (kind, step, tuple(tasks), tuple(addresses)) == (
        first.kind,
        first.step,
        first.tasks,
        first.addresses,
    )


@pytest.mark.parametrize(
    ("mangle", "needle"),
    [
        (lambda t: t[:-3], "checksum"),
        (lambda t: t[:30], "malformed token|checksum"),
        (lambda t: t.replace("odp2.", "odp9."), "version 'odp9'"),
        (lambda t: "hello", "malformed token 'hello'"),
        (lambda t: t[:12] + ("A" if t[12] != "A" else "B") + t[13:], "checksum"),
    ],
)
def test_malformed_tokens_are_named(mangle: object, needle: str) -> None:
    target, execution = failing_run("fault-vs-munmap", "naive")
    token = encode_token(target, execution.sim.schedule, execution, 20_000)
    with pytest.raises(InvalidArgument, match=needle):
        decode_token(mangle(token))  # type: ignore[operator]


def test_a_token_that_no_longer_fits_the_code_fails_loudly() -> None:
    _, execution = failing_run("registration-race", "odp2014")
    # the same schedule against another protocol: the choices no longer mean the same
    other = Target.resolve("registration-race", "odp2014-ctx")
    token = encode_token(other, execution.sim.schedule, execution, 20_000)
    with pytest.raises(
        ReplayMismatch, match=r"recorded stale-translation at step|the recorded schedule has"
    ):
        replay_token(token)


def test_objects_without_a_name_get_no_token() -> None:
    scenario = BUILTIN["fault-vs-munmap"]
    target = Target(scenario, "naive", {}, None)
    execution = target.run(ScriptChooser(scenario.script), max_steps=20_000)
    with pytest.raises(InvalidArgument, match="register it by name"):
        encode_token(target, execution.sim.schedule, execution, 20_000)


def test_lenient_replay_counts_preemptions_and_falls_back() -> None:
    target = Target.resolve("classic:two-preemptions")
    chooser = LenientReplay([9, 9, 9])  # out of range answers fall back to the default
    execution = target.run(chooser, max_steps=1000)
    assert chooser.preemptions == 0
    assert not execution.is_failure
    again = target.run(ReplayChooser(chooser.taken), max_steps=1000)
    assert again.sim.schedule == tuple(chooser.taken)


def test_shrinking_a_long_schedule_makes_it_readable() -> None:
    """A random failing schedule of the storm scenario: hundreds of steps, many
    preemptions, shrunk to a few dozen (seed 0: 253 -> 51, 30 rounds -> 15; 38 before
    charges waited for the fault's window to turn over, 36 when the bound counted
    generations of holders).  Not to a handful: an end charges the fault only if no task
    it waits on (its own, or an invalidation's still in flight since the last charge) was
    passed over by the scheduler since, so each of the 13 charges needs the storms'
    invalidations to overlap anew while both storm tasks run, mostly a switch between
    them, and a charge counts only once the invalidations in flight at the wait's first
    charge have ended with the fault still held; the handful of before kept one storm
    task off the CPU, the scheduler's doing."""
    target = Target.resolve("storm-register-during", "kvm-seq", params={"rounds": 30})
    execution = next(
        ex
        for ex in (target.run(RandomChooser(seed), max_steps=20_000) for seed in range(100))
        if ex.is_failure
    )
    assert execution.failure is not None
    kind = execution.failure.kind
    original = LenientReplay(execution.sim.schedule)
    target.run(original, max_steps=20_000)
    result = shrink(target, execution.sim.schedule, kind, max_steps=20_000)
    assert execution.sim.steps > 200
    assert result.preemptions_before == original.preemptions > 5
    assert result.preemptions_after <= 55 < result.preemptions_before // 4
    assert result.execution.failure is not None
    assert result.execution.failure.kind == kind
    assert result.params["rounds"] < 30  # fewer actor operations, too
    shrunk_target = target.with_params(**result.params)
    replayed = shrunk_target.run(ReplayChooser(result.schedule), max_steps=20_000)
    assert replayed.failure == result.execution.failure
    token = encode_token(shrunk_target, result.schedule, result.execution, 20_000)
    assert decode_token(token).params == result.params
    assert replay_token(token).failure == result.execution.failure


def test_scenario_parameters_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="has no parameter 'round'"):
        Target.resolve("storm-register-during", "kvm-seq", params={"round": 3})
    with pytest.raises(InvalidArgument, match="must be a positive int, got 0"):
        Target.resolve("storm-register-during", "kvm-seq", params={"rounds": 0})


def test_shrinking_is_deterministic() -> None:
    target, execution = failing_run("registration-race", "odp2014")
    assert execution.failure is not None
    kind = execution.failure.kind
    a = shrink(target, execution.sim.schedule, kind, max_steps=20_000)
    b = shrink(target, execution.sim.schedule, kind, max_steps=20_000)
    assert a.schedule == b.schedule
    assert a.preemptions_after <= a.preemptions_before


def test_shrinking_a_schedule_that_does_not_fail_is_refused() -> None:
    target = Target.resolve("classic:lost-update")
    with pytest.raises(NondeterminismError, match="its replay does not"):
        shrink(target, (), "error", max_steps=1000)
