"""What the explorer runs: a scenario (and, for the ODP model, a protocol), once per schedule.

Contract
    `Target.resolve(what, protocol, options, params, args=())` finds what to run:

    - a built-in ODP scenario by name, a classic program as ``classic:<name>``;
    - a scenario file (a path ending in ``.toml``), kept *by content* (`ScenarioText`:
      basename, SHA-256, text), never by its absolute path;
    - a `Scenario` object, or a plain async function (called with `args` each run), or a
      ``"module:qualname"`` string naming either;

    and checks the protocol: world scenarios need one (a built-in name, a
    ``"module:Class"`` reference or an `OdpProtocol` subclass), general programs take
    none.  Bad names raise `InvalidArgument` listing what exists.  So does a scenario
    whose body cannot take what a run passes it (the world, ``body(world)``; nothing,
    with ``needs_world=False``), before the protocol is asked for: its TypeError would
    be reported as the run's error.

    `Target.spec()` is how another process (a worker, a replayed token) finds the target
    again: a `TargetSpec` of plain values (the source name, the protocol's name or
    ``module:qualname``, options, params, the file's content, the function's arguments);
    `Target.from_spec(spec)` rebuilds it.  A target no other process could rebuild (a
    closure, a class made in a function, arguments that are not plain JSON values) still
    runs here; `Target.unnamed` says why it has no spec, and `spec()` raises
    `InvalidArgument` with that reason.

    `Target.run(chooser)` runs it once under the sim and returns an `Execution`: the sim
    result, and the violations, which for general programs are made from the outcome (an
    exception is ``error``, a deadlock ``deadlock``) and for world scenarios are the
    checker's plus those.  A run that reaches the step bound is continued under a fair
    scheduler (`odp_async.explore.fairness`): an error or a deadlock it runs into is
    reported as such; if it does not finish either, the run is `Execution.unfinished`:
    **no verdict** (neither a failure nor a pass), since a bound cannot tell a livelock
    from a program longer than the bound; never ``starvation``, which only the model's
    own bounds (a fault retried or kept waiting too long) report.  A systematic chooser
    whose run stopped at the step bound is told so (its ``note_step_limit``): the fair
    continuation's steps are not its search's, so it no longer claims completeness.  A
    `KeyboardInterrupt` raised in the run that is Ctrl-C
    (`odp_async._runtime.interrupts.is_ctrl_c`), and any exception a signal handler
    raised (pytest-timeout's on SIGALRM: `from_signal_handler`), is re-raised, never
    recorded as the program's error; one the program raised itself is its ``error``, like a
    `SystemExit`.  A `ReplayChooser` whose
    recording the run did not use up raises `ReplayMismatch`: a replay is exact.

See also
    `odp_async.explore.runner`, `odp_async.explore.refs`, `odp_async.world.run_world`.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs

from .._raised import exception_text, walk
from .._runtime.choosers import Chooser, ReplayChooser
from .._runtime.interrupts import from_signal_handler, is_ctrl_c
from .._runtime.sim import BriefRuns, SimResult
from .._runtime.sim import run as sim_run
from .._thread_blocking import refuse_thread_locks
from .._user_files import not_a_scenario_file
from ..check import Event, Violation
from ..errors import BodyNotAwaitable, InvalidArgument
from ..odp.protocols import PROTOCOLS, OdpProtocol, resolve_protocol
from ..scenarios import (
    BUILTIN,
    CLASSIC,
    Scenario,
    ScenarioUsageError,
    Verdict,
    model_verdict,
    verdict_of,
)
from ..scenarios.model import unfinished_verdict
from ..world import PreparedWorld, WorldRun, run_world
from .arguments import require_mapping, show
from .failures import describe_leaves, error_leaves
from .fairness import fair_continuation
from .refs import ScenarioText, is_ref, object_ref, ref_problem, resolve_ref, scenario_ref
from .search_watch import SearchWatch

__all__ = ["Execution", "Target", "TargetSpec", "docstring_parts", "failure_violations"]


@attrs.frozen
class Execution:
    """One run of a target under one schedule (`events`: the checker's, when traced).

    `unfinished`: the run reached its step bound and a fair continuation of it did not
    finish within as many steps again: undecided (a livelock, or a program longer than
    the bound), neither a failure nor a pass; its violations are only those seen
    before (a world's checker's).
    """

    violations: tuple[Violation, ...]
    sim: SimResult
    events: tuple[Event, ...] = ()
    unfinished: bool = False

    @property
    def verdict(self) -> Verdict:
        """`verdict_of` its violations; ``inconclusive`` (`Verdict.INCONCLUSIVE`), never
        ``clean``, for a run with none that is `unfinished`."""
        return unfinished_verdict(verdict_of(self.violations), self.unfinished)

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
    (`ForeignAwait`) is no outcome: the sim raises it, and so does `Target.run`; nor is
    a scenario's own mistake (`ScenarioUsageError`), which `Target.run` raises.  The
    step bound (``"step-limit"``) is none either: a bound cannot tell a livelock from a
    long run (`Execution.unfinished`).
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
    return []  # "ok", and "step-limit": no verdict by itself (`Target.run`)


@attrs.frozen
class TargetSpec:
    """A target as plain values another process can rebuild it from (see `Target.spec`).

    `source`: a built-in name, ``classic:<name>``, ``module:qualname`` (a function or a
    `Scenario`), a file's basename (with `file`, its content), or ``test:<id>``.
    `protocol`: a built-in name or ``module:qualname``.  `args`: JSON values.
    """

    source: str
    protocol: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    params: Mapping[str, int] = attrs.field(factory=dict)
    file: ScenarioText | None = None
    args: tuple[Any, ...] = ()


@attrs.frozen
class _Call:
    """The body of a function target: ``fn(*args)``, a fresh coroutine each run."""

    fn: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...]

    def __call__(self) -> Awaitable[Any]:
        return self.fn(*self.args)


@attrs.frozen
class Target:
    """A scenario to explore, with its protocol and options (world scenarios only)."""

    scenario: Scenario
    #: The protocol's built-in name or ``module:qualname`` (world scenarios), else None.
    protocol: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    #: How another process finds the scenario again (see `TargetSpec.source`), or None
    #: when it cannot (then `unnamed` says why).
    source: str | None = None
    #: The scenario's parameters that differ from its defaults (see `Scenario.params`).
    params: Mapping[str, int] = attrs.field(factory=dict)
    #: The protocol class itself (None: resolved from `protocol` when run).
    protocol_class: type[OdpProtocol] | None = None
    #: A scenario file's content (file targets).
    file: ScenarioText | None = None
    #: The arguments a function target is called with.
    args: tuple[Any, ...] = ()
    #: Why no other process could rebuild this target (None: `spec()` works).
    unnamed: str | None = None
    #: The world the scenario's ``setup`` built, reused per run (scenarios with one).
    _prepared: _Prepared = attrs.field(
        init=False, factory=lambda: _Prepared(), eq=False, repr=False
    )
    #: The watch of a user program's state between runs in this process
    #: (`odp_async.explore.search_watch`; None: not watched).
    _watch_holder: WatchHolder = attrs.field(
        init=False, factory=lambda: WatchHolder(), eq=False, repr=False
    )

    @classmethod
    def resolve(
        cls,
        scenario: str | Scenario | Callable[..., Awaitable[Any]],
        protocol: str | type[OdpProtocol] | None = None,
        options: Mapping[str, Any] | None = None,
        params: Mapping[str, int] | None = None,
        *,
        args: tuple[Any, ...] = (),
    ) -> Target:
        """Find `scenario` (see the module docstring).  Raises `InvalidArgument`."""
        require_mapping("options", options)
        require_mapping("params", params)
        if not isinstance(args, tuple):
            raise InvalidArgument(f"args must be a tuple, got {show(args)}")
        unnamed: str | None = None
        file: ScenarioText | None = None
        source: str | None
        if isinstance(scenario, Scenario):
            found = scenario
            if BUILTIN.get(scenario.name) is scenario:
                source = scenario.name
            elif CLASSIC.get(scenario.name) is scenario:
                source = f"classic:{scenario.name}"
            else:
                source, unnamed = _named(lambda: scenario_ref(scenario))
                if source is None and _from_a_file(scenario):
                    unnamed = (
                        f"scenario {scenario.name!r} was loaded from a scenario file "
                        "(load_scenario), which this Scenario object does not name: pass "
                        "the file's path instead (explore('path/to/file.toml', ...)) for a "
                        "token that carries the file's content"
                    )
        elif isinstance(scenario, str):
            if scenario.endswith(".toml"):
                file, found = ScenarioText.read(scenario, _imports(protocol))
                source = file.name
            elif is_ref(scenario):
                found = _as_scenario(resolve_ref(scenario, "scenario"), scenario, args)
                source = scenario
            else:
                found, source = _lookup(scenario), scenario
        elif callable(scenario):
            found = _as_scenario(scenario, repr(scenario), args)
            source, unnamed = _named(lambda: object_ref(scenario, "function"))
        else:
            raise InvalidArgument(
                f"a scenario is a name, a file, a Scenario or an async function, got {scenario!r}"
            )
        if not found.needs_world:
            refuse_thread_locks(found.body)  # it would hang the run: refused before it
        if args and (found.needs_world or not isinstance(found.body, _Call)):
            raise InvalidArgument(
                f"scenario {found.name!r} takes no arguments (only a plain async function "
                f"does), got {args!r}"
            )
        if args and unnamed is None and (big := _big_int_bits(args)) is not None:
            unnamed = (
                f"the arguments of {found.name!r} hold an int of {big} bits, and a token "
                f"carries ints of at most {MAX_ARG_INT_BITS} bits"
            )
        if args and unnamed is None and not _is_json(args):
            unnamed = (
                f"the arguments {args!r} of {found.name!r} are not plain JSON values (str, "
                "int, float, bool, None, lists, dicts with str keys), so a token cannot "
                "carry them"
            )
        return cls._build(found, source, protocol, options, params, file, args, unnamed)

    @classmethod
    def from_spec(
        cls, spec: TargetSpec, *, scenario_file: str | os.PathLike[str] | None = None
    ) -> Target:
        """Rebuild a target from its spec.  A file target uses the content it carries, or,
        given `scenario_file`, that file, which must hold the same content
        (`ReplayMismatch` naming the change otherwise)."""
        if spec.file is not None:
            imports = _imports(spec.protocol)
            if scenario_file is not None:
                found = spec.file.check_file(scenario_file, imports)
            else:
                found = spec.file.scenario(imports)
            return cls._build(
                found, spec.source, spec.protocol, spec.options, spec.params, spec.file
            )
        if scenario_file is not None:
            return cls.resolve(os.fspath(scenario_file), spec.protocol, spec.options, spec.params)
        return cls.resolve(spec.source, spec.protocol, spec.options, spec.params, args=spec.args)

    @classmethod
    def _build(
        cls,
        found: Scenario,
        source: str | None,
        protocol: str | type[OdpProtocol] | None,
        options: Mapping[str, Any] | None,
        params: Mapping[str, int] | None,
        file: ScenarioText | None = None,
        args: tuple[Any, ...] = (),
        unnamed: str | None = None,
    ) -> Target:
        options = dict(options or {})
        name: str | None = None
        protocol_class: type[OdpProtocol] | None = None
        _check_body(found)  # before the protocol: a body that cannot be called is no run
        if found.needs_world:
            if protocol is None:
                # a Scenario of your own: its expectations are checked by the matrix
                every = (
                    f"; or check it under every protocol against its expected verdicts: "
                    f"odp-async matrix --scenario {source}"
                    if source is not None and is_ref(source)
                    else ""
                )
                raise InvalidArgument(
                    f"scenario {found.name!r} runs the ODP model: give a protocol "
                    f"({', '.join(PROTOCOLS)}, 'module:Class' or an OdpProtocol subclass)"
                    f"{every}"
                )
            protocol_class = resolve_protocol(protocol)
            if isinstance(protocol, str):
                name = protocol
            elif PROTOCOLS.get(protocol_class.name) is protocol_class:
                name = protocol_class.name
            else:
                ref, why = _named(lambda: object_ref(protocol_class, "protocol class"))
                name = ref or f"{protocol_class.__module__}:{protocol_class.__qualname__}"
                unnamed = unnamed or why
        elif protocol is not None and protocol != "-":
            shown = (
                f"{protocol.__module__}:{protocol.__qualname__}"
                if isinstance(protocol, type)
                else protocol
            )
            # named as typed: ``classic:lost-update``, not its bare name
            typed = source if source is not None and source.startswith("classic:") else None
            raise InvalidArgument(
                f"scenario {typed or found.name!r} is a general program; it takes no protocol "
                f"(got {shown!r})"
            )
        params = dict(params or {})
        found = found.with_params(**params)
        return cls(
            found, name, options, source, params, protocol_class, file, tuple(args), unnamed
        )

    def spec(self) -> TargetSpec:
        """The plain values another process rebuilds this target from.

        Raises `InvalidArgument` saying why when no other process could (`unnamed`).
        """
        if self.source is None or self.unnamed is not None:
            raise InvalidArgument(
                self.unnamed
                or f"scenario {self.scenario.name!r} was given as an object, not by name or "
                "file, so no other process could find it: register it by name to get a token"
            )
        return TargetSpec(
            self.source,
            self.protocol,
            dict(self.options),
            dict(self.params),
            self.file,
            self.args,
        )

    @property
    def is_named(self) -> bool:
        """Whether another process can rebuild this target (`spec()` works)."""
        return self.source is not None and self.unnamed is None

    def with_params(self, **params: int) -> Target:
        """The same target with some scenario parameters changed."""
        merged = {**self.params, **params}
        return attrs.evolve(self, scenario=self.scenario.with_params(**params), params=merged)

    @property
    def protocol_name(self) -> str | None:
        """The protocol's own ``name`` (not its reference), or None."""
        if self.protocol_class is not None:
            return self.protocol_class.name
        if self.protocol is None:
            return None
        return resolve_protocol(self.protocol).name

    @property
    def protocol_shown(self) -> str | None:
        """The protocol as one names it to explore or replay it (None: no protocol): a
        built-in's name or your own class's ``module:Class`` (never its ``name``, which
        no command takes), then its options, if any, as ``(KEY=VALUE, ...)`` in the
        order given (booleans as ``true``/``false``, as ``-o`` takes them)."""
        if self.protocol is None:
            return None
        if not self.options:
            return self.protocol
        shown = ", ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.options.items()
        )
        return f"{self.protocol}({shown})"

    @property
    def label(self) -> str:
        """``scenario/protocol`` (`protocol_shown`), or the scenario's name alone."""
        shown = self.protocol_shown
        return f"{self.scenario.name}/{shown}" if shown else self.scenario.name

    def verdict_of(self, execution: Execution) -> Verdict:
        """What a run of this target amounts to, as the explorer judges it: for a world
        scenario `model_verdict` (a run that only raised is ``error``), else
        `Execution.verdict`; ``inconclusive``, never ``clean``, for a run with no
        violation that is `Execution.unfinished`."""
        if self.scenario.needs_world:
            return unfinished_verdict(model_verdict(execution.violations), execution.unfinished)
        return execution.verdict

    def run(self, chooser: Chooser, *, max_steps: int, trace: bool = False) -> Execution:
        """Run once under `chooser`.  Chooser exceptions (replay mismatch, pruning) raise;
        so does a `KeyboardInterrupt` taken for Ctrl-C; a `ReplayChooser` whose recording was
        not used up raises `ReplayMismatch`."""
        result, violations, events = self._run_once(chooser, max_steps, trace)
        watch = self._watch_holder.watch
        if watch is not None:
            watch.ran()
        _reraise_interrupt(result.error)
        _reraise_usage(result.error, self.scenario.name)
        _check_replayed(chooser, result)
        unfinished = False
        if result.outcome == "step-limit":
            _note_step_limit(chooser)
            violations, unfinished = self._judge_step_limit(result, violations, max_steps)
        return Execution(tuple(violations), result, events, unfinished)

    def brief_runs(self, *, max_steps: int) -> Callable[[Chooser], Execution | int]:
        """A function that runs this target once per call, as `run` does, except that a
        general program's run ending ``"ok"`` (no violation) returns its step count and
        builds no record (the explorer's common case); its runs share one sim runtime,
        reset between runs (`odp_async._runtime.sim.BriefRuns`: the same results).  World
        scenarios, and replays, always get an `Execution`.  Raises as `run`."""
        scenario = self.scenario
        if scenario.needs_world:
            return functools.partial(self.run, max_steps=max_steps)
        runs = BriefRuns(scenario.body, max_steps=max_steps, noted_only=scenario.noted_only)
        watch = self._watch_holder.watch

        def run(chooser: Chooser) -> Execution | int:
            if isinstance(chooser, ReplayChooser):
                return self.run(chooser, max_steps=max_steps)
            try:
                result = runs.run(chooser)
            except BodyNotAwaitable as e:
                raise _not_awaitable(scenario.name, e) from None
            if watch is not None:
                watch.ran()
            if type(result) is int:
                return result
            assert isinstance(result, SimResult)
            violations = failure_violations(result)
            _reraise_interrupt(result.error)
            _reraise_usage(result.error, self.scenario.name)
            unfinished = False
            if result.outcome == "step-limit":
                _note_step_limit(chooser)
                violations, unfinished = self._judge_step_limit(result, violations, max_steps)
            return Execution(tuple(violations), result, (), unfinished)

        return run

    def _run_once(
        self, chooser: Chooser, max_steps: int, trace: bool
    ) -> tuple[SimResult, list[Violation], tuple[Event, ...]]:
        if self.scenario.needs_world:
            protocol = self.protocol_class or self.protocol
            assert protocol is not None
            run_on: Callable[..., WorldRun]
            if self.scenario.setup is not None:
                run_on = self._prepared.get(self.scenario.setup, protocol, self.options).run
            else:
                run_on = functools.partial(
                    run_world, protocol=protocol, options=dict(self.options)
                )
            run = run_on(
                self.scenario.body,
                chooser=chooser,
                max_steps=max_steps,
                trace=trace,
                record_events=trace,
                noted_only=self.scenario.noted_only,
            )
            extra = [v for v in failure_violations(run.sim) if v.kind != "deadlock"]
            return run.sim, [*run.violations, *extra], run.events
        try:
            result = sim_run(
                self.scenario.body,
                chooser=chooser,
                max_steps=max_steps,
                trace=trace,
                noted_only=self.scenario.noted_only,
            )
        except BodyNotAwaitable as e:  # the sim called the body: named as the scenario
            raise _not_awaitable(self.scenario.name, e) from None
        return result, failure_violations(result), ()

    def _judge_step_limit(
        self, result: SimResult, violations: list[Violation], max_steps: int
    ) -> tuple[list[Violation], bool]:
        """A run at its step bound, continued under a fair scheduler (see
        `odp_async.explore.fairness`): (its violations, whether it is still unfinished).
        A bug the fair continuation runs into, an error or a deadlock, is reported as
        that; a continuation that finishes cleanly shows the bound was the chooser's
        doing; one that reaches its own bound leaves the run undecided (unfinished):
        a livelock and a program longer than the bound look the same there."""

        def again(chooser: Chooser, bound: int) -> SimResult:
            return self._run_once(chooser, bound, False)[0]

        fair = fair_continuation(again, result.schedule, max_steps)
        _reraise_interrupt(fair.error)
        _reraise_usage(fair.error, self.scenario.name)
        if fair.outcome == "step-limit":
            return violations, True
        kept = list(violations)
        if fair.outcome in ("error", "deadlock"):
            for v in failure_violations(fair):
                note = f"{v.detail} (after the step bound, continued under a fair scheduler)"
                kept.append(attrs.evolve(v, detail=note))
        return kept, False


