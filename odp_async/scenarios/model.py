"""What a scenario is: an async function over a `World`, with its story and its verdicts.

Contract
    A `Scenario` names an async function ``body(world) -> dict`` (or ``body() -> object``
    for code that has nothing to do with ODP, ``needs_world=False``), its actors (the task
    names it starts), a description, the expected `Verdict` per protocol, and optionally a
    *script*: the interleaving, in ``(task, until)`` steps, that shows its bug.  Scenarios
    are values; the registry of built-ins is a plain dict, and your own scenario is used
    by passing the object where a name is accepted.

    Verdicts: ``found`` (the checker recorded a safety violation), ``deadlock``,
    ``starvation`` (a liveness violation: a fault retried or waited past its bound),
    ``clean`` (nothing, within the exploration budget), and for the runs of a world
    scenario ``error`` (`model_verdict`: code under test raised, and the checker saw no
    safety violation; an expected ``found`` is never met by it).  ``inconclusive`` is no
    verdict about the program: no violation, but a run reached the step bound and did
    not finish under a fair continuation either (or nothing was explored); it is what
    every result (`Execution`, `ExploreResult`, a matrix `Cell`) says then, never
    ``clean``, and never an expectation (`EXPECTABLE`).  A mistake of the
    scenario itself found only while it runs raises `ScenarioUsageError` out of the
    run: it is no verdict.

See also
    `odp_async.scenarios.builtin`, `odp_async.world.run_world`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from ..check import Violation
from ..errors import ScenarioUsageError

__all__ = [
    "EXPECTABLE",
    "Scenario",
    "ScenarioUsageError",
    "Verdict",
    "model_verdict",
    "unfinished_verdict",
    "verdict_of",
]


class Verdict(enum.Enum):
    CLEAN = "clean"
    FOUND = "found"
    DEADLOCK = "deadlock"
    STARVATION = "starvation"
    #: A world scenario's run ended by an exception of the code under test (the protocol,
    #: a subscriber): that code crashed; the race the scenario sets up is not shown.
    ERROR = "error"
    #: No verdict: no violation, but runs reached the step bound unfinished (a livelock,
    #: or a program longer than the bound), or nothing ran.  Never a pass: a result that
    #: is inconclusive is never `CLEAN` (`unfinished_verdict`).
    INCONCLUSIVE = "inconclusive"

    def __str__(self) -> str:
        return self.value


#: The verdicts a scenario may expect of a protocol (`Scenario.expected`, a file's
#: ``[expected]`` table): every one but `Verdict.INCONCLUSIVE`, which says nothing of it.
EXPECTABLE: tuple[Verdict, ...] = tuple(v for v in Verdict if v is not Verdict.INCONCLUSIVE)


def unfinished_verdict(verdict: Verdict, unfinished: bool) -> Verdict:
    """`verdict` (of a run's or a search's violations), except that no violation plus
    runs `unfinished` at the step bound is `Verdict.INCONCLUSIVE`, never `Verdict.CLEAN`:
    the one rule every result's ``verdict`` (and the CLI, through them) follows."""
    if verdict is Verdict.CLEAN and unfinished:
        return Verdict.INCONCLUSIVE
    return verdict


def verdict_of(violations: tuple[Violation, ...] | list[Violation]) -> Verdict:
    """The verdict a run's violations amount to: safety beats deadlock beats starvation."""
    kinds = {v.kind for v in violations}
    if kinds - {"deadlock", "starvation"}:
        return Verdict.FOUND
    if "deadlock" in kinds:
        return Verdict.DEADLOCK
    if "starvation" in kinds:
        return Verdict.STARVATION
    return Verdict.CLEAN


