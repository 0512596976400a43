"""The verdict matrix: every built-in scenario under every protocol, against expectations.

Contract
    `verdict_matrix(budget=...)` explores each (scenario, protocol) cell with up to `budget`
    schedules of `chooser`: ``portfolio`` (the default, as the explorer's: schedule ``i`` of
    a cell is schedule ``i`` of ``explore(..., seed=seed)``, its dpor share included) or
    ``random`` (schedule ``i`` of ``explore(..., chooser="random", seed=seed)``).  A cell
    whose expected verdict is a failure stops at the first schedule
    showing that verdict; a cell expected clean runs its whole budget, unless the
    portfolio's dpor member ran every trace first (nothing is left to find). Each cell's
    `Cell.claim` says what it established, in `ExploreResult.claim`'s words
    (`odp_async.explore.claims`): ``complete: N traces, no violation`` when that DPOR
    search ran every Mazurkiewicz trace (relative to the footprints), else ``no violation
    in N schedules (budget reached, not complete)``, or ``violation at schedule i:
    <kind>`` for the first failure it counts (under any chooser), or ``inconclusive: K of
    N schedules reached the step bound ...`` when runs did not finish within the step
    bound even continued fairly (`Cell.inconclusive`: its `Cell.verdict` is
    ``inconclusive``, never ``clean``, and never a match for a cell with an
    expectation).  The cell's verdict is the
    expected one if it was seen, else the most severe seen (error, found, then deadlock,
    then starvation, then clean); a safety violation (found) seen where a deadlock or
    starvation was expected always wins, so corruption is never hidden behind an expected
    liveness failure.  A run that only raised (`model_verdict`: an exception of the
    protocol or a subscriber, no violation of the checker) is ``error``: it ends the cell
    and never meets an expected ``found`` (a crash does not show the race).  A portfolio
    cell none of whose schedules showed a failure, but one of whose probe runs (the runs
    the explorer makes before schedule 1 to size pct and the sweep) failed, takes that
    run's verdict (`Cell.first_hit` 0, its claim ``violation in a probe run before
    schedule 1: <kind>``, `Cell.found_by` the probe run, a token replaying it; never
    ``complete``): a missed bug is never a pass.  Cells are
    independent and deterministic (the schedules of a cell depend only on
    the seed), so `jobs` spreads cells over processes, and `executor` over any `Executor` (a
    Dask cluster), without changing any result.

    A scenario is a built-in name, a scenario file (a path ending ``.toml``): a file's
    cells are the protocols its ``scenario.protocols`` names, expected as its
    ``[expected]`` table says; or a ``module:name`` reference to a `Scenario` of your own
    that runs the model (its cells are every built-in protocol, expected as its
    ``expected`` says, clean where it says nothing).  A protocol is a built-in name or
    your own `OdpProtocol` subclass or ``module:Class`` reference (its cell is labelled
    ``module:Class``, what one types to explore or replay it).  Your
    own protocol has an expectation only in a scenario file that names it (by
    ``module:Class``, or by name; not listed in ``[expected]``: clean); elsewhere its cell
    has **no expectation** (``expected`` None): it runs the whole budget like a cell
    expected clean, reports what it saw, and never counts as a mismatch unless it is
    ``error`` (the protocol or a subscriber raised: a crash is never a verdict to accept).
    `protocols` given explicitly replaces every scenario's list.
    Unknown names and bad files raise `InvalidArgument` before any cell runs.  A cell of
    your own protocol class is watched as `explore` watches your code
    (`odp_async.explore.search_watch`, `odp_async.explore.start_check`): state carried
    between its runs makes it ``inconclusive`` (`Cell.carried`), never ``clean`` or
    ``complete``; built-in cells pay nothing.

See also
    `odp_async.scenarios.builtin` (the expectations), `odp_async.explore.runner`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._runtime.choosers import Chooser, StreamChooser
from .._runtime.stall import DEFAULT_STALL, StepStalled, watching_steps
from .._user_files import not_a_scenario_file
from ..errors import InvalidArgument
from ..odp.protocols import PROTOCOLS, OdpProtocol, resolve_protocol
from ..scenarios import BUILTIN, Verdict, model_verdict
from ..scenarios.files import read_scenario
from ..scenarios.model import unfinished_verdict
from ..scenarios.user_protocols import check_protocol_class
from .claims import PROBE_RUN, carried_claim, claim_text
from .config import MAX_JOBS, ExploreConfig
from .executors import Executor, ProcessExecutor
from .portfolio import PROBE_FINDERS, DporShare, Probes, dpor_ordinal, member_at
from .refs import is_ref, resolve_ref
from .search_watch import begin as begin_watch
from .search_watch import carried as carried_state
from .search_watch import watch_target
from .shrink import shrink
from .start_check import RERUN, StartCheck
from .target import Execution, Target
from .tokens import encode_token

if TYPE_CHECKING:
    from .runner import ProbeHit

__all__ = ["CHOOSERS", "Cell", "verdict_matrix"]

#: The choosers a matrix cell may run.
CHOOSERS = ("portfolio", "random")

#: A protocol of a cell: a built-in name or an `OdpProtocol` subclass.
ProtocolRef = str | type[OdpProtocol]

_SEVERITY = {
    Verdict.ERROR: 4,
    Verdict.FOUND: 3,
    Verdict.DEADLOCK: 2,
    Verdict.STARVATION: 1,
    Verdict.CLEAN: 0,
}
#: Verdicts that end a cell whatever it expected: neither is hidden behind another.
_FINAL = (Verdict.FOUND, Verdict.ERROR)


@attrs.frozen
class Cell:
    scenario: str
    protocol: str
    #: None: no expectation (your own protocol in a scenario that does not name it).
    expected: Verdict | None
    verdict: Verdict
    schedules: int
    #: Schedules to the first schedule showing the verdict (1-based); 0: none showed one,
    #: a probe run did (`found_by` names it); None: nothing but clean runs.
    first_hit: int | None
    token: str | None
    detail: str
    elapsed: float
    #: What the cell established, in one line (see the module docstring).
    claim: str = ""
    #: The portfolio's member that showed the verdict (None: random, or nothing seen).
    found_by: str | None = None
    #: Schedules that reached the step bound unfinished (`Execution.unfinished`).
    unfinished: int = 0
    #: The line of a step that did not return within the stall limit, where the cell
    #: stopped (`odp_async._runtime.stall`): no verdict for that schedule; else None.
    stalled: str | None = None
    #: What of your own protocol's (or program's) state changed between the cell's runs
    #: (`odp_async.explore.search_watch`, `odp_async.explore.start_check`), or None: its
    #: runs did not all start from the same state, so the cell is ``inconclusive``.
    carried: str | None = None

    @property
    def matches(self) -> bool:
        """The verdict is the expected one, or there is no expectation to miss; never for
        an `inconclusive` cell with an expectation (no expectation is ``inconclusive``),
        and never for ``error`` with none (the code under test raised)."""
        if self.expected is None:
            return self.verdict is not Verdict.ERROR
        return self.verdict is self.expected

    @property
    def inconclusive(self) -> bool:
        """Nothing failed, but runs reached the step bound unfinished, or a step did not
        return within the stall limit: no verdict (`verdict` is `Verdict.INCONCLUSIVE`,
        never ``clean``)."""
        return self.verdict is Verdict.INCONCLUSIVE


def explore_cell(
    scenario: str,
    protocol: ProtocolRef,
    budget: int,
    seed: int = 0,
    max_steps: int = 50_000,
    shrink_found: bool = True,
    chooser: str = "portfolio",
    stall: float | None = DEFAULT_STALL,
) -> Cell:
    """Explore one cell (see the module docstring); the token of a failure it shows is
    shrunk first (`shrink_found`), so it replays a schedule a person can follow.  A step
    that has not returned after `stall` seconds stops the cell (`Cell.stalled`; see
    `ExploreConfig.stall`).  A cell of your own protocol class is watched as `explore`
    watches it: the FIFO schedule runs once before the cell's schedules and once after
    them, and the class's state is compared between runs; a change makes the cell
    ``inconclusive`` (`Cell.carried`), and a failure of that first run is the cell's if no
    schedule fails (`Cell.found_by` ``fifo-probe``)."""
    _check_chooser(chooser)
    # (InvalidArgument naming a bad value); the FIFO runs' settings
    config = ExploreConfig(max_steps=max_steps, stall=stall)
    start = time.perf_counter()
    given: Any = protocol  # a class is accepted (see `resolve_protocol`)
    target = Target.resolve(scenario, given)
    name = _protocol_name(protocol)
    key = _expectation_key(scenario, protocol)
    expected = None if key is None else target.scenario.expected_for(key)
    found = _Found()
    stalled: str | None = None
    carried: str | None = None
    schedules: _Schedules | None = None
    hits: list[ProbeHit | None] = []
    begin_watch(target)
    try:
        with watching_steps(stall):
            # your own protocol's FIFO schedule, before the cell's runs and after them
            fifo = _start_check(target, config, hits)
            # (its probe runs run steps too)
            schedules = _Schedules(target, chooser, seed, max_steps, budget=budget)
            hits.append(schedules.probe_hit)
            _run_cell(found, target, schedules, expected, budget, max_steps, shrink_found)
            _adopt_probe_failure(found, target, hits, max_steps, shrink_found)
            carried = carried_state(target)
            if fifo is not None and carried is None and found.ran:
                found.running = RERUN
                carried = fifo.after(target, config)
    except StepStalled as e:  # what ran before the stalled schedule stands
        stalled = str(e)
        if found.first_hit is None:
            # no replay after a stall (the watch halts this thread's runs): unshrunk
            _adopt_probe_failure(found, target, hits, max_steps, False)
    complete = (
        schedules is not None
        and schedules.complete
        and stalled is None
        and carried is None
        # a failing probe run: the completion contradicts it (the failure wins)
        and found.first_hit != 0
    )
    violation = None if found.first_hit is None else (found.first_hit, found.kind)
    claim = (
        carried_claim(carried, found.ran, violation)
        if carried is not None
        else claim_text(
            found.ran,
            chooser=chooser,
            violation=violation,
            complete=complete,
            traces=schedules.traces if schedules is not None and complete else None,
            max_steps=max_steps,
            unfinished=found.unfinished,
            stalled=stalled,
            stalled_run=found.running,
        )
    )
    return Cell(
        scenario,
        name,
        expected,
        unfinished_verdict(
            found.seen, found.unfinished > 0 or stalled is not None or carried is not None
        ),
        found.ran,
        found.first_hit,
        found.token,
        found.detail or (stalled or ""),
        time.perf_counter() - start,
        claim,
        # random names no member, but a probe run's finder (the FIFO run) is named
        found.found_by if chooser == "portfolio" or found.first_hit == 0 else None,
        found.unfinished,
        stalled,
        carried,
    )


def _start_check(
    target: Target, config: ExploreConfig, hits: list[ProbeHit | None]
) -> StartCheck | None:
    """`StartCheck.before` for a cell the search watch follows (your own protocol class;
    None for a built-in cell, which pays nothing), its failure appended to `hits` (the
    cell's failure if none of its schedules fails).  Raises `StepStalled` if a step of
    it stalled."""
    if watch_target(target) is None:
        return None
    from .runner import ProbeHit

    start = StartCheck.before(target, config)
    if start.stalled is not None:
        raise StepStalled(start.stalled)
    failed = start.failed
    if failed is not None:
        hits.append(ProbeHit(failed.sim.schedule, failed, PROBE_FINDERS[0]))
    return start


@attrs.define
class _Found:
    """What a cell ran and found so far (kept up to date as it runs: a stall stops it
    midway)."""

    seen: Verdict = Verdict.CLEAN
    kind: str = ""
    first_hit: int | None = None
    token: str | None = None
    detail: str = ""
    ran: int = 0
    unfinished: int = 0
    found_by: str | None = None
    #: The run going on, as a stall's claim names it (`ExploreResult.stalled_run`).
    running: str = PROBE_RUN


def _run_cell(
    found: _Found,
    target: Target,
    schedules: _Schedules,
    expected: Verdict | None,
    budget: int,
    max_steps: int,
    shrink_found: bool,
) -> None:
    """`explore_cell`'s loop, recording into `found`."""
    for index in range(budget):
        found.running = f"schedule {index + 1}"
        got = schedules.run(index)
        if got is None:
            break  # the dpor member ran every trace: nothing is left to find
        by, execution = got
        found.ran += 1
        found.unfinished += execution.unfinished
        verdict = model_verdict(execution.violations)
        if verdict is Verdict.CLEAN:
            continue
        seen = found.seen
        if (verdict is expected and seen not in _FINAL) or (_SEVERITY[verdict] > _SEVERITY[seen]):
            found.seen = seen = verdict
            _record(found, target, index + 1, by, execution, max_steps, shrink_found)
        if seen is expected or expected in (Verdict.CLEAN, None) or seen in _FINAL:
            # the expected failure was shown; or a clean cell is not clean; or data was
            # corrupted where only a liveness failure was expected (never hidden); or the
            # code under test raised (an error never meets an expected found)
            break


def _record(
    found: _Found,
    target: Target,
    first_hit: int,
    by: str,
    execution: Execution,
    max_steps: int,
    shrink_found: bool,
) -> None:
    """Record in `found` the failing `execution` that shows the cell's verdict (schedule
    `first_hit`, 1-based; 0: a probe run), by `by`: its kind, and (shrunk first if
    `shrink_found`) its detail and token."""
    found.first_hit = first_hit
    found.found_by = by
    failure = execution.failure
    assert failure is not None
    found.kind = failure.kind
    found.token, found.detail = None, ""
    schedule = execution.sim.schedule
    token_target = target
    if shrink_found:
        replayed = f"schedule {first_hit}" if first_hit else "the failing probe run"
        found.running = f"a replay of {replayed} (the failure found)"
        # a modest shrink, no minimality proof: the matrix stays fast
        shrunk = shrink(
            target, schedule, failure.kind, max_steps=max_steps, budget=100, proof_budget=0
        )
        schedule, execution = shrunk.schedule, shrunk.execution
        token_target = target.with_params(**shrunk.params)
        # the detail describes the run the token replays (the shrunk one)
        failure = execution.failure
        assert failure is not None
    found.detail = failure.describe()
    try:
        found.token = encode_token(token_target, schedule, execution, max_steps)
    except InvalidArgument as e:  # the failure stays; only its token is missing
        found.detail = f"{found.detail} (no replay token: {e})"


def _adopt_probe_failure(
    found: _Found,
    target: Target,
    hits: list[ProbeHit | None],
    max_steps: int,
    shrink_found: bool,
) -> None:
    """When no schedule of the cell showed a failure but a probe run did (`hits`, in
    the order they ran: the FIFO run before the cell's, `_Schedules.probe_hit`), record
    the first as the cell's (`first_hit` 0): the program was seen to fail, so the cell
    is no pass."""
    if found.first_hit is not None:
        return
    for seen in hits:
        if seen is None:
            continue
        verdict = model_verdict(seen.execution.violations)
        if verdict is Verdict.CLEAN:
            continue
        found.seen = verdict
        _record(found, target, 0, seen.by, seen.execution, max_steps, shrink_found)
        return


@attrs.define
class _Schedules:
    """Schedule ``i`` of a cell: ``random``'s, or the portfolio's as `explore` runs it
    (its seeded members by index, its dpor share in order)."""

    target: Target
    chooser: str
    seed: int
    max_steps: int
    dpor: DporShare | None = None
    hint: Probes = attrs.field(factory=Probes)
    #: True once the dpor member ran every trace with no violation in any.
    complete: bool = False
    clean: bool = True
    #: The cell's budget (the dpor share runs ahead at most to its last dpor slot).
    budget: int | None = None
    #: The first of the portfolio's probe runs that failed (the explorer's
    #: `runner.ProbeHit`), or None: the cell's failure if none of its schedules fails.
    probe_hit: ProbeHit | None = None

    def __attrs_post_init__(self) -> None:
        if self.chooser == "portfolio":
            from .runner import _steps_hint, _Tally  # the explorer's estimate of PCT's k

            config = self._config()
            self.dpor = DporShare(self.target, config)
            probes = _Tally(0, None, 0.0)  # keeps the first failing probe run
            self.hint = _steps_hint(self.target, config, probes)
            self.probe_hit = probes.probe_hit

    def _config(self) -> ExploreConfig:
        return ExploreConfig(chooser="portfolio", seed=self.seed, max_steps=self.max_steps)

    @property
    def traces(self) -> int:
        return self.dpor.chooser.traces if self.dpor is not None else 0

    def run(self, index: int) -> tuple[str, Execution] | None:
        """(who ran it, the execution) of schedule `index`; None once the dpor member
        ran every trace and none failed (the cell is verified: nothing is left)."""
        dpor = self.dpor
        if dpor is None:
            # `explore --chooser random`'s schedule `index` (`runner._chooser_for`).
            chooser: Chooser = StreamChooser(self.seed, index)
            return "random", self.target.run(chooser, max_steps=self.max_steps)
        if member_at(index).kind == "dpor" and not dpor.done:
            ordinal = dpor_ordinal(index)
            wanted = None if self.budget is None else dpor_ordinal(self.budget) - ordinal
            execution = dpor.run(ordinal, wanted)
            if execution is not None:
                self.clean = self.clean and not execution.is_failure
                return "dpor", execution
            if dpor.exhausted and self.clean:
                self.complete = True
                return None
        from .runner import _chooser_for

        by, chooser = _chooser_for(self._config(), index, self.hint)
        return by, self.target.run(chooser, max_steps=self.max_steps)


def _check_chooser(chooser: object) -> None:
    if chooser not in CHOOSERS:
        raise InvalidArgument(
            f"unknown matrix chooser {chooser!r}; expected one of {', '.join(CHOOSERS)}",
            "chooser",
            chooser,
        )


def _protocol_name(protocol: ProtocolRef) -> str:
    """How a cell names `protocol`: as a user names it on the command line (a built-in's
    name, or your own class's ``module:Class``), as `Target.label` and tokens do."""
    if isinstance(protocol, str):
        return protocol
    return protocol.name if PROTOCOLS.get(protocol.name) is protocol else _ref(protocol)


def _expectation_key(scenario: str, protocol: ProtocolRef) -> str | None:
    """The name a scenario's expectations know `protocol` by, or None if they do not know
    it: a built-in protocol is known to every scenario; your own protocol only to a
    scenario file that names it in ``scenario.protocols`` (by ``module:Class`` or name)."""
    name = protocol if isinstance(protocol, str) else protocol.name
    if name in PROTOCOLS and (isinstance(protocol, str) or PROTOCOLS[name] is protocol):
        return name
    if not scenario.endswith(".toml"):
        return None
    listed = read_scenario(scenario).protocols
    refs = [protocol] if isinstance(protocol, str) else [_ref(protocol), name]
    return next((r for r in refs if r in listed), None)


def world_scenario_ref(ref: str) -> bool:
    """Whether ``module:name`` names a `Scenario` of your own that runs the ODP model
    (``needs_world``): the matrix runs it under every built-in protocol, against the
    ``expected`` it declares, as a built-in scenario.  `InvalidArgument` if it does not
    resolve."""
    from ..scenarios import Scenario

    found = resolve_ref(ref, "scenario")
    return isinstance(found, Scenario) and found.needs_world


def _ref(protocol: type[OdpProtocol]) -> str:
    return f"{protocol.__module__}:{protocol.__qualname__}"


def _check_protocol(protocol: ProtocolRef) -> None:
    if isinstance(protocol, type) and issubclass(protocol, OdpProtocol):
        check_protocol_class(protocol)
        return
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return
    if isinstance(protocol, str) and ":" in protocol:
        check_protocol_class(resolve_protocol(protocol), protocol)
        return
    raise InvalidArgument(
        f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)} "
        "or an OdpProtocol subclass"
    )