class WatchHolder:
    """A target's `SearchWatch` in this process, made when a search first asks
    (`odp_async.explore.search_watch.watch_target`).  Not pickled: another process makes
    its own."""

    __slots__ = ("made", "watch")

    def __init__(self) -> None:
        self.made = False
        self.watch: SearchWatch | None = None

    def __reduce__(self) -> tuple[type[WatchHolder], tuple[()]]:
        return WatchHolder, ()


class _Prepared:
    """A target's set-up world (`PreparedWorld`), built at its first run and kept for
    the next ones while the setup, protocol and options stay the same.  Not pickled:
    another process builds its own."""

    __slots__ = ("key", "world")

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.world: PreparedWorld | None = None

    def __reduce__(self) -> tuple[type[_Prepared], tuple[()]]:
        return _Prepared, ()

    def get(
        self,
        setup: Callable[..., Awaitable[Any]],
        protocol: str | type[OdpProtocol],
        options: Mapping[str, Any],
    ) -> PreparedWorld:
        key = (setup, protocol, tuple(sorted(options.items(), key=repr)))
        if self.world is None or self.key != key:
            self.world = PreparedWorld.build(setup, protocol, options=dict(options))
            self.key = key
        return self.world


def _reraise_interrupt(error: BaseException | None) -> None:
    """Re-raise a `KeyboardInterrupt` taken for Ctrl-C, or any exception a signal handler
    raised (pytest-timeout's), found in a run's error (within exception groups;
    `odp_async._runtime.interrupts.is_ctrl_c`, `from_signal_handler`): the user or the
    harness stopping us, never the program's own failure.  A `KeyboardInterrupt` the
    program raised itself (told apart while Ctrl-C is marked) stays its error."""
    if error is None:
        return
    for e in walk(error):
        if isinstance(e, KeyboardInterrupt) and is_ctrl_c(e):
            raise e
        if from_signal_handler(e):
            # A signal handler's exception (pytest-timeout's on SIGALRM...): the harness
            # stopping us wherever the program happened to be, never the program's error.
            raise e


