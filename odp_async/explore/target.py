"""What the explorer runs: a scenario (and, for the ODP model, a protocol), once per schedule.

Contract
    `Target.resolve(name_or_scenario, protocol, options)` finds a scenario (a built-in ODP
    scenario by name, a classic program as ``classic:<name>``, or a `Scenario` object) and
    checks the protocol: world scenarios need one, general programs take none.  Bad names
    raise `InvalidArgument` listing what exists.

    `Target.run(chooser)` runs it once under the sim and returns an `Execution`: the sim
    result, and the violations, which for general programs are made from the outcome (an
    exception is ``error``, a deadlock ``deadlock``, the step bound ``starvation``) and for
    world scenarios are the checker's plus those.  `Target.source` names the scenario so
    that another process (a worker, a replayed token) can find it again.

See also
    `odp_async.explore.runner`, `odp_async.world.run_world`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._runtime.choosers import Chooser
from .._runtime.sim import SimResult
from .._runtime.sim import run as sim_run
from ..check import Event, Violation
from ..errors import InvalidArgument
from ..odp.protocols import PROTOCOLS, resolve_protocol
from ..scenarios import BUILTIN, CLASSIC, Scenario, Verdict, verdict_of
from ..scenarios.files import load_scenario
from ..world import run_world
from .failures import describe_leaves, error_leaves

__all__ = ["Execution", "Target", "failure_violations"]


@attrs.frozen
class Execution:
    """One run of a target under one schedule (`events`: the checker's, when traced)."""

    violations: tuple[Violation, ...]
    sim: SimResult
    events: tuple[Event, ...] = ()

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.violations)

    @property
    def failure(self) -> Violation | None:
        """The first violation (the one a token promises to reproduce)."""
        return self.violations[0] if self.violations else None

    @property
    def is_failure(self) -> bool:
        return bool(self.violations)


def failure_violations(result: SimResult) -> list[Violation]:
    """The violations a sim outcome amounts to by itself (for any program).

    An ``error`` names its cause (`odp_async.explore.failures.error_leaves`): each leaf
    exception with its type, message, raising task and user frame; its tasks are the
    raising tasks and its step the step of the first raise.  A usage error of the program
    (`ForeignAwait`) is no outcome: the sim raises it, and so does `Target.run`.
    """
    if result.outcome == "error" and result.error is not None:
        # The cause, not its wrapping: each leaf of the task groups' ExceptionGroups, with
        # the task that raised it and the user's frame; the tasks are the raisers.
        leaves = error_leaves(result)
        tasks = tuple(dict.fromkeys(leaf.task for leaf in leaves))
        step = leaves[0].step if leaves else result.steps
        return [Violation("error", step, tasks, (), describe_leaves(leaves))]
    if result.outcome == "deadlock" and result.deadlock is not None:
        cycle = result.deadlock.cycle or result.deadlock.blocked
        tasks = tuple(b.task for b in cycle)
        return [Violation("deadlock", result.steps, tasks, (), result.deadlock.describe())]
    if result.outcome == "step-limit":
        detail = f"the run did not finish within its bound of {result.steps} steps"
        return [Violation("starvation", result.steps, (), (), detail)]
    return []


@attrs.frozen
class Target:
    """A scenario to explore, with its protocol and options (world scenarios only)."""

    scenario: Scenario
    protocol: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    #: How another process finds the scenario again: a built-in name, ``classic:<name>``,
    #: a scenario file path, or None when the scenario was given as an object.
    source: str | None = None
    #: The scenario's parameters that differ from its defaults (see `Scenario.params`).
    params: Mapping[str, int] = attrs.field(factory=dict)

    @classmethod
    def resolve(
        cls,
        scenario: str | Scenario,
        protocol: str | None = None,
        options: Mapping[str, Any] | None = None,
        params: Mapping[str, int] | None = None,
    ) -> Target:
        source: str | None
        if isinstance(scenario, Scenario):
            found, source = scenario, None
        elif isinstance(scenario, str):
            found = _lookup(scenario)
            # a file is named by its absolute path, so its tokens replay from anywhere
            source = str(Path(scenario).resolve()) if scenario.endswith(".toml") else scenario
        else:
            raise InvalidArgument(f"a scenario is a name or a Scenario, got {scenario!r}")
        options = dict(options or {})
        if found.needs_world:
            if protocol is None:
                raise InvalidArgument(
                    f"scenario {found.name!r} runs the ODP model: give a protocol "
                    f"({', '.join(PROTOCOLS)})"
                )
            resolve_protocol(protocol)
        elif protocol is not None and protocol != "-":
            raise InvalidArgument(
                f"scenario {found.name!r} is a general program; it takes no protocol "
                f"(got {protocol!r})"
            )
        params = dict(params or {})
        found = found.with_params(**params)
        return cls(found, protocol if found.needs_world else None, options, source, params)

    def with_params(self, **params: int) -> Target:
        """The same target with some scenario parameters changed."""
        merged = {**self.params, **params}
        return attrs.evolve(self, scenario=self.scenario.with_params(**params), params=merged)

    @property
    def label(self) -> str:
        return f"{self.scenario.name}/{self.protocol}" if self.protocol else self.scenario.name

    def run(self, chooser: Chooser, *, max_steps: int, trace: bool = False) -> Execution:
        """Run once under `chooser`.  Chooser exceptions (replay mismatch, pruning) raise."""
        if self.scenario.needs_world:
            assert self.protocol is not None
            run = run_world(
                self.scenario.body,
                protocol=self.protocol,
                options=dict(self.options),
                chooser=chooser,
                max_steps=max_steps,
                trace=trace,
                record_events=trace,
            )
            extra = [v for v in failure_violations(run.sim) if v.kind != "deadlock"]
            return Execution((*run.violations, *extra), run.sim, run.events)
        result = sim_run(self.scenario.body, chooser=chooser, max_steps=max_steps, trace=trace)
        return Execution(tuple(failure_violations(result)), result)


def _lookup(name: str) -> Scenario:
    if name.endswith(".toml"):
        return load_scenario(name)
    if name.startswith("classic:"):
        key = name.removeprefix("classic:")
        if key in CLASSIC:
            return CLASSIC[key]
    elif name in BUILTIN:
        return BUILTIN[name]
    elif name in CLASSIC:
        return CLASSIC[name]
    if name.startswith("test:"):
        raise InvalidArgument(
            f"{name!r} is an explored test: replay its token by re-running the test with "
            "ODP_ASYNC_REPLAY=<token>"
        )
    known = ", ".join([*BUILTIN, *(f"classic:{n}" for n in CLASSIC)])
    raise InvalidArgument(f"unknown scenario {name!r}; expected one of {known}")