def _distinct_protocols(protocols: Sequence[ProtocolRef]) -> list[ProtocolRef]:
    """`protocols` without repeats (by the class each names); two different classes of one
    name raise `InvalidArgument` (their cells could not be told apart)."""
    out: dict[type[OdpProtocol], ProtocolRef] = {}
    for p in protocols:
        cls = resolve_protocol(p)
        if cls in out:
            continue
        twin = next((c for c in out if c.name == cls.name), None)
        if twin is not None:
            raise InvalidArgument(
                f"protocols {_ref(twin)!r} and {_ref(cls)!r} are both named {cls.name!r}; "
                "expected protocols of different names (the matrix's cells, reports and "
                "replay tokens tell protocols apart by name)"
            )
        out[cls] = p
    return list(out.values())


def _default_protocols(scenario: str) -> list[ProtocolRef]:
    """The protocols a scenario is meant for: a file's list, else every built-in one."""
    if scenario.endswith(".toml"):
        return list(read_scenario(scenario).protocols)
    if scenario not in BUILTIN and is_ref(scenario):
        if not world_scenario_ref(scenario):
            raise InvalidArgument(
                f"the matrix runs ODP scenarios under protocols; {scenario!r} is a program "
                f"with no protocol (explore it: odp-async explore {scenario})"
            )
        return list(PROTOCOLS)
    if scenario not in BUILTIN:
        path_problem = not_a_scenario_file(scenario)
        if path_problem is not None:
            raise InvalidArgument(path_problem)
        raise InvalidArgument(
            f"unknown scenario {scenario!r}; expected one of {', '.join(BUILTIN)} "
            "or a scenario file (.toml)"
        )
    return list(PROTOCOLS)