def _reraise_usage(error: BaseException | None, name: str) -> None:
    """Raise the `ScenarioUsageError` found in a run's error (within exception groups): a
    mistake of the scenario (its file) that showed while it ran is a usage error, never
    the protocol's violation.  A body that returned no awaitable is named as the
    scenario `name`."""
    if error is None:
        return
    for e in walk(error):
        if isinstance(e, BodyNotAwaitable):
            raise _not_awaitable(name, e) from None
        if isinstance(e, ScenarioUsageError):
            raise ScenarioUsageError(exception_text(e)) from None


def _not_awaitable(name: str, error: BodyNotAwaitable) -> ScenarioUsageError:
    return ScenarioUsageError(
        f"scenario {name!r}: its body returned {error.returned}, not an awaitable (define "
        "it with async def)"
    )


def _note_step_limit(chooser: Chooser) -> None:
    """Tell a systematic chooser (dfs, dpor) that its execution stopped at the step bound:
    the steps a fair continuation runs after it are not part of its search, so it may no
    longer claim to be exhaustive (`_SystematicChooser.note_step_limit`)."""
    note = getattr(chooser, "note_step_limit", None)
    if note is not None:
        note()


def _check_replayed(chooser: Chooser, result: SimResult) -> None:
    if isinstance(chooser, ReplayChooser):
        chooser.finish(f"the run ended ({result.outcome}) after {result.steps} steps")


