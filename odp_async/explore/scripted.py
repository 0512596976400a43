"""A scenario's script, run once and judged: the readable interleaving that shows its bug.

Contract
    `run_script(target, max_steps=...)` runs ``target.scenario.script`` once under the
    sim (a `ScriptChooser`; oldest first once the script is done) and returns a
    `ScriptRun`: the run, its verdict (`Target.verdict_of`), the verdict the scenario
    expects of the target's protocol under the script (`Scenario.script_expected_for`),
    whether the run followed the script to its end, and a replay token of the run.

    A run that did not follow the script (a step whose task never ran, or was never
    paused, from that step on, at a checkpoint whose label contains the step's ``until``
    text, or was still running at the step bound) has no verdict under the script:
    `ScriptRun.unfollowed` names the step, its task and ``until``, and the labels the
    task was paused at (`ScriptChooser.finish`), and `ScriptRun.matches` is False
    whatever the run found.  A script that no longer fits the code is never a pass.
    Under a protocol the scenario names in `Scenario.script_unfollowed` (its fix makes
    the interleaving impossible), it is the other way round: `ScriptRun.matches` is True
    only for a run that did not follow the script (`expect_unfollowed`) and found
    nothing or what the protocol is expected to have (a violation it ran into off the
    script is still a violation), and a run that followed it is a mismatch whatever its
    verdict.

    Raises `InvalidArgument` for a scenario with no script, and what `Target.run` raises
    (`ScenarioUsageError` for a scenario file's own mistake found while it runs).

See also
    `odp_async._runtime.choosers.ScriptChooser`, ``odp-async explore SCENARIO --chooser
    script`` (`odp_async.cli`), `odp_async.explore.tokens`.
"""

from __future__ import annotations

import attrs

from .._runtime.choosers import ScriptChooser
from ..errors import InvalidArgument
from ..odp.protocols import PROTOCOLS
from ..scenarios.model import Verdict
from .target import Execution, Target
from .tokens import encode_token

__all__ = ["ScriptRun", "run_script"]


@attrs.frozen
class ScriptRun:
    """One run of a scenario's script under one target, judged (see the module docstring)."""

    target: Target
    execution: Execution
    #: What the run amounts to (`Target.verdict_of`); ``inconclusive`` for a run
    #: unfinished at the step bound.
    verdict: Verdict
    #: What the scenario expects of the protocol under its script; None for a protocol
    #: class of your own under a built-in scenario, or a protocol run with options other
    #: than its defaults (a variant), of which it expects nothing (the run then matches
    #: when clean, as a run of `explore` passes).
    expected: Verdict | None
    #: Why the run did not follow the script to its end (one line), or None if it did.
    unfollowed: str | None
    #: A token replaying this run (``odp-async replay TOKEN --html run.html``), or None
    #: (then `no_token` says why).
    token: str | None
    no_token: str | None = None
    #: The scenario expects no run under this protocol to follow the script
    #: (`Scenario.script_unfollowed`): then `expected` is not what the run is held to.
    expect_unfollowed: bool = False

    @property
    def is_followed(self) -> bool:
        """Whether the run followed the script to its end."""
        return self.unfollowed is None

    @property
    def matches(self) -> bool:
        """The run followed the script and its verdict is the one expected; or, under a
        protocol expected not to follow it (`expect_unfollowed`), it did not, and it is
        clean or has the verdict expected of the protocol."""
        if self.expect_unfollowed:
            return self.unfollowed is not None and self.verdict in (Verdict.CLEAN, self.expected)
        return self.unfollowed is None and self.verdict is (self.expected or Verdict.CLEAN)


def run_script(target: Target, *, max_steps: int) -> ScriptRun:
    """Run `target`'s scenario's script once, at most `max_steps` steps (then judged as
    `Target.run` judges the step bound), and judge it (see the module docstring)."""
    scenario = target.scenario
    if not scenario.script:
        raise InvalidArgument(
            f"scenario {scenario.name!r} has no script (a file's [script] table, a "
            "Scenario's script=) to run"
        )
    chooser = ScriptChooser(scenario.script)
    execution = target.run(chooser, max_steps=max_steps)
    unfollowed = chooser.finish(run_over=execution.sim.outcome != "step-limit")
    protocol = target.protocol if scenario.needs_world else "-"
    expect_unfollowed = protocol in scenario.script_unfollowed
    mine = target.protocol_class
    expected: Verdict | None = scenario.script_expected_for(protocol or "-")
    if target.file is None and mine is not None and PROTOCOLS.get(mine.name) is not mine:
        expected = None  # your protocol under a built-in scenario: nothing expected of it
    if mine is not None and any(mine.OPTIONS.get(k) != v for k, v in target.options.items()):
        expected = None  # a variant (-o): the expectation is the protocol's as it ships
    token: str | None = None
    no_token: str | None = None
    if not target.is_named:
        no_token = target.unnamed or f"scenario {scenario.name!r} has no name"
    else:
        try:
            token = encode_token(target, execution.sim.schedule, execution, max_steps)
        except InvalidArgument as e:
            no_token = str(e)
    return ScriptRun(
        target,
        execution,
        target.verdict_of(execution),
        expected,
        unfollowed,
        token,
        no_token,
        expect_unfollowed=expect_unfollowed,
    )