def model_verdict(violations: tuple[Violation, ...] | list[Violation]) -> Verdict:
    """The verdict a run of a world (ODP model) scenario amounts to, as its expectations
    are judged (the verdict matrix, ``explore FILE``): as `verdict_of`, except that a run
    whose only safety violation is an ``error`` (an exception raised by the protocol, a
    subscriber or other code under test) is `Verdict.ERROR`, not `Verdict.FOUND`: a crash
    does not show the race an expected ``found`` stands for.  A checker's violation
    (``stale-translation``, ``use-after-free``...) in the same run makes it ``found``;
    an error beats a deadlock and a starvation.  (For general code, `verdict_of`: there
    an exception, a failed ``assert``, is how a bug shows.)"""
    kinds = {v.kind for v in violations}
    if kinds - {"deadlock", "starvation", "error"}:
        return Verdict.FOUND
    if "error" in kinds:
        return Verdict.ERROR
    return verdict_of(violations)


def _protocol_names(names: Iterable[str]) -> frozenset[str]:
    """`Scenario.script_unfollowed` as a set of names; `InvalidArgument` for one name given
    bare (``"naive"`` would be the set of its letters) or a name that is not a str."""
    found = _names(names, "script_unfollowed", "protocol names", "{{{!r}}}")
    return frozenset(found)


def _actor_names(names: Iterable[str]) -> tuple[str, ...]:
    """`Scenario.actors` as a tuple; `InvalidArgument` for the names given as one str
    (``"zap"`` would be the actors z, a, p) or a name that is not a str."""
    return _names(names, "actors", "the names of the tasks a scenario starts", "({!r},)")


def _names(names: Iterable[str], field: str, takes: str, example: str) -> tuple[str, ...]:
    """`names` as a tuple of str, for `field`, which takes `takes`; `InvalidArgument` for
    the names given as one str (`example` shows how to give it) or a name not a str."""
    from ..errors import InvalidArgument

    if isinstance(names, str):
        shown = example.format(names)
        raise InvalidArgument(f"{field} takes {takes}, e.g. {shown}, got the str {names!r}")
    out = tuple(names)
    for name in out:
        if not isinstance(name, str):
            raise InvalidArgument(f"{field} takes {takes} (each a str), got {name!r}")
    return out


def _verdicts(table: Mapping[str, Verdict | str]) -> Mapping[str, Verdict]:
    """`Scenario.expected` (`script_expected`) with each verdict given by its value
    (``"found"``) made the `Verdict`; any other value is kept, for the constructor to
    refuse naming it."""
    if not isinstance(table, Mapping):
        return table  # the constructor's check names it
    return {protocol: _as_verdict(verdict) for protocol, verdict in table.items()}


def _as_verdict(value: object) -> Any:
    if isinstance(value, str):
        try:
            return Verdict(value)
        except ValueError:
            return value
    return value