def _from_a_file(scenario: Scenario) -> bool:
    """Whether `scenario` was built from a scenario file (`load_scenario`)."""
    return getattr(scenario.body, "__module__", None) == "odp_async.scenarios.files"


def _named(make: Callable[[], str]) -> tuple[str | None, str | None]:
    """(a reference, None), or (None, why there is none)."""
    try:
        return make(), None
    except InvalidArgument as e:
        return None, str(e)


#: The most bits an int in a function target's arguments may have for a token to carry
#: it: a target whose arguments hold a bigger one gets no token, and a token that holds
#: one is refused when read (`odp_async.explore.tokens`): the two sides check alike.
MAX_ARG_INT_BITS: Final = 4096


def _big_int_bits(value: object) -> int | None:
    """The bits of the first int in `value` (nested in lists, tuples and dict values)
    bigger than `MAX_ARG_INT_BITS`, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, int) and item.bit_length() > MAX_ARG_INT_BITS:
            return item.bit_length()
    return None


def _is_json(args: tuple[Any, ...]) -> bool:
    """Whether `args` survive a JSON round trip unchanged (so a token can carry them):
    no infinity either (JSON has none; Python's ``Infinity`` is not read back)."""
    try:
        again = json.loads(json.dumps(list(args), allow_nan=False))
    except (TypeError, ValueError):
        return False
    return _same(again, list(args))


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def docstring_parts(obj: object) -> tuple[str, str]:
    """(summary, description) of a function given as a program, from its docstring (as
    `inspect.getdoc` cleans it): the summary is its first paragraph on one line, however
    it is wrapped; the description is every paragraph after it.  ("", "") without one."""
    first, _, rest = (inspect.getdoc(obj) or "").strip().partition("\n\n")
    return " ".join(first.split()), rest.strip()


#: The attribute `odp_async.explore.testing.explore_test` sets on the plain test function
#: it makes (its `ExploredTest`).
EXPLORED_TEST_ATTR: Final = "_odp_async_explored_test"


def _as_scenario(obj: object, ref: str, args: tuple[Any, ...]) -> Scenario:
    """A `Scenario` as it is, or a plain async function as a general program."""
    if isinstance(obj, Scenario):
        return obj
    if inspect.iscoroutinefunction(obj):
        _check_call(obj, ref, args)
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or ref
        summary, description = docstring_parts(obj)
        return Scenario(
            str(name),
            summary,
            _Call(obj, tuple(args)),
            (),
            description=description,
            needs_world=False,
        )
    text = _brief_repr(obj)
    shown = ref if ref == text else f"{ref} is {text}"  # an object given: once
    if inspect.isasyncgenfunction(obj):
        raise InvalidArgument(
            f"{shown}: an async generator (an `async def` with `yield`), which cannot be "
            "awaited; pass an `async def` function without `yield`"
        )
    wrapped = getattr(obj, "__wrapped__", None)
    if inspect.iscoroutinefunction(wrapped):  # a decorator's plain wrapper of one
        hint = (
            "an @explore_test test: run it with pytest"
            if hasattr(obj, EXPLORED_TEST_ATTR)
            else "a decorator made it"
        )
        raise InvalidArgument(
            f"{ref}: a plain function wrapping the async function "
            f"{getattr(wrapped, '__qualname__', wrapped)!r} ({hint}); pass an `async def` "
            "function itself"
        )
    raise InvalidArgument(
        f"{shown}: neither a Scenario nor an async function; pass an `async def` function "
        "(a lambda or plain function that returns a coroutine is not one)"
    )


#: The most characters of an object's repr a one-line error shows.
_REPR_SHOWN: Final = 100


def _brief_repr(obj: object) -> str:
    """`obj`'s repr for a one-line error: cut to `_REPR_SHOWN` characters (a module's
    table of functions would fill the screen), with its type when cut."""
    text = repr(obj)
    if len(text) <= _REPR_SHOWN:
        return text
    return f"{text[: _REPR_SHOWN - 3]}... (a {type(obj).__name__}, {len(text)} characters)"


def _check_call(fn: Callable[..., Any], ref: str, args: tuple[Any, ...]) -> None:
    """Raise `InvalidArgument` naming `ref` and its required parameters when `fn` cannot
    be called with `args` (an unbound method needs ``self``)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to check: the call will tell
        return
    try:
        signature.bind(*args)
    except TypeError as e:
        empty = inspect.Parameter.empty
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        required = [
            p.name
            for p in signature.parameters.values()
            if p.default is empty and p.kind not in variadic
        ]
        given = f"{len(args)} argument{'s' * (len(args) != 1)}"
        method = " (a method: explore a bound method or a function)" if "self" in required else ""
        raise InvalidArgument(
            f"target {ref} requires the parameters {', '.join(required) or '(none)'} but is "
            f"called with {given}{method}: {e}"
        ) from None


def _check_body(scenario: Scenario) -> None:
    """Raise `InvalidArgument` naming `scenario` when its body cannot take what a run
    passes it: the world (a model scenario, ``body(world)``), or nothing
    (``needs_world=False``).  A TypeError of that call would otherwise be reported as the
    run's error, a verdict with a token, for a mistake in how the scenario is written.
    A body whose signature cannot be read is left to the run."""
    body = scenario.body
    if isinstance(body, _Call):  # a function target: `_check_call` checked its arguments
        return
    _check_async(scenario)
    try:
        signature = inspect.signature(body)
    except (TypeError, ValueError):
        return
    try:
        if scenario.needs_world:
            signature.bind(None)  # the world
        else:
            signature.bind()
    except TypeError:
        shown = f"{getattr(body, '__qualname__', None) or repr(body)}{signature}"
        if scenario.needs_world:
            raise InvalidArgument(
                f"scenario {scenario.name!r}: its body {shown} does not take the world "
                "argument (a model scenario's body is called as body(world)); a body that "
                "runs no model needs Scenario(..., needs_world=False)"
            ) from None
        raise InvalidArgument(
            f"scenario {scenario.name!r}: its body {shown} cannot be called with no "
            "arguments, as the body of a scenario that runs no model (needs_world=False) "
            "is; a body that takes the world needs needs_world=True"
        ) from None


def _check_async(scenario: Scenario) -> None:
    """Raise `InvalidArgument` naming `scenario` when its body is a plain function (a
    lambda, a ``def``, a method or a `functools.partial` of one): what it returns is
    not awaited as a task's body, whatever it is.  A callable of another kind (an object
    whose ``__call__`` returns a coroutine) is left to the run, which checks what it
    returns (`odp_async.errors.BodyNotAwaitable`)."""
    body: Any = scenario.body
    if inspect.iscoroutinefunction(body):
        return
    while isinstance(body, functools.partial):
        body = body.func
    if inspect.ismethod(body):
        body = body.__func__
    if inspect.iscoroutinefunction(body) or not inspect.isfunction(body):
        return
    if inspect.isasyncgenfunction(body):
        kind = "an async generator (an async def with yield), which cannot be awaited"
        fix = "define it with async def, without yield"
    else:
        what = "a lambda" if body.__name__ == "<lambda>" else "a plain def"
        kind = f"{what}, not an async function"
        fix = "define it with async def"
    raise InvalidArgument(
        f"scenario {scenario.name!r}: its body {body.__qualname__} is {kind} ({fix})"
    )


def _lookup(name: str) -> Scenario:
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
    problem = ref_problem(name)
    if problem is not None:  # meant as a reference, but not one
        raise InvalidArgument(problem)
    path_problem = not_a_scenario_file(name)
    if path_problem is not None:
        raise InvalidArgument(path_problem)
    known = ", ".join([*BUILTIN, *(f"classic:{n}" for n in CLASSIC)])
    raise InvalidArgument(
        f"unknown scenario {name!r}; expected one of {known}, a .toml file or 'module:qualname'"
    )


def _imports(protocol: object) -> tuple[str, ...]:
    """The entries of a scenario file's ``scenario.protocols`` a run of `protocol` needs
    imported: its own reference, if it is one; none for a class (or no protocol)."""
    return (protocol,) if isinstance(protocol, str) else ()