def verdict_matrix(
    *,
    budget: int = 300,
    scenarios: Iterable[str] | None = None,
    protocols: Sequence[ProtocolRef] | None = None,
    seed: int = 0,
    jobs: int = 1,
    on_cell: Callable[[Cell], None] | None = None,
    executor: Executor | None = None,
    chooser: str = "portfolio",
    stall: float | None = DEFAULT_STALL,
) -> list[Cell]:
    """Every cell, in scenario order then protocol order; `on_cell` sees each as it ends.
    The cells run in this process (``jobs=1``), on `jobs` worker processes, or as tasks
    of `executor` (which the caller closes).  `chooser`: ``portfolio`` (the default) or
    ``random``; another value raises `InvalidArgument`.  `stall`: see `explore_cell`."""
    _check_chooser(chooser)
    ExploreConfig(stall=stall)  # InvalidArgument naming a bad value
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise InvalidArgument(f"budget must be a positive int, got {budget!r}")
    names = list(scenarios) if scenarios is not None else list(BUILTIN)
    defaults = {name: _default_protocols(name) for name in names}
    for p in protocols or ():
        _check_protocol(p)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise InvalidArgument(f"jobs must be a positive int, got {jobs!r}")
    if jobs > MAX_JOBS:
        raise InvalidArgument(f"jobs must be at most {MAX_JOBS}, got {jobs!r}")
    given = _distinct_protocols(protocols or ())
    # a scenario or protocol given twice is one cell, not two with the same result
    pairs = [(s, p) for s in dict.fromkeys(names) for p in (given or defaults[s])]
    jobs = max(1, min(jobs, len(pairs)))  # no idle worker processes
    if jobs == 1 and executor is None:
        done = []
        for s, p in pairs:
            cell = explore_cell(s, p, budget, seed, chooser=chooser, stall=stall)
            if on_cell is not None:
                on_cell(cell)
            done.append(cell)
        return done
    pool = executor if executor is not None else ProcessExecutor(jobs)
    cells: dict[int, Cell] = {}
    try:
        for key, (s, p) in enumerate(pairs):
            pool.submit(key, explore_cell, s, p, budget, seed, 50_000, True, chooser, stall)
        while len(cells) < len(pairs):
            for finished in pool.wait(1.0):
                if finished.error is not None:
                    raise finished.error
                assert isinstance(finished.key, int)
                cells[finished.key] = finished.value
                if on_cell is not None:
                    on_cell(finished.value)
    except BaseException:
        pool.abort()
        raise
    finally:
        if executor is None:
            pool.close()
    return [cells[key] for key in range(len(pairs))]