@attrs.frozen
class Scenario:
    """A named, described, explorable concurrent program."""

    name: str
    summary: str
    body: Callable[..., Awaitable[Any]]
    #: The names of the tasks the body starts (a str is refused: ``("fault",)``).
    actors: tuple[str, ...] = attrs.field(converter=_actor_names)
    #: The verdict expected of each protocol (a `Verdict`, or its value: ``"found"``).
    expected: Mapping[str, Verdict] = attrs.field(factory=dict, converter=_verdicts)
    description: str = ""
    script: tuple[tuple[str, str | None], ...] = ()
    needs_world: bool = True
    #: Where the verdict under the script differs from `expected` (a protocol whose bug
    #: needs another schedule than the one the script tells).
    script_expected: Mapping[str, Verdict] = attrs.field(factory=dict, converter=_verdicts)
    #: The protocols under which no run can follow the script: their fix closes the
    #: window it tells (a fault that waits out an invalidation never reaches the lock
    #: the script stops it at).  Under them a run that leaves the script is what is
    #: expected, said as such, never a verdict; one that follows it is a mismatch.
    script_unfollowed: frozenset[str] = attrs.field(default=frozenset(), converter=_protocol_names)
    #: Integer knobs of the scenario (how many rounds an actor runs...), with their
    #: values in `body`; `make(**params)` builds the body for other values.  The shrinker
    #: lowers them (fewer actor operations) while the failure stays.
    params: Mapping[str, int] = attrs.field(factory=dict)
    make: Callable[..., Callable[..., Awaitable[Any]]] | None = None
    #: The author's promise that the body reaches shared state only through noted
    #: objects (`odp_async.shared.SharedCell`, the primitives of `odp_async.sync`): a
    #: step whose label declares nothing (a task's first step included) is then exactly
    #: its noted accesses, not an unknown footprint, so DPOR and sleep sets reduce it.
    #: A plain object shared beside them breaks the promise (DPOR may miss its races).
    noted_only: bool = False
    #: An async function ``setup(world)`` that builds the state every schedule starts
    #: from (map memory, register regions...), or None.  It runs once, as its own sim
    #: run (seed 0, no events recorded), and each schedule then runs `body` on that
    #: state put back in place (`odp_async.world.PreparedWorld`): far faster than
    #: building it again per schedule, with the same results.  Its steps are not part of
    #: any schedule, so nothing in it is explored, and a run's steps count from 1 after
    #: it (a violation the setup records is shown at step 0, its setup step in its
    #: detail).  A plain ``def`` raises `InvalidArgument` at the first run.  World
    #: scenarios only (with ``needs_world=False`` the constructor raises
    #: `InvalidArgument`); `with_params` does not change it.
    setup: Callable[..., Awaitable[Any]] | None = None

    def __attrs_post_init__(self) -> None:
        from ..errors import InvalidArgument

        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgument(f"a scenario's name is a non-empty str, got {self.name!r}")
        if self.actors:
            for index, step in enumerate(self.script):
                task = step[0] if isinstance(step, tuple | list) and step else step
                if task not in self.actors:
                    raise InvalidArgument(
                        f"scenario {self.name!r}: script step {index} names the task "
                        f"{task!r}, which is none of its actors ({', '.join(self.actors)})"
                    )
        for table in (self.expected, self.script_expected):
            for protocol, verdict in table.items():
                if verdict not in EXPECTABLE:
                    shown = verdict.value if isinstance(verdict, Verdict) else verdict
                    raise InvalidArgument(
                        f"scenario {self.name!r}: {shown!r} expected of {protocol!r} is no "
                        f"verdict a protocol can earn; expected one of: "
                        f"{', '.join(v.value for v in EXPECTABLE)} (a Verdict or its value)"
                    )
        both = sorted(self.script_unfollowed & set(self.script_expected))
        if both:
            raise InvalidArgument(
                f"scenario {self.name!r}: {both[0]!r} has a verdict expected under the "
                "script and is also expected not to follow it; give one of the two"
            )
        if self.script_unfollowed and not self.script:
            raise InvalidArgument(
                f"scenario {self.name!r}: script_unfollowed names protocols, but there is "
                "no script"
            )
        if self.setup is not None and not self.needs_world:
            raise InvalidArgument(
                f"scenario {self.name!r}: a setup builds a world, but needs_world=False "
                "(set up a world scenario, or do the setup in the body)"
            )

    def with_params(self, **params: int) -> Scenario:
        """This scenario with some params changed.  Raises `InvalidArgument` for a param
        it does not have or a value below 1."""
        from ..errors import InvalidArgument

        for key, value in params.items():
            if key not in self.params or self.make is None:
                known = ", ".join(self.params) or "none"
                raise InvalidArgument(
                    f"scenario {self.name!r} has no parameter {key!r} (its parameters: {known})"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgument(f"parameter {key!r} must be a positive int, got {value!r}")
        if not params:
            return self
        merged = {**self.params, **params}
        assert self.make is not None
        return attrs.evolve(self, body=self.make(**merged), params=merged)

    def expected_for(self, protocol: str) -> Verdict:
        return self.expected.get(protocol, Verdict.CLEAN)

    def script_expected_for(self, protocol: str) -> Verdict:
        return self.script_expected.get(protocol, self.expected_for(protocol))
